"""Numbers as plain JSON values and back, without loss.

JSON has no NaN or infinity (``json.dumps`` would write the invalid literals ``NaN`` and
``Infinity``), yet measurements hold them: an empty tensor's range is ``[inf, -inf]``, an exact
match has an SQNR of ``inf``, a broken model's error can be NaN. They travel as the strings
``"nan"``, ``"inf"`` and ``"-inf"``; ``number`` reads them back, so saved evidence gives the
same findings as the run that measured it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


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
