"""The benchmark harness behind ``cocopie bench``.

Modules: ``timing`` (latency of one interpreter, outputs in batches; what
the studies in the top-level ``bench/`` folder use), ``models`` (networks,
pruned variants, MAC counts), ``runtimes``
(one adapter class per inference engine), ``worker`` (one measurement, in its
own process), ``peak`` (this machine's FLOP/s and bandwidth limits),
``runner`` (models × variants × runtimes) and ``report`` (schema, tables,
chart).

Example:

>>> from cocopie_keras.bench import report, runner
>>> doc = runner.run_benchmark(models=["resnet20_cifar"], runtimes=["xnnpack", "cocopie"])
>>> report.validate(doc)
[]
"""
