"""Findings for the terminal: a verdict per candidate, then each finding and its fix."""

from __future__ import annotations

from typing import Any

from liteparity.results.check import CandidateResult, CheckResult, Severity

STYLE = {Severity.INFO: "green", Severity.WARNING: "yellow", Severity.ERROR: "bold red"}


def verdict(c: CandidateResult) -> tuple[str, str]:
    """The words that lead a candidate's report, and their style."""
    if c.error:
        return "could not be measured", "bold red"
    if c.not_applicable:
        return "not applicable to this model", "dim"
    if not c.findings:
        return "no issues found", "green"
    top = c.findings[0]
    return top.verdict, STYLE[top.severity]


def findings_view(result: CheckResult) -> Any:
    """A rich renderable: the noise floor, then one block per candidate."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    parts: list[Any] = []
    floor = result.noise_floor
    if floor is not None:
        if floor.get("rmse") is not None:
            parts.append(
                Text(
                    f"noise floor: the reference {_FLOOR_RUNS[floor.get('method', 'float64')]} "
                    "differs by RMSE "
                    f"{floor['rmse']:.2e} (max {floor['max_abs_error']:.2e}) on {floor['samples']} "
                    "samples",
                    style="dim",
                )
            )
        elif floor.get("unavailable"):
            parts.append(Text(f"noise floor: not measured ({floor['unavailable']})", style="dim"))
    for c in result.candidates:
        words, style = verdict(c)
        head = Text.assemble((f"{c.name}: ", "bold"), (words, style))
        parts.append(Text(""))
        parts.append(head)
        if c.error or c.not_applicable:
            parts.append(Padding(Text(c.error or c.not_applicable or ""), (0, 0, 0, 2)))
        for f in c.findings:
            line = Text.assemble(
                (f"[{f.severity.value}] ", STYLE[f.severity]), (f"{f.id}: ", "bold"), f.summary
            )
            hurt = f.evidence.get("outputs")
            if len(c.outputs) > 1 and hurt:  # which outputs it hurts, when there is a choice
                line.append(f" (hurts {', '.join(map(str, hurt))})", style="dim")
            parts.append(Padding(line, (0, 0, 0, 2)))
            if f.severity is not Severity.INFO:  # info findings need no action
                parts.append(Padding(Text(f"fix: {f.fix}", style="cyan"), (0, 0, 0, 4)))
    return Group(*parts)


#: How each noise-floor method ran the reference twice (``NoiseFloor.method``).
_FLOOR_RUNS = {
    "float64": "in float32 vs float64",
    "kernels": "under XNNPack vs LiteRT's builtin kernels",
}
