"""The public surface: a small, explicit, sorted ``__all__``."""

from __future__ import annotations

import liteparity


def test_all_is_explicit_and_importable() -> None:
    # (ruff's RUF022 keeps it sorted, constants first)
    assert len(set(liteparity.__all__)) == len(liteparity.__all__)
    assert {"check", "explain", "locate", "LiteModel", "LiteparityError"} <= set(liteparity.__all__)
    assert set(liteparity.__all__) - {"__version__"} == set(liteparity._EXPORTS)
    for name in liteparity.__all__:
        assert getattr(liteparity, name) is not None


def test_errors_form_one_tree_with_exit_codes() -> None:
    for name in ("UsageError", "ModelError", "DataError", "ConversionError", "InterpreterError"):
        cls = getattr(liteparity, name)
        assert issubclass(cls, liteparity.LiteparityError)
        assert cls.exit_code == 2
