"""Numbers as plain JSON values and back, without loss.

JSON has no NaN or infinity (``json.dumps`` would write the invalid literals ``NaN`` and
``Infinity``), yet measurements hold them: an empty tensor's range is ``[inf, -inf]``, an exact
match has an SQNR of ``inf``, a broken model's error can be NaN. They travel as the strings
``"nan"``, ``"inf"`` and ``"-inf"``; ``number`` reads them back, so saved evidence gives the
same findings as the run that measured it.

Result documents are stricter: a field holds one JSON type (a number or ``null``), so a
non-finite measurement is ``null`` there and its kind is named in a ``special`` map beside it
(``split_special``); ``strict_json`` writes a document with no ``NaN``/``Infinity`` literal,
whatever it holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def ratio(part: float, whole: float) -> float | None:
    """``part / whole``, or None when there is no whole (no samples: no share to report)."""
    return part / whole if whole else None


def json_number(value: Any) -> Any:
    """A float as JSON can hold it (non-finite ones as strings); anything else unchanged."""
    if isinstance(value, np.floating):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def number(value: Any) -> Any:
    """The inverse of ``json_number``."""
    return _NON_FINITE[value] if isinstance(value, str) and value in _NON_FINITE else value


def json_numbers(values: Iterable[Any]) -> list[Any]:
    """A sequence (or a 1-d array) of floats as a JSON list."""
    return [json_number(float(v)) for v in values]


def numbers(values: Iterable[Any]) -> list[float]:
    """The inverse of ``json_numbers``."""
    return [float(number(v)) for v in values]


def split_special(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``values`` with each non-finite float as ``None``, and ``{name: "nan"|"inf"|"-inf"}``
    for those: a field keeps one JSON type and nothing is lost (``join_special`` reverses it)."""
    plain: dict[str, Any] = {}
    special: dict[str, str] = {}
    for key, value in values.items():
        encoded = json_number(value)
        if isinstance(encoded, str) and encoded in _NON_FINITE and not isinstance(value, str):
            plain[key], special[key] = None, encoded
        else:
            plain[key] = encoded
    return plain, special


def join_special(values: dict[str, Any], special: dict[str, str] | None) -> dict[str, Any]:
    """The inverse of ``split_special`` (older documents held the strings in the field)."""
    special = special or {}
    return {key: number(special.get(key, value)) for key, value in values.items()}


def strict_json(document: Any, indent: int | None = 2) -> str:
    """JSON text that strict parsers accept: any non-finite float left is ``null``."""
    return json.dumps(_finite(document), indent=indent, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
