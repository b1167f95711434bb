"""The improved recipe: settings, schedules, augmentation, honest validation."""

import json

import keras
import numpy as np
import pytest

from conftest import epoch_of
from vggcifar import backends
from vggcifar.data import make_synthetic
from vggcifar.improvements import (
    augment_batch,
    compile_recipe,
    make_augmenter,
    make_optimizer,
    make_schedule,
    model_options,
)
from vggcifar.settings import ARTICLE_RECIPE, HOLDOUT_SHARE, IMPROVED_RECIPE, check_recipe, run_params
from vggcifar.training import count_steps, make_pipeline, run_training, split_validation

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)

# --- recipe settings ----------------------------------------------------------------


def test_recipes_name_the_same_settings_and_missing_ones_take_the_articles():
    assert set(IMPROVED_RECIPE) == set(ARTICLE_RECIPE)
    assert check_recipe({}) == ARTICLE_RECIPE
    assert check_recipe({"dropout": 0.3}) == {**ARTICLE_RECIPE, "dropout": 0.3}


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"optimizer": "rmsprop"}, r"optimizer must be one of \('adam', 'sgd'\), got 'rmsprop'"),
        ({"schedule": "step"}, "schedule must be one of"),
        ({"learning_rate": 0}, "learning_rate must be a number"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0.0, 1.0\)"),
        ({"weight_decay": -1e-4}, "weight_decay must be"),
        ({"warmup": "10%"}, "warmup must be"),
        ({"flip": "yes"}, "flip must be True or False"),
        ({"crop_padding": 2.5}, "crop_padding must be a whole number in 0..15"),
        ({"cutout": 40}, "cutout must be a whole number in 0..32"),
        ({"label_smoothing": True}, "label_smoothing must be"),
        ({"dropuot": 0.5}, r"unknown recipe setting\(s\) \['dropuot'\]"),
    ],
)
def test_a_bad_setting_is_named(setting, message):
    with pytest.raises(ValueError, match=message):
        check_recipe(setting)


def test_weight_decay_becomes_half_as_much_keras_l2():
    options = model_options(IMPROVED_RECIPE)
    assert options["l2"] == pytest.approx(IMPROVED_RECIPE["weight_decay"] / 2)
    assert options["dropout"] == IMPROVED_RECIPE["dropout"]
    # Keras L2(λ/2) adds (λ/2)·Σw², whose gradient is λ·w: the same as PyTorch's weight_decay=λ
    w = np.array([[0.5, -2.0]], dtype="float32")
    penalty = keras.ops.convert_to_numpy(keras.regularizers.L2(options["l2"])(keras.ops.convert_to_tensor(w)))
    assert penalty == pytest.approx(IMPROVED_RECIPE["weight_decay"] / 2 * (w**2).sum())


def test_sgd_has_nesterov_momentum_and_adam_keeps_its_defaults():
    sgd, adam = make_optimizer("sgd", 0.1), make_optimizer("adam", 0.001)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov and sgd.momentum == 0.9
    assert isinstance(adam, keras.optimizers.Adam) and adam.beta_1 == 0.9


# --- schedules ----------------------------------------------------------------------


def rates(schedule, steps):
    return [float(schedule(step)) for step in steps]


def test_constant_schedule_is_the_number_itself():
    assert make_schedule("constant", 0.001, epochs=20, steps_per_epoch=782) == 0.001


def cosine(peak, start, rise, total, step):
    """Straight up from start to peak over rise steps, then half a cosine down to 0 at total."""
    if step < rise:
        return start + (peak - start) * step / rise
    return peak * 0.5 * (1 + np.cos(np.pi * min(step - rise, total - rise) / (total - rise)))


def test_one_cycle_rises_from_peak_over_25_then_follows_a_cosine_to_zero():
    schedule = make_schedule("one_cycle", 0.1, epochs=10, steps_per_epoch=100, warmup=0.2)
    steps = [0, 100, 200, 600, 1000]  # 1,000 steps; the peak at step 200
    expected = [cosine(0.1, 0.004, 200, 1000, s) for s in steps]
    assert rates(schedule, steps) == pytest.approx(expected, abs=1e-6)
    assert rates(schedule, steps)[:3] == pytest.approx([0.004, 0.052, 0.1], abs=1e-6)
    assert float(schedule(1200)) == pytest.approx(0.0, abs=1e-9)  # never below 0 after the end


def test_cosine_warms_up_from_zero_then_follows_half_a_cosine():
    schedule = make_schedule("cosine", 0.1, epochs=10, steps_per_epoch=100, warmup=0.1)
    # warm-up over 100 steps, then cosine over the remaining 900
    expected = [0.0, 0.05, 0.1, 0.05 * (1 + np.cos(np.pi * 450 / 900)), 0.0]
    assert rates(schedule, [0, 50, 100, 550, 1000]) == pytest.approx(expected, abs=1e-6)


