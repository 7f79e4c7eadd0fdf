"""Benchmark models, variants, MAC counting and the peak measurement."""

import keras
import numpy as np
import pytest

from cocopie_keras.bench import models, peak


def test_cifar_models_have_the_expected_layers():
    resnet = models.build_model("resnet20_cifar")
    convs = [l for l in resnet.layers if isinstance(l, keras.layers.Conv2D)]
    # 1 stem + 9 blocks × 2 convs + 2 downsampling projections.
    assert len(convs) == 21
    assert resnet.output_shape == (None, 10)
    vgg = models.build_model("vgg16_cifar")
    assert sum(isinstance(l, keras.layers.Conv2D) for l in vgg.layers) == 13


def test_same_seed_same_weights():
    a = models.build_model("resnet20_cifar", seed=3).get_weights()
    b = models.build_model("resnet20_cifar", seed=3).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_variants_prune_3x3_and_1x1_convs():
    model = models.build_model("resnet20_cifar")
    dense = models.count_macs(model)
    assert dense["nonzero_macs"] == dense["dense_macs"]
    info = models.apply_variant(model, "pattern_conn")
    # The 64→10 head is not a whole number of 4×4 blocks: left dense.
    assert info == {"pattern_convs": 19, "pointwise_convs": 2, "depthwise_convs": 0,
                    "dense_layers": 0}
    for layer in models.pointwise_conv_layers(model):
        kernel = layer.kernel.numpy()[0, 0]  # (in, out)
        # Whole (32-channel group, input channel) slices are removed together.
        cin, cout = kernel.shape
        groups = -(-cout // models.PATTERN_GROUP)
        removed = np.zeros((cin, groups), dtype=bool)
        for g in range(groups):
            block = kernel[:, g * models.PATTERN_GROUP:(g + 1) * models.PATTERN_GROUP]
            assert np.all((block == 0).all(axis=1) | (block != 0).all(axis=1))
            removed[:, g] = (block == 0).all(axis=1)
        assert removed.sum() == int(np.floor(models.CONNECTIVITY_RATE * removed.size))
    pruned = models.count_macs(model)
    # 4/9 of the weights in the 28 % of kernels kept: ~12 % of the 3×3 MACs.
    assert 0.08 < pruned["nonzero_macs"] / pruned["dense_macs"] < 0.16

    model = models.build_model("resnet20_cifar")
    models.apply_variant(model, "pattern")
    ratio = models.count_macs(model)["nonzero_macs"] / dense["dense_macs"]
    assert ratio == pytest.approx(4 / 9, abs=0.02)


def test_pattern_conn_removes_whole_dense_blocks_at_the_rate():
    model = models.build_model("vgg16_cifar")
    info = models.apply_variant(model, "pattern_conn")
    assert info["dense_layers"] == 1  # 512→512; the 512→10 head has no whole 4×4 blocks
    hidden, head = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    assert np.count_nonzero(head.kernel.numpy()) == head.kernel.numpy().size
    bh, bw = models.DENSE_BLOCK
    kernel = hidden.kernel.numpy()
    blocks = kernel.reshape(kernel.shape[0] // bh, bh, kernel.shape[1] // bw, bw)
    nonzero = (blocks != 0).sum(axis=(1, 3))
    assert set(np.unique(nonzero)) == {0, bh * bw}  # blocks removed or kept whole
    assert (nonzero == 0).mean() == pytest.approx(models.CONNECTIVITY_RATE, abs=0.005)

    model = models.build_model("vgg16_cifar")
    assert models.apply_variant(model, "pattern")["dense_layers"] == 0


def test_count_macs_of_a_known_conv():
    model = keras.Sequential([keras.Input((8, 8, 3)),
                              keras.layers.Conv2D(5, 3, padding="same")])
    assert models.count_macs(model)["dense_macs"] == 8 * 8 * 3 * 3 * 3 * 5


def test_bad_names_and_rates_are_refused():
    model = models.build_model("resnet20_cifar")
    with pytest.raises(ValueError, match="variant='sparse'"):
        models.apply_variant(model, "sparse")
    with pytest.raises(ValueError, match="connectivity_rate=1.5"):
        models.apply_variant(model, "pattern_conn", connectivity_rate=1.5)
    with pytest.raises(ValueError, match="model='vgg19'"):
        models.build_model("vgg19")


def test_peak_measurement_gives_positive_figures():
    limits = peak.measure_peak(1, quick=True)
    assert limits["errors"] == {}
    assert limits["sgemm_gflops"] > 0 and limits["fma_loop_gflops"] > 0
    assert limits["read_gbs"] > 0
    assert limits["peak_gflops"] == max(limits["sgemm_gflops"], limits["fma_loop_gflops"])
    with pytest.raises(ValueError, match="threads=0"):
        peak.measure_peak(0)


def test_normalize_activations_keeps_patterns_and_unit_scale():
    model = models.build_model("vgg16_cifar")
    models.apply_variant(model, "pattern_conn")
    zeros = [l.kernel.numpy() == 0 for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype("float32")
    before = models.normalize_activations(model, x)
    # Each pruned random layer scales the signal by ~0.3 (its gain, measured
    # after the layers before it are rescaled): unchecked, 15 of them shrink it
    # by ~1e-7, on the way to float32 denormals.
    assert np.prod(list(before.values())) < 1e-4
    after = models.normalize_activations(model, x)
    assert all(v == pytest.approx(1.0, rel=1e-3) for v in after.values())
    kept = [l.kernel.numpy() == 0 for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert all(np.array_equal(a, b) for a, b in zip(zeros, kept))


def test_body_models_have_no_classifier_head():
    import keras

    body = models.build_model("mobilenetv2_body")
    assert not any(isinstance(layer, keras.layers.Dense) for layer in body.layers)
    assert len(body.output.shape) == 4  # feature maps, not logits
    with pytest.raises(ValueError, match="vgg16_body"):
        models.build_model("vgg16_bodyy")


def test_pattern_variants_prune_depthwise_convs_too():
    model = models.build_model("mobilenetv2_body")
    info = models.apply_variant(model, "pattern")
    assert info["depthwise_convs"] == 17
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kept = (layer.kernel.numpy()[..., 0] != 0).sum(axis=(0, 1))  # per channel
            assert set(np.unique(kept)) <= {0, 4}
