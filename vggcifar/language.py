"""The language of the messages a student reads: English (the default) or Japanese.

The notebooks' setup cell sets the environment variable ``VGGCIFAR_LANGUAGE`` before
``import vggcifar``: ``"en"`` in ``notebooks/en/``, ``"ja"`` in ``notebooks/ja/``. The
package reads it each time it makes a message (:func:`language`), not when it is
imported, so a kernel that changes it sees the change at once. Unset means ``"en"``;
any other value is refused, naming the variable and the two allowed values, when the
first message is made.

**Where the translations live.** Each message keeps its English and its Japanese side by
side, in the one place where it is made, through :func:`say`::

    raise ParameterError(
        say(
            en=f"{name} must be True or False, got {value!r}",
            ja=f"{name} は True か False にしてください(指定された値: {value!r})",
        )
    )

Not a catalogue in a separate file: a message is built from the values at hand (the
parameter's name, the run folder, the epochs), and beside the code a reader sees both
texts, the values they use and the condition that raises them at once; a change to the
English shows the Japanese next to it in the same diff. Both texts are formatted, one is
returned (a message is a few hundred characters, made once). The English is the
reference: the Japanese says the same facts, with the same numbers, names and values,
in the project's Japanese voice (``docs/glossary.md``). Parameter names, file names and
values stay in code form in both.

What is translated: what a student meets on the normal path (the environment report, the
missing run, the training-time note, the run folder's notes, the end of a run) and the
errors of the teacher's problem table in ``docs/teaching.md`` (the parameters, a run
folder with another run or locked by another process, a full disk, a failed download,
Google Drive outside Colab). Records written to disk (``params.json``,
``environment.json`` ...) never depend on the language.

This module imports nothing but the standard library.
"""

from __future__ import annotations

import os

#: The environment variable that chooses the language.
VARIABLE = "VGGCIFAR_LANGUAGE"
#: The languages of the messages; the first one is the default.
LANGUAGES = ("en", "ja")
DEFAULT = LANGUAGES[0]


class LanguageError(ValueError):
    """``VGGCIFAR_LANGUAGE`` holds a value that is not a language of the messages."""


def language():
    """``"en"`` or ``"ja"``, as ``VGGCIFAR_LANGUAGE`` says now (unset: ``"en"``).

    Raises :class:`LanguageError`, in both languages, for any other value.
    """
    value = os.environ.get(VARIABLE)
    if value is None:
        return DEFAULT
    if value in LANGUAGES:
        return value
    raise LanguageError(
        f"{VARIABLE}={value!r} is not a language of vggcifar's messages; allowed: "
        f"{' or '.join(repr(name) for name in LANGUAGES)} (unset: {DEFAULT!r}), "
        f'e.g. os.environ["{VARIABLE}"] = "ja" before import vggcifar. / '
        f"{VARIABLE}={value!r} は vggcifar のメッセージの言語ではありません。"
        f"{' か '.join(repr(name) for name in LANGUAGES)} を指定してください"
        f'(指定しなければ {DEFAULT!r})。例: import vggcifar の前に os.environ["{VARIABLE}"] = "ja"'
    )


def say(*, en, ja):
    """The message in the student's language: ``en`` or ``ja`` (see the module's help)."""
    return ja if language() == "ja" else en
