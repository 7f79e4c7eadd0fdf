"""Layers the stock runtime runs faster stay with it: operator slices, the
delegate-vs-stock comparison of `cocopie tune-kernels`, and the delegate
declining a layer whose tuning record says `stock`."""

import json

import numpy as np
import pytest
from conftest import pruned_conv_stack_file, random_input, run

from cocopie_keras import cli, converter, delegate, stock_comparison
from cocopie_keras.converter import kernel_tuning as tuning
from cocopie_keras.converter import slicing

INPUT = (1, 12, 12, 8)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    # Compact storage: each convolution reads its filter through a DENSIFY.
    return pruned_conv_stack_file(tmp_path_factory, "stock", INPUT[1:], [
        dict(filters=24, kernel_size=3, padding="same", activation="relu"),
        dict(filters=16, kernel_size=3, strides=2, padding="same"),
    ], connectivity_rate=0.3)


def _stock(data, x):
    return run(delegate.make_interpreter(data, use_delegate=False), x)


def test_slices_chained_give_the_whole_model(model_file):
    data = model_file.read_bytes()
    layers = converter.read_lr(data)
    x = random_input(INPUT)
    values = x
    for layer in layers:
        sliced, op = slicing.slice_operator(data, layer.op_index, layer)
        (only,) = converter.read_lr(sliced)
        assert only.op_index == op
        np.testing.assert_array_equal(only.kernel_pattern, layer.kernel_pattern)
        # The delegate claims the slice's convolution and computes it alike.
        ours = delegate.make_interpreter(sliced, tuning="off")
        assert delegate.delegated_node_count(ours) == 1
        stock = _stock(sliced, values)
        np.testing.assert_allclose(run(ours, values), stock, rtol=1e-5, atol=1e-5)
        values = stock
    np.testing.assert_array_equal(values, _stock(data, x))


def test_slice_refuses_bad_operators(model_file):
    data = model_file.read_bytes()
    with pytest.raises(ValueError, match="Expected an operator index in"):
        slicing.slice_operator(data, 99)
    densify = 0  # compact storage puts the DENSIFY operators first
    with pytest.raises(ValueError, match="computed input first"):
        slicing.slice_operator(data, densify)


def test_comparison_times_both_runtimes(model_file):
    data = model_file.read_bytes()
    layer = converter.read_lr(data)[0]
    result = stock_comparison.compare_layer(data, layer, threads=2, rounds=2, invokes=2)
    assert result.op_index == layer.op_index
    assert result.delegate_us > 0 and result.stock_us > 0
    assert set(result.as_dict()) == {"delegate_us", "stock_us", "stock_wins"}
    # The whole-model timing runs each candidate file for real.
    stock_ms, ours_ms = stock_comparison._whole_model_ms(
        [(data, False), (data, True)], threads=2, input_shape=None, rounds=2, invokes=1)
    assert stock_ms > 0 and ours_ms > 0


@pytest.mark.parametrize("delegate_us, stock_us, stock_wins", [
    (100.0, 50.0, True), (100.0, 101.0, True), (100.0, 110.0, False)])
def test_a_tie_goes_to_stock(delegate_us, stock_us, stock_wins):
    assert stock_comparison.LayerComparison(0, delegate_us, stock_us).stock_wins is stock_wins


def _fixed_whole_model_times(monkeypatch, stock_ms, candidate_ms):
    """Whole-model timings: stock, then each candidate claim set in turn."""
    calls = []

    def whole_model_ms(files, threads, input_shape):
        calls.append([delegate.delegated_node_count(delegate.make_interpreter(
            data, tuning="cache")) for data, use in files if use])
        return [stock_ms] + list(candidate_ms[:len(files) - 1])

    monkeypatch.setattr(stock_comparison, "_whole_model_ms", whole_model_ms)
    return calls


@pytest.fixture()
def first_layer_slower(monkeypatch, model_file):
    """tune-kernels sees the stock runtime win on the first LR layer only,
    and the whole model run faster with the second one claimed."""
    first = converter.read_lr(model_file.read_bytes())[0].op_index

    def compare(data, layer, **kwargs):
        slow = layer.op_index == first
        return stock_comparison.LayerComparison(layer.op_index, 300.0 if slow else 100.0,
                                                200.0)

    monkeypatch.setattr(stock_comparison, "compare_layer", compare)
    _fixed_whole_model_times(monkeypatch, 10.0, [5.0])
    return first