def test_schedule_length_follows_epochs():
    short = make_schedule("one_cycle", 0.1, epochs=5, steps_per_epoch=100, warmup=0.2)
    long = make_schedule("one_cycle", 0.1, epochs=50, steps_per_epoch=100, warmup=0.2)
    assert float(short(100)) == pytest.approx(0.1) and float(long(1000)) == pytest.approx(0.1)
    assert float(short(500)) == pytest.approx(0.0, abs=1e-9)
    assert float(long(2500)) == pytest.approx(cosine(0.1, 0.004, 1000, 5000, 2500))


def schedule_config(model):
    return model.optimizer.get_config()["learning_rate"]


def test_schedule_survives_saving_and_loads_with_keras_alone(tmp_path):
    schedule = make_schedule("one_cycle", 0.1, epochs=10, steps_per_epoch=100, warmup=0.2)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=make_optimizer("sgd", schedule), loss="categorical_crossentropy")
    model.fit(np.zeros((4, 3)), np.eye(2)[[0, 1, 0, 1]], epochs=3, verbose=0)  # 3 steps
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert schedule_config(reloaded) == schedule_config(model)
    assert schedule_config(reloaded)["class_name"] == "CosineDecay"
    assert schedule_config(reloaded)["module"].startswith("keras.")
    # the step counter came back too, so the schedule goes on where it was
    assert int(reloaded.optimizer.iterations) == 3
    assert float(reloaded.optimizer.learning_rate) == pytest.approx(0.004 + 0.096 * 3 / 200)


def test_compile_recipe_smooths_labels():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    compile_recipe(model, {**IMPROVED_RECIPE, "label_smoothing": 0.2}, epochs=2, steps_per_epoch=5)
    loss = model.loss
    assert isinstance(loss, keras.losses.CategoricalCrossentropy)
    assert loss.get_config()["label_smoothing"] == 0.2
    assert schedule_config(model)["class_name"] == "CosineDecay"


# --- augmentation -------------------------------------------------------------------


