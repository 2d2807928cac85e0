"""The one exception tree of liteparity.

    LiteparityError            anything the user can fix; the CLI prints one line and exits
    ├── UsageError             options that contradict each other, unknown recipe names
    ├── ModelError             a model file that is missing, of the wrong kind, or unloadable
    ├── DataError              data that is missing, malformed or does not fit the model
    │   └── UnreadableData     rows a worker read itself (Ray) and could not use
    ├── ConversionError        the TFLite converter refused (or crashed on) a recipe
    │   └── NotApplicable      the model cannot take the recipe (an op without its kernel)
    ├── InterpreterError       LiteRT failed (or crashed) running a candidate
    └── OutputError            a report, JSON file or model could not be written

    InternalError              a bug in liteparity: an invariant broke that no input can break;
                               the CLI prints the traceback and exits 3

Every class carries the exit code the CLI uses (2: bad input; 1 is reserved for broken
budgets; 3: a bug). ``InternalError`` is deliberately not a ``LiteparityError``: code that
catches user errors to report them must not swallow a bug. Any other exception escaping
liteparity is a bug too and keeps its traceback.

Third-party failures (TensorFlow, Keras, LiteRT) are caught by their specific exception types
where liteparity calls them, or inside the fences ``_tf`` and ``_litert``, and become one of
these with a one-line reason (``first_line``).
"""

from __future__ import annotations


class LiteparityError(Exception):
    """Base of every error a user can act on."""

    exit_code = 2


class UsageError(LiteparityError):
    """Options that cannot work together, unknown names."""


class ModelError(LiteparityError):
    """The model file is missing, of the wrong kind, or cannot be loaded."""


class DataError(LiteparityError):
    """The data is missing, malformed, or does not fit the model's inputs."""


class UnreadableData(DataError):
    """Rows that a worker reads itself (the Ray engine's actors read data files where they
    live) and cannot use: a NaN, a file its node does not see. Every model reads the same
    rows, so this ends the run as the same rows read by the caller would, rather than
    failing one candidate."""


class ConversionError(LiteparityError):
    """The TFLite converter failed for one recipe."""


class NotApplicable(ConversionError):
    """The model cannot take a recipe: the converter has no kernel of the recipe's types for
    one of its ops (int16x8 and HARD_SWISH). With ``--recipes all`` this is a finding about
    the model, not a failure of the run."""


class InterpreterError(LiteparityError):
    """LiteRT could not run a model, or its process crashed."""


class OutputError(LiteparityError):
    """A result could not be written (read-only or full disk, a directory in the way)."""


class InternalError(Exception):
    """A bug in liteparity (an invariant no input can break did break), or a TensorFlow/LiteRT
    whose private API changed under it. Keeps its traceback; the CLI exits 3."""

    exit_code = 3


def first_line(exc: object) -> str:
    """The first line of an error's text: LiteRT and TF errors run to pages."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
