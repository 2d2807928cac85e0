"""How many samples fit in a memory budget: one rule for every batch liteparity chooses.

A fixed batch does not fit every model: 256 rows of 224x224 images through EfficientNetB0
held 7 GB of intermediate tensors. Every batch is therefore sized from what one sample costs
(the model's computed tensors, read from its graph) and a budget: the per-layer probe's
``INSPECT_BUDGET_BYTES`` for an inspected model, ``--memory-limit`` for an evaluation.
"""

from __future__ import annotations

import math
import os
import resource
import sys
from collections.abc import Sequence

import numpy as np

#: Share of the machine's memory an evaluation may fill by default (``--memory-limit``).
DEFAULT_MEMORY_SHARE = 0.5


def sample_bytes(dtype: object, shape: Sequence[int | None]) -> int:
    """Bytes one sample of a tensor holds: ``shape`` without its batch dimension, a free
    (-1, 0 or None) dimension counted as 1."""
    return int(np.dtype(dtype).itemsize) * math.prod(max(int(d or 1), 1) for d in shape)  # type: ignore[call-overload]


def rows_within(budget_bytes: int, bytes_per_sample: int, wanted: int) -> int:
    """The largest count of samples up to ``wanted`` that ``bytes_per_sample`` each fit in
    ``budget_bytes``; at least 1 (one sample is the least any run needs)."""
    return max(1, min(wanted, budget_bytes // max(bytes_per_sample, 1)))


def machine_memory() -> int:
    """Physical memory of this machine, in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_memory_limit() -> int:
    """``--memory-limit`` when none is given: ``DEFAULT_MEMORY_SHARE`` of the machine."""
    return int(machine_memory() * DEFAULT_MEMORY_SHARE)


def resident_bytes() -> int:
    """This process's resident memory now (Linux: ``/proc/self/statm``; elsewhere its peak,
    which is at least as much: the budget left is then under-, never over-estimated)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
