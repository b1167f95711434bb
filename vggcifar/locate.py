"""Where the step notebooks (00–08) are, in the student's language, however vggcifar was installed.

The command line (``python -m vggcifar run`` / ``sweep``) and notebook 08 run these
notebooks with papermill, so they must be found from an installed package as well as
from a clone. They come in two sets, ``en/`` and ``ja/``, one language each (written from
``notebooks/source/`` by ``tools/make_language_notebooks.py``). A wheel, ``pip install .``
and ``pip install --no-deps git+...`` ship both sets inside the package, as
``vggcifar/notebooks/en/`` and ``vggcifar/notebooks/ja/`` (pyproject.toml maps the
repository's ``notebooks/`` folder there); an editable install and a clone keep them in
the repository's ``notebooks/`` folder, beside the package.

The set is the one the notebooks' setup cell names in ``VGGCIFAR_LANGUAGE`` (``"en"``,
the default, or ``"ja"``), so notebook 08 in Japanese sweeps the Japanese notebooks.

This module imports neither Keras nor TensorFlow, so finding a notebook costs nothing.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from .language import LANGUAGES
from .language import language as current_language

#: The folder's name, in the repository and inside the installed package.
FOLDER = "notebooks"


class NotebooksMissing(FileNotFoundError):
    """Neither the installed package nor a clone holds the notebooks; the message says what to do."""


def notebooks_folder(language=None):
    """The folder that holds the step notebooks (``00_article.ipynb`` ... ``08_sweeps.ipynb``).

    ``language``: ``"en"`` or ``"ja"``; None takes ``VGGCIFAR_LANGUAGE`` (default ``"en"``).
    The copy shipped inside the package comes first (an installed wheel), then the
    repository's ``notebooks/`` beside the package (a clone, an editable install).
    Raises :class:`NotebooksMissing` when neither has them: a vggcifar installed
    before the notebooks were shipped, say.
    """
    language = language or current_language()  # one rule: vggcifar.language's
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {list(LANGUAGES)}, got {language!r}")
    package = importlib.resources.files(__package__)
    candidates = [package / FOLDER / language, Path(__file__).resolve().parents[1] / FOLDER / language]
    for folder in candidates:
        # A real folder only: papermill reads and runs the files (not from inside a zip).
        if isinstance(folder, Path) and any(folder.glob("*.ipynb")):
            return folder
    from . import REPOSITORY, __version__

    raise NotebooksMissing(
        f"vggcifar {__version__} in {Path(__file__).parent} has no notebooks "
        f"(looked in {', '.join(str(c) for c in candidates)}): reinstall it, "
        f"pip install --no-deps --force-reinstall git+{REPOSITORY}, or run from a clone of {REPOSITORY}"
    )
