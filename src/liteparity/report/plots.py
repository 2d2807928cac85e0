"""Plots for the HTML report, as inline SVG (matplotlib, no files, no network)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Figure size in inches: wide enough for the report's column.
SIZE = (7.0, 3.2)


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog: the SVG sits inside HTML


def _figure(cols: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, cols, figsize=SIZE)


def pareto(points: Sequence[dict[str, Any]], metric: str) -> str:
    """Metric against size and against latency, one labelled dot per model."""
    fig, axes = _figure(2)
    for ax, key, label in (
        (axes[0], "size_kb", "size (KB)"),
        (axes[1], "latency_ms", "latency per sample (ms)"),
    ):
        for p in points:
            if p.get(key) is None or p.get("metric") is None:
                continue
            ax.scatter(p[key], p["metric"], color="tab:red" if p.get("bad") else "tab:blue")
            ax.annotate(
                p["name"],
                (p[key], p["metric"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    return _svg(fig)


def histograms(samples: dict[str, Sequence[float]]) -> str:
    """Distribution of candidate − reference errors, one line per candidate."""
    fig, ax = _figure()
    for name, values in samples.items():
        v = np.asarray(values, dtype=np.float64)
        if v.size and np.any(v):
            ax.hist(v, bins=60, histtype="step", label=name, log=True)
    ax.set_xlabel("candidate − reference")
    ax.set_ylabel("count (log)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _svg(fig)


def batches(per_batch: dict[str, Sequence[float]], metric: str) -> str:
    """The metric over the evaluation batches (the spread seed 003's figure showed)."""
    fig, ax = _figure()
    names = [n for n, v in per_batch.items() if len(v)]
    ax.boxplot([per_batch[n] for n in names])
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30, fontsize=7)
    ax.set_ylabel(f"{metric} per batch")
    ax.grid(alpha=0.3)
    return _svg(fig)


def layers(
    names: Sequence[str], local: Sequence[float | None], propagated: Sequence[float | None]
) -> str:
    """Local and propagated SQNR along the network's depth."""
    fig, ax = _figure()
    x = np.arange(len(names))
    for values, label in ((local, "local"), (propagated, "propagated")):
        y = [np.nan if v is None or not np.isfinite(v) else v for v in values]
        ax.plot(x, y, marker="o", label=label)
    ax.set_xticks(x, names, rotation=45, fontsize=7, ha="right")
    ax.set_ylabel("SQNR (dB, higher is better)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _svg(fig)


def ranges(bars: Sequence[dict[str, Any]]) -> str:
    """For tensors named in findings: the range quantization covers against the range the
    values need."""
    fig, ax = _figure()
    for i, b in enumerate(bars):
        lo, hi = b["covered"]
        ax.barh(
            i + 0.2,
            hi - lo,
            left=lo,
            height=0.35,
            color="tab:blue",
            label="quantized range" if i == 0 else None,
        )
        if b.get("needed"):
            lo, hi = b["needed"]
            ax.barh(
                i - 0.2,
                hi - lo,
                left=lo,
                height=0.35,
                color="tab:red",
                label="values on the data" if i == 0 else None,
            )
    ax.set_yticks(range(len(bars)), [b["name"] for b in bars], fontsize=7)
    ax.set_xlabel("real value")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _svg(fig)
