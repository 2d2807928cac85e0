"""Mutated .tflite files (byte flips, truncations, header edits of a real model) through
``check``: the main process never dies, every case ends in a clear error or a result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import liteparity
from tests.conftest import Digits

MUTANTS = 200
PER_CHECK = 25


def mutate(content: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(content)
    kind = rng.integers(3)
    if kind == 0:  # flip a few bytes anywhere
        for pos in rng.integers(0, len(data), size=rng.integers(1, 8)):
            data[pos] = int(rng.integers(256))
    elif kind == 1:  # truncate
        data = data[: int(rng.integers(8, len(data)))]
    else:  # edit the header and root table offsets
        for pos in rng.integers(0, min(64, len(data)), size=rng.integers(1, 6)):
            data[pos] = int(rng.integers(256))
    return bytes(data)


@pytest.mark.slow
def test_mutated_models_never_take_check_down(check_all, digits: Digits, tmp_path: Path) -> None:
    reference = check_all.candidate("float32").path
    content = Path(check_all.candidate("int8").path).read_bytes()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(MUTANTS):
        path = tmp_path / f"mutant_{i:03d}.tflite"
        path.write_bytes(mutate(content, rng))
        paths.append(path)
    data = (digits.x_eval[:16], digits.y_eval[:16])
    outcomes = {"error": 0, "result": 0}
    for start in range(0, MUTANTS, PER_CHECK):
        result = liteparity.check(reference, candidates=paths[start : start + PER_CHECK], data=data)
        for row in result.candidates:
            if row.error is not None:
                assert row.error.strip() and "\n" not in row.error.strip()
                outcomes["error"] += 1
            else:
                assert row.metric is not None and row.metric.value is not None
                outcomes["result"] += 1
        assert result.reference.metric.value > 0.5  # the reference kept working
    assert sum(outcomes.values()) == MUTANTS
    assert outcomes["error"] > 0  # the mutations did break things
