import keras
import numpy as np
import pytest

from cocopie_keras import training


def images(n=6, size=5):
    return np.arange(n * size * size * 3, dtype=np.float32).reshape(n, size, size, 3)


def test_batches_are_crops_of_the_images_with_one_hot_labels():
    x, y = images(), np.array([0, 1, 2, 0, 1, 2])
    batches = training.FlipCropBatches(x, y, batch_size=4, num_classes=3, seed=1, pad=1)
    assert len(batches) == 1  # the partial batch is dropped
    (batch, labels), = list(batches.epoch(0))
    assert batch.shape == (4, 5, 5, 3) and batch.dtype == np.float32
    assert labels.shape == (4, 3) and np.all(labels.sum(axis=1) == 1)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    for image, label in zip(batch, labels):
        source = int(np.argmax(label))
        # Some window of some image of that class, mirrored or not, is the crop.
        found = any(np.array_equal(window, image) or np.array_equal(window[:, ::-1], image)
                    for index in np.flatnonzero(y == source)
                    for dy in range(3) for dx in range(3)
                    for window in [padded[index, dy:dy + 5, dx:dx + 5]])
        assert found


def test_without_pad_and_flip_batches_are_the_images_shuffled():
    x, y = images(), np.arange(6) % 3
    batches = training.FlipCropBatches(x, y, 3, 3, seed=0, pad=0, flip=False)
    seen = np.concatenate([b for b, _ in batches.epoch(0)])
    assert sorted(map(bytes, seen)) == sorted(map(bytes, x))


def test_an_epoch_is_the_same_every_time_and_differs_from_the_next():
    x, y = images(), np.arange(6) % 3
    batches = training.FlipCropBatches(x, y, 2, 3, seed=5)
    first = [b for b, _ in batches.epoch(3)]
    again = [b for b, _ in batches.epoch(3)]
    other = [b for b, _ in batches.epoch(4)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_mirrored_crop_is_the_mirror_of_the_window():
    x = images(n=1)
    batches = training.FlipCropBatches(x, [0], 1, 1, seed=0, pad=0)
    flipped = [b[0] for epoch in range(8) for b, _ in batches.epoch(epoch)]
    assert any(np.array_equal(b, x[0][:, ::-1]) for b in flipped)
    assert any(np.array_equal(b, x[0]) for b in flipped)


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=7), "batch_size=7"),
    (dict(batch_size=0), "batch_size=0"),
    (dict(pad=5), "pad=5"),
])
def test_bad_batch_arguments(kwargs, match):
    arguments = dict(x=images(), y=np.zeros(6, int), batch_size=2, num_classes=2) | kwargs
    with pytest.raises(ValueError, match=match):
        training.FlipCropBatches(**arguments)


def test_dataset_yields_the_epochs_in_order():
    x, y = images(), np.arange(6) % 3
    batches = training.FlipCropBatches(x, y, 3, 3, seed=2)
    from_dataset = [b.numpy() for b, _ in batches.dataset().take(4)]
    expected = [b for epoch in (0, 1) for b, _ in batches.epoch(epoch)]
    assert all(np.array_equal(a, b) for a, b in zip(from_dataset, expected))


def test_one_cycle_rises_then_falls_to_zero_and_serializes():
    schedule = training.OneCycle(1.0, total_steps=10, warmup_steps=2)
    rates = [float(schedule(step)) for step in range(11)]
    assert rates[0] == pytest.approx(0.1) and rates[2] == pytest.approx(1.0)
    assert rates[10] == 0.0 and rates[6] == pytest.approx(0.5)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert float(again(6)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="warmup_steps=10"):
        training.OneCycle(1.0, 10, 10)


def test_compile_classifier_choices_and_refusals():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    training.compile_classifier(model, "sgd", 0.1, weight_decay=1e-4, label_smoothing=0.1)
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model.optimizer.nesterov
    training.compile_classifier(model, "adam", 1e-3, one_hot=False)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        training.compile_classifier(model, "rmsprop", 0.1)
    with pytest.raises(ValueError, match="one_hot=False"):
        training.compile_classifier(model, "sgd", 0.1, label_smoothing=0.1, one_hot=False)
