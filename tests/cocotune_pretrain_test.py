"""Teacher–student wiring: one model, gradients reach only the blocks."""

import keras
import numpy as np
import tensorflow as tf

from cocopie_keras.cocotune import pretrain, surgery
from cocotune_helpers import residual_model, synthetic_data


def test_gradients_reach_only_the_blocks():
    teacher = residual_model(blocks=3)
    modules = surgery.infer_modules(teacher)
    block_list = (((0, 0.5), (1, 0.5)), ((2, 0.7),))
    model, students, frozen = pretrain.teacher_student_model(teacher, modules, block_list)
    assert teacher.trainable and all(layer.trainable for layer in teacher.layers)
    student_ids = {id(v) for s in students for v in s.trainable_variables}
    teacher_ids = {id(v) for v in frozen.weights}
    assert student_ids and {id(v) for v in model.trainable_variables} == student_ids
    assert not student_ids & teacher_ids
    x, _ = synthetic_data(8)
    # Watch every variable, the teacher's included: only students get a gradient.
    variables = list(frozen.weights) + [v for s in students for v in s.trainable_variables]
    with tf.GradientTape() as tape:
        tape.watch([v.value for v in variables])
        loss = tf.reduce_sum(model(x, training=True))
    grads = tape.gradient(loss, [v.value for v in variables])
    for variable, grad in zip(variables, grads):
        if id(variable) in teacher_ids:
            assert grad is None or not np.any(np.asarray(grad)), variable.path
    assert any(g is not None and np.any(np.asarray(g))
               for v, g in zip(variables, grads) if id(v) in student_ids)


def test_pretraining_reduces_block_error_and_leaves_teacher_unchanged():
    teacher = residual_model(blocks=2)
    before = [w.copy() for w in teacher.get_weights()]
    modules = surgery.infer_modules(teacher)
    block_list = (((0, 0.7),), ((1, 0.5),))
    x, _ = synthetic_data(128)
    keras.utils.set_random_seed(0)
    start, _, _ = pretrain.teacher_student_model(teacher, modules, block_list)
    error_before = np.asarray(start(x)).mean(axis=0)
    weights = pretrain.pretrain_blocks(teacher, modules, block_list, x, epochs=8,
                                       batch_size=32, learning_rate=3e-3)
    for old, new in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert teacher.trainable
    # Each block's layers carry pruned shapes; assembled networks accept them.
    assert weights[0]["b0_conv1"][0].shape[-1] == round(8 * 0.3)
    net = pretrain.assemble(teacher, modules, (0.7, 0.5), [0, 1], weights)
    np.testing.assert_array_equal(net.get_layer("b0_conv1").get_weights()[0],
                                  weights[0]["b0_conv1"][0])
    trained, _, _ = pretrain.teacher_student_model(teacher, modules, block_list)
    for k, layers in enumerate(weights):
        student = trained.get_layer(f"block_{k}")
        for name, value in layers.items():
            student.get_layer(name).set_weights(value)
    error_after = np.asarray(trained(x)).mean(axis=0)
    assert np.all(error_after < error_before), (error_before, error_after)


def test_block_weights_round_trip(tmp_path):
    data = [{"a": [np.ones((2, 3)), np.zeros(3)]}, {"b": [np.arange(4.0)]}]
    pretrain.save_block_weights(tmp_path / "w.npz", data)
    loaded = pretrain.load_block_weights(tmp_path / "w.npz")
    assert loaded[0].keys() == {"a"} and loaded[1].keys() == {"b"}
    np.testing.assert_array_equal(loaded[1]["b"][0], np.arange(4.0))
