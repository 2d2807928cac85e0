"""``liteparity demo``: every recipe explained on a small CNN trained on real MNIST digits."""

from __future__ import annotations

from liteparity.cli.check import report_check
from liteparity.cli.groups import uses
from liteparity.cli.options import output_options
from liteparity.cli.output import Output, err, progress_bar


@uses(output=output_options)
def demo(output: Output) -> None:
    """Train (once, cached) a small CNN on real MNIST digits and explain every recipe on it.

    The table includes legacy-uint8 with the seeds' settings (mean 0, std 255,
    default_ranges 0 6): the classic "my uint8 model is garbage" case.

    [dim]Examples:[/]

      liteparity demo --report demo.html

      liteparity demo --json - | jq '.candidates[].name'
    """
    from liteparity.convert.recipes import LegacySettings
    from liteparity.demo import prepare
    from liteparity.diagnose.explain import explain
    from liteparity.measure.resume import cache_dir
    from liteparity.specs import CheckOptions, DataSpec, ModelSpec

    err.print(f"demo files: {cache_dir() / 'demo'}")
    with progress_bar() as progress:
        progress("training the demo CNN (first run only)", 0, 0)
        files = prepare()
        result = explain(
            ModelSpec(str(files.model)),
            DataSpec(str(files.eval_data), calibration_data=str(files.calibration_data)),
            CheckOptions(recipes=("all",), legacy=LegacySettings(0.0, 255.0, (0.0, 6.0))),
            progress=progress,
        )
    report_check(result, output, None, None)
