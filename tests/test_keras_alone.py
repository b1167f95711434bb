"""Every file the notebooks save loads with Keras alone, where vggcifar cannot even be imported."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np

from vggcifar import runs
from vggcifar.data import make_synthetic
from vggcifar.improvements import compile_recipe, make_augmenter, model_options
from vggcifar.model import build_vgg16
from vggcifar.runs import RunFolder
from vggcifar.saving import save_article_files
from vggcifar.settings import IMPROVED_RECIPE
from vggcifar.speed import SpeedUps, speedups_applied
from vggcifar.training import make_pipeline, pixels_to_float

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

KERAS_ALONE = textwrap.dedent("""
    import json, sys
    sys.modules["vggcifar"] = None  # any attempt to import the package fails
    try:
        import vggcifar  # noqa: F401
        raise SystemExit("vggcifar could be imported")
    except ImportError:
        pass
    import keras
    import numpy as np

    paths, pictures = json.loads(sys.argv[1]), np.load(sys.argv[2])
    out = {}
    for name, path in paths.items():
        if path.endswith(".weights.h5"):  # weights need an architecture: the .keras file's, rebuilt
            model = keras.models.model_from_json(keras.models.load_model(paths["article_keras"]).to_json())
            model.load_weights(path)
        else:
            model = keras.models.load_model(path)
            optimizer = getattr(model, "optimizer", None)  # None: saved without one
            optimizer = getattr(optimizer, "inner_optimizer", optimizer)
            out[name + "_optimizer"] = type(optimizer).__name__ if optimizer is not None else None
        out[name] = model.predict(pictures, verbose=0).tolist()
    print("RESULT", json.dumps(out))
""")


def load_with_keras_alone(paths, pictures, folder):
    np.save(folder / "pictures.npy", pictures)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            KERAS_ALONE,
            json.dumps({k: str(v) for k, v in paths.items()}),
            str(folder / "pictures.npy"),
        ],
        cwd=folder,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.split("RESULT ")[1])


def test_saved_files_load_with_keras_alone_and_predict_the_same(tmp_path):
    """Trained as notebook 06 trains, without the CPU speed-ups, saved as the run folder and
    notebook 05 save: each file loads in a fresh process without vggcifar and predicts
    exactly what the trained model predicts. (With the speed-ups on, as on this CPU, the
    runs of notebooks 03 and 06 are loaded with Keras alone in test_notebooks.py.)"""
    keras.utils.set_random_seed(0)
    dataset = make_synthetic(per_class=3, test_per_class=1, seed=0)
    model = compile_recipe(
        build_vgg16(blocks=((1, 8),) * 5, fc_units=16, **model_options(IMPROVED_RECIPE)),
        IMPROVED_RECIPE,
        epochs=2,
        steps_per_epoch=3,
    )
    pipeline = make_pipeline(
        dataset.x_train, dataset.y_train, 10, 10, shuffle=True, augment=make_augmenter(IMPROVED_RECIPE)
    )
    run = RunFolder(tmp_path / "run", {"epochs": 2})
    model.fit(
        pipeline,
        shuffle=False,
        epochs=2,
        initial_epoch=run.resume(model),
        callbacks=[run, SpeedUps(False)],
        verbose=0,
    )
    assert speedups_applied(model) is False
    files = save_article_files(model, tmp_path / "run")
    paths = {
        "model_keras": tmp_path / "run" / runs.MODEL,
        "article_keras": files["keras"],
        "article_weights": files["weights"],
        "article_h5": files["legacy_h5"],
    }
    pictures = pixels_to_float(dataset.x_test)
    expected = model.predict(pictures, verbose=0)

    alone = load_with_keras_alone(paths, pictures, tmp_path)
    assert alone["article_keras_optimizer"] == "SGD"  # the .keras file, saved after fit, can go on training
    assert alone["model_keras_optimizer"] is None and alone["article_h5_optimizer"] is None  # weights only
    for name in paths:  # every file gives back exactly the model that was trained
        np.testing.assert_array_equal(np.asarray(alone[name]), expected, err_msg=name)
