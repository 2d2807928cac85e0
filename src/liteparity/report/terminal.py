"""The terminal view of any result: one entry point, so the CLI never picks a renderer by
hand and results never import their renderers."""

from __future__ import annotations

from typing import Any

from liteparity.report.fix import fix_table, qat_table
from liteparity.report.layers import layers_table
from liteparity.report.outputs import outputs_table
from liteparity.report.outputs import wanted as outputs_wanted
from liteparity.report.table import check_table
from liteparity.results.check import CheckResult
from liteparity.results.fix import FixResult, QatComparison
from liteparity.results.locate import LocateResult


def render(result: Any) -> Any:
    """A rich renderable for ``result`` (a check, locate, fix or compare-qat result)."""
    if isinstance(result, CheckResult):
        if not outputs_wanted(result):
            return check_table(result)
        from rich.console import Group

        return Group(check_table(result), outputs_table(result))
    if isinstance(result, LocateResult):
        return layers_table(result)
    if isinstance(result, FixResult):
        return fix_table(result)
    if isinstance(result, QatComparison):
        return qat_table(result)
    raise TypeError(f"no terminal view for {type(result).__name__}")
