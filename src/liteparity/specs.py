"""What a run is given, as frozen values that check themselves when they are built.

Each verb takes three specs: the model (``ModelSpec``), the data (``DataSpec``) and its own
options (``CheckOptions`` for ``check`` and ``explain``, ``LocateOptions``, ``FixOptions``,
``CompareQatOptions``). The CLI builds them from its option groups; Python callers build them,
or pass the keywords they always could and ``from_keywords`` builds them. Either way a value
that makes no sense is refused here, once, before anything loads, with one line naming the CLI
option (``--calibration-samples -5`` used to calibrate quietly on 995 rows).

Leaf module: it imports only ``errors``, because the CLI reads its defaults to build ``--help``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, TypeVar

from liteparity.errors import UsageError

if TYPE_CHECKING:
    from liteparity.convert.recipes import LegacySettings
    from liteparity.reference.base import Source

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ModelSpec:
    """The reference model: a path (or an already loaded ``Source``) and how to load it.
    ``inputs``, ``outputs`` and ``input_shapes`` name a frozen graph's tensors; ``unsafe``
    lets Keras run Lambda/custom layers (code from the model file)."""

    model: PathLike | Source
    inputs: tuple[str, ...] | None = None
    outputs: tuple[str, ...] | None = None
    input_shapes: tuple[tuple[int, ...], ...] | None = None
    unsafe: bool = False

    def __post_init__(self) -> None:
        if self.model is None or self.model == "":
            raise UsageError("no model given: name a .keras, .h5, SavedModel, .pb or .tflite")
        _set(self, "inputs", _names("--inputs", self.inputs))
        _set(self, "outputs", _names("--outputs", self.outputs))
        if self.input_shapes is not None:
            _set(self, "input_shapes", tuple(_shape(s) for s in self.input_shapes))


@dataclass(frozen=True)
class DataSpec:
    """The data a run reads: evaluation ``data``, optional ``calibration_data`` (else a seeded
    split of ``data`` calibrates), how many rows of each, the seed of every split, and how to
    read image folders (``image_size``, ``scale``) and CSV files (``label_column``)."""

    data: Any
    calibration_data: Any = None
    calibration_samples: int = 200
    max_samples: int | None = None
    seed: int = 0
    image_size: tuple[int, int] | None = None
    scale: float | None = None
    label_column: int | None = None

    def __post_init__(self) -> None:
        if self.data is None:
            raise UsageError("no data given: pass --data (a file, a folder or arrays)")
        _count("--calibration-samples", self.calibration_samples, 1)
        _count("--max-samples", self.max_samples, 1)
        _count("--seed", self.seed, 0)
        _count("--label-column", self.label_column, None)
        if self.image_size is not None:
            size = tuple(self.image_size)
            if len(size) != 2 or not all(_is_int(v) and v >= 1 for v in size):
                shown = "x".join(str(v) for v in size)
                raise UsageError(f"--image-size must be HEIGHTxWIDTH, both at least 1, got {shown}")
            _set(self, "image_size", size)
        if self.scale is not None and not (
            isinstance(self.scale, Real) and math.isfinite(self.scale) and self.scale > 0
        ):
            raise UsageError(f"--scale must be a positive number, got {self.scale}")


#: Where evaluations run: this machine's worker processes, or a Ray cluster.
ENGINES = ("local", "ray")


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """Where a verb's evaluations run (``check``, ``explain``, ``fix``): ``engine`` ``local``
    (a worker process per model on this machine) or ``ray`` (actors on the Ray cluster at
    ``ray_address``: ``auto``, ``ray://host:10001``, or None to join the one this process
    already joined, else start one here); ``shards`` is how many actors share each model's
    rows on Ray (default: one per CPU of the cluster)."""

    engine: str = "local"
    ray_address: str | None = None
    shards: int | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UsageError(f"--engine {self.engine!r}: expected local or ray")
        if self.engine != "ray" and (self.ray_address is not None or self.shards is not None):
            raise UsageError("--ray-address and --shards need --engine ray")
        if self.ray_address is not None and not (
            isinstance(self.ray_address, str) and self.ray_address.strip()
        ):
            raise UsageError(f"--ray-address must name a cluster, got {self.ray_address!r}")
        _count("--shards", self.shards, 1)


@dataclass(frozen=True)
class CheckOptions(EngineOptions):
    """What ``check`` and ``explain`` compare: ``recipes`` to convert (``None``: every recipe
    that applies, unless ``candidates`` are given; ``()``: none), ``candidates`` (.tflite files
    you have), TF1 ``legacy`` settings, where to save converted models, whether to ``resume``
    an earlier run, and the epochs of the ``qat`` recipe. ``batch_size`` forces the samples per
    invocation of every candidate (default: the fastest size proven to give the one-at-a-time
    outputs); ``memory_limit`` bounds the memory the evaluation's batches hold (bytes, or text
    such as ``"4GB"``, ``"512MB"``; default: half the machine's memory). ``output_metrics``
    picks the kind of an output (``"OUTPUT=KIND[:options]"``, see ``liteparity.measure.kinds``)
    where the output cannot say it; ``metric`` is a user callable ``metric(reference_outputs,
    candidate_outputs, labels) -> dict`` (outputs by name), run on every batch and averaged.
    ``max_samples_slow`` measures a slow candidate (one sample costs it 10× the fastest
    candidate's) on its first N rows only, with the confidence interval of its metric. Where
    the candidates run: ``EngineOptions``."""

    recipes: tuple[str, ...] | None = None
    candidates: tuple[PathLike, ...] = ()
    legacy: LegacySettings | None = None
    save_dir: PathLike | None = None
    resume: bool = False
    qat_epochs: int = 1
    output_metrics: tuple[str, ...] = ()
    metric: Callable[..., Mapping[str, Any]] | None = None
    batch_size: int | None = None
    memory_limit: int | str | None = None
    max_samples_slow: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _count("--max-samples-slow", self.max_samples_slow, 1)
        _set(self, "recipes", _names("--recipes", self.recipes))
        _count("--batch-size", self.batch_size, 1)
        if self.memory_limit is not None:
            _set(self, "memory_limit", memory_size("--memory-limit", self.memory_limit))
        _set(self, "candidates", _paths("--candidate", self.candidates))
        _count("--qat-epochs", self.qat_epochs, 1)
        _set(self, "output_metrics", _names("--metric", self.output_metrics) or ())
        for text in self.output_metrics:
            if "=" not in text:
                raise UsageError(f"--metric {text!r}: expected OUTPUT=KIND[:options]")
        if self.metric is not None and not callable(self.metric):
            raise UsageError("metric must be a callable metric(reference, candidate, labels)")


@dataclass(frozen=True)
class LocateOptions(EngineOptions):
    """What ``locate`` examines: ``recipe`` (converted here) or ``candidate`` (a .tflite you
    have); ``with_sensitivity`` runs the per-layer sensitivity experiment; ``workers`` is the
    number of local probe processes (default: one per core, at most 8; on Ray, ``shards``
    actors); ``rank_output`` ranks the layers by their effect on that one output (default:
    every output); ``resume`` reuses the model's facts, conversions and Keras→TFLite layer
    comparison of earlier runs on the same model file and data (check's ``--resume``
    cache). Where the probes, the sensitivity variants and the conversions run:
    ``EngineOptions``."""

    recipe: str = "int8"
    candidate: PathLike | None = None
    with_sensitivity: bool = True
    workers: int | None = None
    rank_output: str | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.recipe, str) or not self.recipe.strip():
            raise UsageError(f"--recipe must name a recipe, got {self.recipe!r}")
        _count("--workers", self.workers, 1)
        if self.workers is not None and self.engine == "ray":
            raise UsageError("workers counts local probe processes: on Ray, set shards")


@dataclass(frozen=True)
class FixOptions(EngineOptions):
    """``fix``'s budget (``max_drop`` accuracy points or % MSE, ``min_agreement``), what it
    prefers among the models that meet it (``size`` or ``latency``), whether only integer
    models qualify, the epochs of quantization-aware fine-tuning to try (0: none), and where
    to write the winner (``out``). The budget applies to each output in ``budget_outputs``
    on its own (default: every output with a task metric), as ``check``'s does. ``resume``
    reuses the conversions of earlier runs of any command on the same model file and
    calibration data (the trials are measured again). Where the trials run:
    ``EngineOptions``."""

    max_drop: float | None = 1.0
    min_agreement: float | None = None
    prefer: str = "size"
    integer_only: bool = False
    qat_epochs: int = 0
    out: PathLike | None = None
    budget_outputs: tuple[str, ...] | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for option, value in (
            ("--max-drop", self.max_drop),
            ("--min-agreement", self.min_agreement),
        ):
            if value is not None and not (isinstance(value, Real) and not math.isnan(value)):
                raise UsageError(f"{option} must be a number, got {value}")
        if self.prefer not in ("size", "latency"):
            raise UsageError(f"--prefer {self.prefer!r}: expected size or latency")
        _count("--qat-epochs", self.qat_epochs, 0)
        _set(self, "budget_outputs", _names("--budget-output", self.budget_outputs))


@dataclass(frozen=True)
class CompareQatOptions:
    """``compare-qat``: epochs of quantization-aware training, and the resampled evaluation
    batches (how many, of how many samples) the accuracies are spread over. (Not
    ``--batch-size``: that one means the inference batch everywhere.)"""

    epochs: int = 1
    resamples: int = 20
    resample_size: int = 100

    def __post_init__(self) -> None:
        _count("--epochs", self.epochs, 1)
        _count("--resamples", self.resamples, 1)
        _count("--resample-size", self.resample_size, 1)


Options = TypeVar("Options", CheckOptions, LocateOptions, FixOptions, CompareQatOptions)


def from_keywords(
    verb: str,
    model: ModelSpec | PathLike | Source,
    data: DataSpec | Any,
    options: Options | None,
    kind: type[Options],
    keywords: Mapping[str, Any],
) -> tuple[ModelSpec, DataSpec, Options]:
    """The three specs of a call to ``verb``, which takes specs, or a model and data with
    keywords naming fields of ``ModelSpec``, ``DataSpec`` and ``kind`` (the convenience every
    verb keeps). A spec and keywords for the same spec do not mix."""
    groups: tuple[Any, ...] = (ModelSpec, DataSpec, kind)
    known = {f.name for spec in groups for f in dataclasses.fields(spec)}
    unknown = sorted(set(keywords) - known)
    if unknown:
        raise TypeError(f"{verb}() got unexpected keyword argument(s) {', '.join(unknown)}")
    if options is not None and not isinstance(options, kind):
        raise TypeError(f"{verb}() takes {kind.__name__}, not {type(options).__name__}")
    given: tuple[Any, ...] = (model, data, options)
    built = []
    for spec, value in zip(groups, given, strict=True):
        fields = [f.name for f in dataclasses.fields(spec)]
        mine = {k: v for k, v in keywords.items() if k in fields}
        if isinstance(value, spec):
            if mine:
                raise TypeError(
                    f"{verb}(): give {', '.join(mine)} in the {spec.__name__} or as "
                    "keywords, not both"
                )
            built.append(value)
        elif spec is kind:
            built.append(spec(**mine))
        else:
            built.append(spec(value, **mine))
    return built[0], built[1], built[2]


def _set(spec: Any, name: str, value: Any) -> None:
    """Store a normalised field of a frozen spec (lists become tuples) while it is built."""
    object.__setattr__(spec, name, value)


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _count(option: str, value: Any, least: int | None) -> None:
    """Refuse a count, size or seed that is not an integer, or is below ``least``."""
    if value is None:
        return
    if not _is_int(value):
        raise UsageError(f"{option} must be an integer, got {value!r}")
    if least is not None and value < least:
        raise UsageError(f"{option} must be at least {least}, got {value}")


#: Units ``--memory-limit`` takes (binary multiples: ``1GB`` is 2**30 bytes, as ``free -g``).
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def memory_size(option: str, value: int | str) -> int:
    """``"4GB"``, ``"512MB"``, ``"1.5G"``, ``"300kb"`` or a count of bytes → bytes (at least
    one MB: less cannot hold a model's batch, and is a unit typed wrong)."""
    if _is_int(value):
        size = int(value)
    else:
        text = str(value).strip().upper().removesuffix("IB").removesuffix("B")
        number = text.rstrip("KMGT")
        unit = text[len(number) :]
        try:
            amount = float(number)
        except ValueError:
            amount = math.nan
        if unit not in _UNITS or not math.isfinite(amount):
            raise UsageError(f"{option} {value!r}: expected a size such as 4GB or 512MB")
        size = int(amount * _UNITS[unit])
    if size < _UNITS["M"]:
        raise UsageError(f"{option} must be at least 1MB, got {value!r}")
    return size


def _names(option: str, values: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """Names as a tuple (a lone string is one name); an empty name is refused."""
    if values is None:
        return None
    names = (values,) if isinstance(values, str) else tuple(values)
    if not all(isinstance(n, str) and n.strip() for n in names):
        raise UsageError(f"{option}: empty or non-text name in {list(names)}")
    return names


def _paths(option: str, values: PathLike | Iterable[PathLike]) -> tuple[PathLike, ...]:
    paths = (values,) if isinstance(values, (str, os.PathLike)) else tuple(values)
    if any(str(p) == "" for p in paths):
        raise UsageError(f"{option}: empty path")
    return paths


def _shape(dims: Iterable[int]) -> tuple[int, ...]:
    """A frozen graph input's shape: every dimension at least 1, but the batch may be -1."""
    shape = tuple(dims)
    ok = shape and all(_is_int(d) for d in shape) and shape[0] >= -1 and shape[0] != 0
    if not ok or any(d < 1 for d in shape[1:]):
        shown = ",".join(str(d) for d in shape)
        raise UsageError(
            f"--input-shapes {shown}: every dimension must be at least 1 (the first may be -1)"
        )
    return shape