def pictures(n=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_augmented_batch_keeps_shape_and_dtype():
    x = pictures(8)
    out = augment_batch(x, [1, 2], flip=True, crop_padding=4, cutout=8)
    assert isinstance(out, np.ndarray) and out.shape == (8, 32, 32, 3) and out.dtype == np.uint8


def test_flips_are_left_right_only_and_both_outcomes_happen():
    x = pictures(64)
    out = augment_batch(x, [3, 4], flip=True, crop_padding=0)
    mirrored = [np.array_equal(o, p[:, ::-1]) for o, p in zip(out, x)]
    kept = [np.array_equal(o, p) for o, p in zip(out, x)]
    assert all(m or k for m, k in zip(mirrored, kept))
    assert 10 < sum(mirrored) < 54  # about half, never upside down
    assert not any(np.array_equal(o, p[::-1]) for o, p in zip(out, x))


def test_crop_is_a_shifted_window_of_the_mirror_padded_picture():
    x = pictures(16)
    out = augment_batch(x, [5, 6], flip=False, crop_padding=4)
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    shifts = []
    for o, p in zip(out, padded):
        found = [
            (dy, dx) for dy in range(9) for dx in range(9) if np.array_equal(o, p[dy : dy + 32, dx : dx + 32])
        ]
        assert found, "every output is a 32x32 window of the padded picture"
        shifts.append(found[0])
    assert len(set(shifts)) > 3  # pictures of one batch move differently


def test_cutout_hides_one_grey_square():
    x = np.zeros((16, 32, 32, 3), dtype=np.uint8)
    out = augment_batch(x, [7, 8], flip=False, crop_padding=0, cutout=8)
    for o in out:
        grey = np.argwhere((o == 128).all(axis=-1))
        assert len(grey) > 0 and set(np.unique(o)) <= {0, 128}
        rows, cols = np.ptp(grey[:, 0]) + 1, np.ptp(grey[:, 1]) + 1
        assert rows <= 8 and cols <= 8 and len(grey) == rows * cols  # one rectangle, clipped at edges


def test_same_seed_same_pictures_other_seed_others():
    x = pictures(16)
    a = augment_batch(x, [1, 1], crop_padding=4, cutout=8)
    assert np.array_equal(a, augment_batch(x, [1, 1], crop_padding=4, cutout=8))
    assert not np.array_equal(a, augment_batch(x, [1, 2], crop_padding=4, cutout=8))


def test_with_every_change_off_the_pictures_come_back_unchanged():
    """Notebook 06 shows a grid of augmented pictures; with the article's recipe (no flip,
    no shift, no cutout) it once crashed on what came back."""
    x = pictures(4)
    out = augment_batch(x, [1, 1], flip=False, crop_padding=0, cutout=0)
    assert isinstance(out, np.ndarray) and np.array_equal(out, x) and out.dtype == x.dtype


@pytest.mark.skipif(not backends.on_tensorflow(), reason="tf.data's augmentation: TensorFlow only")
def test_a_tensor_is_augmented_by_tensorflow_with_the_same_changes():
    import tensorflow as tf

    x = pictures(64)
    out = augment_batch(tf.constant(x), [3, 4], flip=True, crop_padding=0)
    assert isinstance(out, tf.Tensor) and out.dtype == tf.uint8
    mirrored = [np.array_equal(o, p[:, ::-1]) for o, p in zip(out.numpy(), x)]
    kept = [np.array_equal(o, p) for o, p in zip(out.numpy(), x)]
    assert all(m or k for m, k in zip(mirrored, kept)) and 10 < sum(mirrored) < 54


def test_no_augmenter_when_everything_is_off():
    assert make_augmenter(ARTICLE_RECIPE) is None
    assert callable(make_augmenter(IMPROVED_RECIPE))


def test_pipeline_augments_differently_every_epoch_and_repeatably_across_runs():
    x, y = pictures(24), np.arange(24) % 4

    def two_epochs():
        pipeline = make_pipeline(x, y, 4, 8, shuffle=False, seed=5, augment=make_augmenter(IMPROVED_RECIPE))
        return [np.concatenate([b for b, _ in epoch_of(pipeline)]) for _ in range(2)]

    first, second = two_epochs()
    assert first.shape == (24, 32, 32, 3) and first.dtype == np.float32 and first.max() <= 1.0
    assert not np.array_equal(first, second)  # a new augmentation every epoch
    again = two_epochs()
    assert np.array_equal(first, again[0]) and np.array_equal(second, again[1])


# --- honest validation --------------------------------------------------------------


def test_holdout_comes_from_the_training_split_stratified_and_leaves_test_alone():
    dataset = make_synthetic(per_class=40, test_per_class=7, num_classes=5, seed=0)
    x_train, y_train, x_val, y_val = split_validation(dataset, "holdout", seed=1)
    assert len(x_val) == round(HOLDOUT_SHARE * 200) and len(x_train) == 180
    assert np.bincount(y_val).tolist() == [4] * 5
    train_rows = {p.tobytes() for p in x_train}
    assert not any(p.tobytes() in train_rows for p in x_val)  # disjoint
    assert split_validation(dataset, "test")[2] is dataset.x_test
    with pytest.raises(ValueError, match="validation must be one of \\('test', 'holdout'\\)"):
        split_validation(dataset, "train")


def test_run_params_record_every_recipe_setting():
    params = run_params(data="synthetic", subset=3, validation="holdout", dropout=0.5)
    assert params["validation"] == "holdout" and params["dropout"] == 0.5
    assert {k: params[k] for k in ARTICLE_RECIPE if k != "dropout"} == {
        k: v for k, v in ARTICLE_RECIPE.items() if k != "dropout"
    }
    with pytest.raises(ValueError, match="validation must be one of"):
        run_params(validation="valid")
    with pytest.raises(ValueError, match="schedule must be one of"):
        run_params(schedule="linear")


def test_improved_run_validates_on_holdout_and_scores_the_test_split_once(tmp_path, narrow_vgg):
    run_dir = tmp_path / "improved"
    model, dataset, history = run_training(
        data="synthetic",
        subset=6,
        epochs=2,
        batch_size=16,
        run_dir=str(run_dir),
        validation="holdout",
        precision="float32",
        speedups=True,
        **IMPROVED_RECIPE,
    )
    params = json.loads((run_dir / "params.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert params["schedule"] == "one_cycle" and params["validation"] == "holdout"
    assert history["epoch"] == [1, 2]
    assert count_steps(dataset, params) == 4  # 54 of 60 pictures train, batches of 16
    assert [layer.name for layer in model.layers if "dropout" in layer.name] == ["dropout1", "dropout2"]
    assert model.get_layer("fc1").kernel_regularizer.l2 == pytest.approx(2.5e-4)
    scores = model.evaluate(
        make_pipeline(dataset.x_test, dataset.y_test, 10, 16), verbose=0, return_dict=True
    )
    assert metrics["test_accuracy"] == pytest.approx(scores["accuracy"])
    assert metrics["test_loss"] == pytest.approx(scores["loss"], rel=1e-4)
    # the learning rate followed the one-cycle curve: 2 epochs x 4 steps, now at the end
    assert int(model.optimizer.iterations) == 8
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)
