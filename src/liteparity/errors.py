"""The one exception tree of liteparity.

    LiteparityError            anything the user can fix; the CLI prints one line and exits
    ├── UsageError             options that contradict each other, unknown recipe names
    ├── ModelError             a model file that is missing, of the wrong kind, or unloadable
    ├── DataError              data that is missing, malformed or does not fit the model
    ├── ConversionError        the TFLite converter refused a recipe
    └── InterpreterError       LiteRT failed (or crashed) running a candidate

Every class carries the exit code the CLI uses (2: bad input; 1 is reserved for broken
budgets). Any other exception is a bug in liteparity and keeps its traceback.
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


class ConversionError(LiteparityError):
    """The TFLite converter failed for one recipe."""


class InterpreterError(LiteparityError):
    """LiteRT could not run a model, or its process crashed."""
