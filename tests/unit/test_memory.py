"""Batch sizing from per-sample memory (``--memory-limit``) and the options that set it,
on fakes: the arithmetic is checked against hand-computed values."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from liteparity.errors import UsageError
from liteparity.measure import evaluate
from liteparity.measure.evaluate import Batching, row_bytes
from liteparity.runtime.memory import default_memory_limit, machine_memory, rows_within
from liteparity.specs import CheckOptions, memory_size

MB = 1 << 20


@pytest.mark.parametrize(
    ("budget", "per_sample", "wanted", "rows"),
    [
        (100 * MB, 10 * MB, 256, 10),  # the budget decides
        (100 * MB, 10 * MB + 1, 256, 9),  # rounds down: 10 rows would overflow
        (100 * MB, 1000, 256, 256),  # the wanted count decides
        (5 * MB, 10 * MB, 256, 1),  # one sample is the least any run needs
        (-3 * MB, 10 * MB, 256, 1),  # nothing left under the limit
        (100, 0, 8, 8),  # a model whose tensors cost nothing
    ],
)
def test_rows_within(budget: int, per_sample: int, wanted: int, rows: int) -> None:
    assert rows_within(budget, per_sample, wanted) == rows


def test_row_bytes_counts_inputs_reference_and_every_candidate() -> None:
    # 1000-byte inputs: read once, in 2 shared slots, copied by each of 2 workers = 5 copies
    assert row_bytes(1000, 7000, [3000, 4000]) == 5 * 1000 + 7000 + 3000 + 4000
    # a reference that cannot say costs what its largest candidate does
    assert row_bytes(1000, None, [3000, 4000]) == 5000 + 4000 + 7000
    assert row_bytes(1000, None, []) == 3000


def _runs(*per_sample: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(info=SimpleNamespace(bytes_per_sample=b)) for b in per_sample]


def _fake(monkeypatch: pytest.MonkeyPatch, resident: int) -> tuple[object, object]:
    monkeypatch.setattr(evaluate, "resident_bytes", lambda: resident)
    source = SimpleNamespace(bytes_per_sample=lambda: 2 * MB)
    binding = SimpleNamespace(sample_shapes=[(64, 64, 1)])  # 16 KiB of float32 per row
    return source, binding


def test_rows_per_block_fill_what_is_left_under_the_limit(monkeypatch) -> None:
    source, binding = _fake(monkeypatch, resident=100 * MB)
    per_row = 4 * (1 << 14) + 2 * MB + 3 * MB  # 4 input copies, reference, one candidate
    rows = Batching(memory_limit=200 * MB).rows(source, binding, _runs(3 * MB))  # type: ignore[arg-type]
    assert rows == (100 * MB) // per_row == 19
    # a generous limit: the usual 256 rows
    assert Batching(memory_limit=1 << 40).rows(source, binding, _runs(3 * MB)) == 256  # type: ignore[arg-type]
    # a forced batch larger than 256 gets its rows when they fit, and one line when not
    assert Batching(300, 1 << 40).rows(source, binding, _runs(3 * MB)) == 300  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"--batch-size 32 does not fit --memory-limit 200MB"):
        Batching(32, 200 * MB).rows(source, binding, _runs(3 * MB))  # type: ignore[arg-type]


def test_the_default_limit_is_half_the_machine() -> None:
    assert default_memory_limit() == machine_memory() // 2
    assert machine_memory() > 100 * MB


@pytest.mark.parametrize(
    ("text", "size"),
    [("4GB", 4 << 30), ("512MB", 512 * MB), ("1.5G", 3 << 29), ("300mb", 300 * MB),
     ("2GiB", 2 << 30), (64 * MB, 64 * MB), ("1048576", MB)],
)  # fmt: skip
def test_memory_sizes(text: str | int, size: int) -> None:
    assert memory_size("--memory-limit", text) == size
    assert CheckOptions(memory_limit=text).memory_limit == size


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lots", "--memory-limit 'lots': expected a size such as 4GB or 512MB"),
        ("4XB", "expected a size such as 4GB"),
        ("nanGB", "expected a size such as 4GB"),
        ("512KB", "--memory-limit must be at least 1MB, got '512KB'"),
        (-1, "--memory-limit must be at least 1MB, got -1"),
    ],
)
def test_bad_memory_limits_are_one_line(value: str | int, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        CheckOptions(memory_limit=value)


@pytest.mark.parametrize(("value", "message"), [(0, "at least 1, got 0"), (2.5, "an integer")])
def test_bad_batch_sizes_are_one_line(value: object, message: str) -> None:
    with pytest.raises(UsageError, match=f"--batch-size must be {message}"):
        CheckOptions(batch_size=value)  # type: ignore[arg-type]


def test_an_input_counts_four_bytes_a_value_and_a_free_dimension_as_one(monkeypatch) -> None:
    monkeypatch.setattr(evaluate, "resident_bytes", lambda: 0)
    source = SimpleNamespace(bytes_per_sample=lambda: 0)
    binding = SimpleNamespace(sample_shapes=[(-1, 10)])  # 40 bytes, 3 copies without candidates
    with pytest.raises(UsageError, match=r"8738 row\(s\)"):  # 1 MB // 120 bytes
        Batching(10_000, MB).rows(source, binding, [])  # type: ignore[arg-type]
