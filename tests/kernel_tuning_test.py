"""Kernel auto-tuning: the tuning record, `cocopie tune-kernels`, and the
delegate using a stored tuning without timing (or ignoring a corrupt one)."""

import json

import numpy as np
import pytest
from conftest import conv_stack, pruned_conv_stack_file, random_input, run

from cocopie_keras import cli, converter, delegate
from cocopie_keras.converter import report
from cocopie_keras.converter import kernel_tuning as tuning


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    # out_c 16 and 40: the half-width channel block and a channel tail are
    # real candidates; stride 2 and connectivity pruning too.
    return pruned_conv_stack_file(tmp_path_factory, "tuning", (12, 12, 8), [
        dict(filters=40, kernel_size=3, padding="same", activation="relu"),
        dict(filters=16, kernel_size=3, strides=2, padding="same"),
    ], connectivity_rate=0.3)


@pytest.fixture(scope="module")
def tuned_file(model_file):
    out = model_file.with_name("tuned.tflite")
    # Without the stock comparison, whose outcome depends on timing: the
    # tests below check the delegate's own choices (stock_choice_test.py
    # covers the comparison).
    assert cli.main(["tune-kernels", str(model_file), "-o", str(out), "--threads", "2",
                     "--no-stock"]) == 0
    return out


def test_record_round_trip_and_merge():
    entries = [tuning.TuningEntry("AVX3", "block", 16, 24, 2, 0, "pixels", 2),
               tuning.TuningEntry("NEON", "rows")]
    data = tuning.encode(entries)
    # A size-prefixed buffer of the schema with the record's own identifier.
    assert data[8:12] == b"CPTR" and int.from_bytes(data[:4], "little") == len(data) - 4
    assert tuning.decode(data) == [entries[0], tuning.TuningEntry("NEON", "rows", 0, 0, 0, 0)]
    merged = tuning.merge(data, tuning.TuningEntry("AVX3", "rows"))
    assert [(e.target, e.kernel) for e in tuning.decode(merged)] == [("NEON", "rows"),
                                                                      ("AVX3", "rows")]
    # A malformed record is replaced, not kept.
    assert tuning.decode(tuning.merge(b"\x07garbage", entries[1])) == [
        tuning.TuningEntry("NEON", "rows", 0, 0, 0, 0)]
    assert tuning.encode([]) == b"" and tuning.decode(b"") == []
    stock = tuning.entry_without_params("AVX2", "stock", 2)
    assert tuning.decode(tuning.encode([stock])) == [stock]
    assert stock.describe() == "AVX2 stock"


def _raw(target=b"AVX3", kernel=1, block=32, tile=12, tiles=4, kib=0, order=0, threads=0):
    return tuning.RawEntry(target, kernel, block, tile, tiles, kib, order, threads)


@pytest.mark.parametrize("raws, message", [
    ([], "0 entries"),
    ([_raw(target=b"T%d" % i) for i in range(17)], "17 entries"),
    ([_raw(kernel=3)], "kernel 3"),
    ([_raw(kernel=2, block=0, tile=0, tiles=0, kib=1)], "a stock entry"),
    ([_raw(block=24)], "channel_block"),
    ([_raw(tile=0)], "tile_pixels"),
    ([_raw(tile=33)], "tile_pixels"),
    ([_raw(tiles=65)], "tiles_per_task"),
    ([_raw(kib=4097)], "chunk_bytes"),
    ([_raw(order=2)], "loop order 2"),
    ([_raw(kernel=0, block=0, tile=12, tiles=0)], "rows-kernel"),
    ([_raw(target=b"AV\xff3")], "not ASCII"),
    ([_raw(target=b"AV 3")], "not ASCII"),
    ([_raw(target=b"")], "target name of 0"),
    ([_raw(target=b"A" * 16)], "target name of 16"),
    ([_raw(), _raw(kernel=0, block=0, tile=0, tiles=0)], "repeats"),
])
def test_record_rules(raws, message):
    with pytest.raises(tuning.TuningFormatError, match=message):
        tuning.decode(tuning.pack(raws))


