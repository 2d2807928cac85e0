"""What could not be measured (``not-measured``): a model LiteRT's builtin kernels cannot
allocate (a custom op only a delegate resolves) keeps its check numbers, but its weights or
tensor values could not be read, so the findings that need them are missing: said, not hidden."""

from __future__ import annotations

from liteparity.diagnose.evidence import Evidence
from liteparity.diagnose.registry import rule
from liteparity.results.check import Finding, Severity


@rule("not-measured")
def not_measured(ev: Evidence) -> list[Finding]:
    """One line naming what could not be read, when anything could not."""
    if not ev.anatomy.unread:
        return []
    return [
        Finding(
            "not-measured",
            Severity.INFO,
            "part of the model could not be read",
            f"Not measured: {ev.anatomy.unread}; the findings that need it are left out.",
            {"unread": ev.anatomy.unread},
            "Nothing to fix in the model; the check's numbers are complete.",
        )
    ]
