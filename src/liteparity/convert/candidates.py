"""Candidates: the ``.tflite`` files a run measures, converted by recipes (once, cached with
``--resume``) or given by the user."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from liteparity.errors import LiteparityError
from liteparity.reference.base import read_tflite


@dataclass(frozen=True)
class Candidate:
    """A ``.tflite`` to measure: converted by a recipe or given by the user."""

    name: str
    recipe: str | None
    content: bytes | None = None
    path: str | None = None
    error: str | None = None
    #: why the recipe does not apply to the model (``--recipes all``): not measured, no error
    not_applicable: str | None = None
    #: why the converted model could not be written to ``--save-models`` (it is measured)
    not_saved: str | None = None


def _read_candidate(path: str | os.PathLike[str]) -> Candidate:
    name = f"tflite:{Path(path).name}"
    try:
        content = read_tflite(path)
    except LiteparityError as exc:
        if not Path(path).exists():
            raise
        return Candidate(name, None, path=str(path), error=str(exc))
    return Candidate(name, None, content=content, path=str(path))