def test_malformed_record_buffers():
    data = tuning.pack([_raw()])
    assert tuning.decode(data)[0].tile_pixels == 12
    for n in range(1, len(data)):
        with pytest.raises(tuning.TuningFormatError, match="truncated"):
            tuning.decode(data[:n])
    with pytest.raises(tuning.TuningFormatError, match="trailing"):
        tuning.decode(data + b"\0")
    with pytest.raises(tuning.TuningFormatError, match="identifier"):
        tuning.decode(data[:8] + b"CPLR" + data[12:])
    # The hand-made record of earlier releases: version 1, one entry.
    old = b"\x01\x01" + b"AVX3".ljust(16, b"\0") + bytes([1, 32, 12, 4, 0, 0, 0, 0])
    with pytest.raises(tuning.TuningFormatError):
        tuning.decode(old)
    # Lying lengths of the entries vector and of the target string.
    start = data.index(b"AVX3") - 4
    for value in (0xFFFFFFFF, 1 << 20, 200):
        lying = bytearray(data)
        lying[start:start + 4] = value.to_bytes(4, "little")
        with pytest.raises(tuning.TuningFormatError):
            tuning.decode(bytes(lying))


def test_bad_entries_are_refused_on_encode():
    with pytest.raises(tuning.TuningFormatError, match="Received: tile_pixels=0"):
        tuning.encode([tuning.TuningEntry("AVX3", "block", 32, 0)])
    with pytest.raises(tuning.TuningFormatError, match="target="):
        tuning.encode([tuning.TuningEntry("AVX 3", "rows")])
    with pytest.raises(tuning.TuningFormatError, match="one entry per target"):
        tuning.encode([tuning.TuningEntry("NEON", "rows")] * 2)


def test_python_and_delegate_encode_the_same_record(model_file):
    interpreter = delegate.make_interpreter(model_file.read_bytes(), num_threads=1,
                                            tuning="on")
    reports = delegate.kernel_tunings(interpreter)
    assert [r["source"] for r in reports] == ["timed", "timed"]
    for r in reports:
        assert r["target"] == delegate.simd_target()
        assert tuning.encode([tuning.entry_from_report(r)]).hex() == r["record"]


def test_timed_choice_agrees_with_its_timings(model_file):
    # The search keeps the built-in choice (what tuning=off runs) unless another
    # candidate beat it by the 3 % margin when the two were timed alternately;
    # the report then holds those two timings. (Which candidate wins on fixed
    # costs is checked in delegate/graph/kernel_tuning_search_test.cc.)
    data = model_file.read_bytes()
    built_in = {r["node"]: r["record"] for r in delegate.kernel_tunings(
        delegate.make_interpreter(data, num_threads=1, tuning="off"))}
    timed = delegate.kernel_tunings(delegate.make_interpreter(data, num_threads=1, tuning="on"))
    assert sorted(built_in) == [r["node"] for r in timed] and len(timed) == 2
    for r in timed:
        assert r["candidates"] >= 3  # the built-in choice, the rows kernel, block variants
        assert 0 < r["tuned_us"] < 1e299 and 0 < r["default_us"] < 1e299
        if r["record"] == built_in[r["node"]]:
            assert r["tuned_us"] == r["default_us"], r  # one timing of one choice
        else:
            assert r["tuned_us"] < 0.97 * r["default_us"], r


def test_tune_kernels_stores_a_tuning_and_keeps_outputs(model_file, tuned_file):
    original, tuned = model_file.read_bytes(), tuned_file.read_bytes()
    x = random_input((1, 12, 12, 8))
    # Only the LR changed: stock LiteRT, and the delegate with tuning off,
    # give bit-identical outputs for both files.
    for options in [dict(use_delegate=False), dict(tuning="off")]:
        before = run(delegate.make_interpreter(original, **options), x)
        after = run(delegate.make_interpreter(tuned, **options), x)
        np.testing.assert_array_equal(before, after)
    layers = converter.read_lr(tuned)
    assert all(tuning.decode(layer.tuning)[0].target == delegate.simd_target()
               for layer in layers)
    # The tuned kernels compute the same convolution.
    stock = run(delegate.make_interpreter(tuned, use_delegate=False), x)
    ours = run(delegate.make_interpreter(tuned, num_threads=2), x)
    np.testing.assert_allclose(ours, stock, rtol=1e-5, atol=1e-5)