def _comparisons(speedups):
    return {op: stock_comparison.LayerComparison(op, 100.0, 100.0 * s)
            for op, s in speedups.items()}


def test_whole_model_timing_picks_the_claimed_set(model_file, monkeypatch):
    data = model_file.read_bytes()
    layers = converter.read_lr(data)
    ops = [layer.op_index for layer in layers]
    # 1.1x and 3x alone: claiming both (threshold 1.02) or only the second
    # (1.15, 1.4, 2.0: one set) are the two candidates.
    comparisons = _comparisons({ops[0]: 1.1, ops[1]: 3.0})
    calls = _fixed_whole_model_times(monkeypatch, 10.0, [9.0, 6.0])
    claims, summary = stock_comparison.choose_claims(data, layers, comparisons)
    assert calls == [[2, 1]]  # the candidates as the delegate sees them
    assert claims == {ops[1]} and summary["threshold"] == 1.15
    assert summary["delegate_ms"] == 6.0 and summary["stock_ms"] == 10.0
    # A model not faster with any set claimed keeps none.
    _fixed_whole_model_times(monkeypatch, 10.0, [9.9, 10.5])
    claims, summary = stock_comparison.choose_claims(data, layers, comparisons)
    assert claims == frozenset() and summary["threshold"] is None
    # No layer faster alone: nothing to time.
    assert stock_comparison.choose_claims(data, layers, _comparisons({ops[0]: 0.5})) == (
        frozenset(), None)


def test_a_layer_stock_runs_faster_is_left_to_it(model_file, tmp_path, first_layer_slower,
                                                 capsys):
    tuned = tmp_path / "tuned.tflite"
    assert cli.main(["tune-kernels", str(model_file), "-o", str(tuned), "--threads", "2",
                     "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    assert [r["tuning"]["kernel"] == "stock" for r in rows] == [True, False]
    assert rows[0]["stock"] == {"delegate_us": 300.0, "stock_us": 200.0, "stock_wins": True,
                                "claimed": False}
    assert rows[1]["stock"]["claimed"] is True
    data = tuned.read_bytes()
    x = random_input(INPUT)
    interpreter = delegate.make_interpreter(data, num_threads=2)
    assert delegate.delegated_node_count(interpreter) == 1
    reports = {r["node"]: r for r in delegate.kernel_tunings(interpreter)}
    assert reports[first_layer_slower]["kernel"] == "stock"
    assert reports[first_layer_slower]["source"] == "lr"
    stored = tuning.decode(converter.read_lr(data)[0].tuning)
    assert tuning.entry_from_report(reports[first_layer_slower]) == stored[0]
    np.testing.assert_allclose(run(interpreter, x), _stock(data, x), rtol=1e-5, atol=1e-5)
    # Options that do not let the record decide claim the layer again.
    for options in (dict(tuning="off"), dict(tuning="retune"), dict(kernel="rows")):
        again = delegate.make_interpreter(data, **options)
        assert delegate.delegated_node_count(again) == 2, options
    # inspect shows the decision; a second tune-kernels keeps it untimed.
    assert cli.main(["inspect", str(tuned), "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert layers[0]["tuning"]["stored"][0]["kernel"] == "stock"
    assert cli.main(["tune-kernels", str(tuned), "--threads", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    assert rows[0]["tuning"]["kernel"] == "stock" and rows[0]["stock"] is None


def test_no_stock_keeps_every_layer(model_file, tmp_path, first_layer_slower):
    tuned = tmp_path / "tuned.tflite"
    assert cli.main(["tune-kernels", str(model_file), "-o", str(tuned), "--no-stock"]) == 0
    kernels = [tuning.decode(layer.tuning)[0].kernel
               for layer in converter.read_lr(tuned.read_bytes())]
    assert "stock" not in kernels
    assert delegate.delegated_node_count(delegate.make_interpreter(tuned.read_bytes())) == 2
