"""The ``liteparity`` command: a thin shell over the Python API, one module per command.

Library errors (``LiteparityError``) become one red line and their exit code here, and nowhere
else; ``--debug`` shows the traceback. Exit codes: 0 fine, 1 a budget is broken, 2 bad input
or a candidate that could not be measured, 3 a bug in liteparity (``InternalError``, or any
exception that is not liteparity's own: the traceback is printed), 130 interrupted. The command
modules import only typer and the option groups at the top, so ``liteparity --help`` stays
fast.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any

import click
import typer

from liteparity import __version__
from liteparity._tf import DEBUG_ENV
from liteparity.cli.check import CHECK_HELP, EXPLAIN_HELP, check_or_explain
from liteparity.cli.compare_qat import compare_qat
from liteparity.cli.demo import demo
from liteparity.cli.fix import fix
from liteparity.cli.groups import parameters, with_signature
from liteparity.cli.locate import locate
from liteparity.cli.output import console, err
from liteparity.cli.qparams import qparams
from liteparity.errors import InternalError, LiteparityError, first_line

app = typer.Typer(
    name="liteparity",
    help="Find, explain and fix the accuracy gap between a TensorFlow/Keras model and its "
    "TensorFlow Lite (LiteRT) conversion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]


def _fail(message: str, code: int) -> None:
    err.print(f"[bold red]liteparity:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM (what ``timeout`` and CI runners send), raised where the program is so that it
    unwinds like Ctrl-C: workers stop, shared-memory batches and temporary files go."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``command`` a ``--debug`` option, and turn library errors into one line and an
    exit code (tracebacks with --debug); a bug (``InternalError``) always shows its traceback."""

    @functools.wraps(command)
    def wrapper(*, debug: bool = False, **values: Any) -> Any:
        # TensorFlow's start-up log too (see _tf.import_tensorflow), in this process and the
        # workers it starts; only for this command (the API may run more in this process).
        before = os.environ.get(DEBUG_ENV)
        if debug:
            os.environ[DEBUG_ENV] = "1"
        try:
            return command(**values)
        except LiteparityError as exc:
            if debug:
                raise
            _fail(str(exc), exc.exit_code)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException):
            raise  # the command's own exit (a broken budget: 1) and typer's usage errors
        except Exception as exc:  # any other exception is a bug: exit 3, never 1
            err.print(traceback.format_exc(), end="", markup=False, highlight=False, soft_wrap=True)
            _fail(
                f"internal error (a bug in liteparity, please report it): {first_line(exc)}",
                InternalError.exit_code,
            )
        except KeyboardInterrupt as exc:
            code = 128 + signal.SIGTERM if isinstance(exc, Terminated) else 130
            _fail("interrupted; no partial output was written", code)
        finally:
            if before is None:
                os.environ.pop(DEBUG_ENV, None)

    debug = inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY, default=False)
    return with_signature(wrapper, [*parameters(command), debug.replace(annotation=Debug)])


COMMANDS: tuple[tuple[str, Callable[..., Any], str | None], ...] = (
    ("check", check_or_explain, CHECK_HELP),
    ("explain", check_or_explain, EXPLAIN_HELP),
    ("locate", locate, None),
    ("fix", fix, None),
    ("compare-qat", compare_qat, None),
    ("qparams", qparams, None),
    ("demo", demo, None),
)

for _name, _command, _help in COMMANDS:
    app.command(_name, help=_help)(handle_errors(_command))


def version_callback(value: bool) -> None:
    if value:
        console.print(f"liteparity {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Find, explain and fix the accuracy gap between a Keras/TF model and its TFLite twin."""


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(app())
