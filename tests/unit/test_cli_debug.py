"""``--debug`` shows TensorFlow's log in the command it was given to, and no other."""

from __future__ import annotations

import os

import pytest
import typer

from liteparity._tf import DEBUG_ENV
from liteparity.cli.app import handle_errors


def _seen() -> str | None:
    return os.environ.get(DEBUG_ENV)


def test_debug_is_set_for_its_command_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert handle_errors(_seen)(debug=True) == "1"
    assert DEBUG_ENV not in os.environ
    assert handle_errors(_seen)(debug=False) is None


def test_a_users_own_setting_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEBUG_ENV, "1")
    assert handle_errors(_seen)(debug=False) == "1"
    assert os.environ[DEBUG_ENV] == "1"


def test_an_exception_that_is_not_ours_is_a_bug_exit_3_never_1() -> None:
    """Exit 1 means "a budget is broken" to a CI job: a stray exception must not say it."""
    def broken() -> None:
        raise ValueError("a raw error from a library")

    with pytest.raises(typer.Exit) as exit_:
        handle_errors(broken)(debug=False)
    assert exit_.value.exit_code == 3


def test_a_commands_own_exit_passes_through() -> None:
    def budget_broken() -> None:
        raise typer.Exit(1)

    with pytest.raises(typer.Exit) as exit_:
        handle_errors(budget_broken)(debug=False)
    assert exit_.value.exit_code == 1
