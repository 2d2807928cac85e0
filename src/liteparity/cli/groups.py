"""Option groups: options declared once, as the parameters of a function that builds one value
from them (a spec), and spliced into every command that takes that value.

typer reads a command's options from its signature. ``uses(model=model_options)`` puts
``model_options``'s parameters in place of the command's ``model`` parameter in the signature
typer reads; when typer calls the command, their values go to ``model_options`` and the command
receives the ``ModelSpec`` it returns. So a command lists the groups it takes, not their
options, and a bad value fails in the group's function, inside the command's error handling.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any


def uses(**groups: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Replace each parameter named in ``groups`` by the options of its group function."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        params: list[inspect.Parameter] = []
        members: dict[str, list[str]] = {}
        for param in parameters(command):
            if param.name in groups:
                group = parameters(groups[param.name])
                members[param.name] = [p.name for p in group]
                params += group
            else:
                params.append(param)

        @functools.wraps(command)
        def call(**values: Any) -> Any:
            for name, group in groups.items():
                values[name] = group(**{key: values.pop(key) for key in members[name]})
            return command(**values)

        return with_signature(call, params)

    return decorate


def parameters(function: Callable[..., Any]) -> list[inspect.Parameter]:
    """A function's parameters with their annotations evaluated (typer needs the objects)."""
    return list(inspect.signature(function, eval_str=True).parameters.values())


def with_signature(
    function: Callable[..., Any], params: Iterable[inspect.Parameter]
) -> Callable[..., Any]:
    """Give ``function`` the signature typer reads. typer passes every value by keyword, so
    the parameters are keyword-only and may come in any order (defaults or not)."""
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
    names = [p.name for p in params]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise TypeError(f"option(s) declared twice in {function.__name__}: {duplicated}")
    function.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    function.__annotations__ = {p.name: p.annotation for p in params}
    return function