def test_reloaded_model_uses_the_stored_tuning_without_timing(tuned_file):
    interpreter = delegate.make_interpreter(tuned_file.read_bytes(), num_threads=2)
    reports = delegate.kernel_tunings(interpreter)
    stored = [tuning.decode(layer.tuning)[0]
              for layer in converter.read_lr(tuned_file.read_bytes())]
    assert [r["source"] for r in reports] == ["lr", "lr"]
    assert all("default_us" not in r for r in reports)  # nothing was timed
    assert [tuning.entry_from_report(r) for r in reports] == stored
    # tuning=on also takes the LR's entry rather than timing again.
    interpreter = delegate.make_interpreter(tuned_file.read_bytes(), tuning="on")
    assert [r["source"] for r in delegate.kernel_tunings(interpreter)] == ["lr", "lr"]


def test_inspect_shows_the_tuning(tuned_file, capsys):
    assert cli.main(["inspect", str(tuned_file), "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    for layer in layers:
        (entry,) = layer["tuning"]["stored"]
        assert entry["target"] == delegate.simd_target()
        assert entry["kernel"] in ("block", "rows")
    assert cli.main(["inspect", str(tuned_file)]) == 0
    table = capsys.readouterr().out
    assert f"{delegate.simd_target()} " in table and "tuning" in table


def test_corrupt_tuning_is_ignored(tuned_file, tmp_path, capfd):
    data = tuned_file.read_bytes()
    layers = converter.read_lr(data)
    # Well-formed records (the LR holds only those) that break the rules.
    layers[0].tuning = tuning.pack([tuning.RawEntry(b"AVX3", 1, 99, 12, 4, 0, 0, 0)])
    layers[1].tuning = tuning.pack([])
    broken = converter.write_lr(data, layers)
    x = random_input((1, 12, 12, 8))
    interpreter = delegate.make_interpreter(broken, num_threads=2)
    assert [r["source"] for r in delegate.kernel_tunings(interpreter)] == ["default", "default"]
    stock = run(delegate.make_interpreter(broken, use_delegate=False), x)
    np.testing.assert_allclose(run(interpreter, x), stock, rtol=1e-5, atol=1e-5)
    assert "ignoring the LR's kernel tuning record" in capfd.readouterr().err
    facts = [layer["tuning"] for layer in report.layer_reports(broken)]
    assert all("stored_error" in f and f["stored"] == [] for f in facts)
    # tune-kernels replaces a corrupt record rather than keeping it.
    path = tmp_path / "broken.tflite"
    path.write_bytes(broken)
    assert cli.main(["tune-kernels", str(path), "--no-stock"]) == 0
    assert all(len(tuning.decode(layer.tuning)) == 1
               for layer in converter.read_lr(path.read_bytes()))


def test_cache_file_serves_a_second_delegate(model_file, tmp_path):
    cache = tmp_path / "tuning.cache"
    data = model_file.read_bytes()
    first = delegate.make_interpreter(data, tuning="on", tuning_cache=str(cache))
    timed = delegate.kernel_tunings(first)
    assert [r["source"] for r in timed] == ["timed", "timed"]
    assert len([l for l in cache.read_text().splitlines() if not l.startswith("#")]) == 2
    second = delegate.make_interpreter(data, tuning="cache", tuning_cache=str(cache))
    cached = delegate.kernel_tunings(second)
    assert [r["source"] for r in cached] == ["cache", "cache"]
    assert [r["record"] for r in cached] == [r["record"] for r in timed]
    # Another thread count is another key: nothing cached for it.
    third = delegate.make_interpreter(data, num_threads=2, tuning="cache",
                                      tuning_cache=str(cache))
    assert [r["source"] for r in delegate.kernel_tunings(third)] == ["default", "default"]


@pytest.mark.parametrize("options, message", [
    ({"tuning": "always"}, "expects 'cache', 'on', 'retune' or 'off'. Received: tuning=always"),
    ({"tuning_cache": ""}, "expects a file path. Received: tuning_cache="),
])
def test_bad_tuning_options_are_refused(options, message):
    with pytest.raises(ValueError) as info:
        delegate.load_delegate(**options)
    assert message in str(info.value)


def test_tune_kernels_needs_an_lr(tmp_path, capsys):
    model = conv_stack((6, 6, 2), [dict(filters=3, kernel_size=3)])
    path = tmp_path / "plain.tflite"
    import tensorflow as tf

    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    # Exit status 2: an input of the wrong kind, a malformed value (cli.EPILOG).
    assert cli.main(["tune-kernels", str(path)]) == 2
    assert "Expected a .tflite file with a cocopie LR" in capsys.readouterr().err
    assert cli.main(["tune-kernels", str(path), "--input-shape", "1,x"]) == 2
    assert "Received: '1,x'" in capsys.readouterr().err
