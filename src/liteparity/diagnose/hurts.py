"""Which outputs a finding hurts: every finding names them (``evidence["outputs"]``).

A finding about a tensor or a layer hurts the outputs its values flow into (followed through
the candidate's graph, op by op); a finding about an output (``decision-lost``) hurts that
output; a finding about the whole model (float noise, weights-only, an unexplained loss)
hurts every output."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from liteparity.diagnose.evidence import Evidence
from liteparity.results.check import Finding
from liteparity.runtime.anatomy import Anatomy


def with_outputs(finding: Finding, evidence: Evidence) -> Finding:
    """``finding`` with ``evidence["outputs"]``: the outputs it hurts, by name."""
    if "outputs" in finding.evidence:
        return finding
    hurt = hurt_outputs(finding, evidence)
    return dataclasses.replace(finding, evidence={**finding.evidence, "outputs": hurt})


def hurt_outputs(finding: Finding, evidence: Evidence) -> list[str]:
    every = [name for name, _ in evidence.output_tensors] or [
        o.name for o in evidence.result.outputs
    ]
    if "output" in finding.evidence:
        return [str(finding.evidence["output"])]
    labels = _labels(finding)
    start = {t.index for t in evidence.anatomy.tensors if evidence.label(t.name) in labels}
    if not start or not evidence.output_tensors:
        return every  # about the whole model (or a graph we cannot follow): every output
    reached = downstream(evidence.anatomy, start)
    return [name for name, index in evidence.output_tensors if index in reached]


def _labels(finding: Finding) -> set[str]:
    """The tensors or layers a finding is about, as its evidence labels them."""
    e = finding.evidence
    found: set[str] = set()
    for key in ("tensor", "layer"):
        if isinstance(e.get(key), str):
            found.add(e[key])
    tensors = e.get("tensors")
    if isinstance(tensors, (list, dict)):
        found.update(str(t) for t in tensors)
    return found


def downstream(anatomy: Anatomy, start: Iterable[int]) -> set[int]:
    """The tensors computed from ``start`` (and ``start`` itself)."""
    seen = set(start)
    todo = list(seen)
    while todo:
        for op in anatomy.consumers(todo.pop()):
            for index in op.outputs:
                if index not in seen:
                    seen.add(index)
                    todo.append(index)
    return seen
