"""``--resume``'s conversion cache (``Converter.keep``) and the model facts a caller keeps
instead of loading the model (``SourceFacts``), on fakes: no TensorFlow, no process."""

from __future__ import annotations

import json

import numpy as np

from liteparity.convert import process
from liteparity.convert.process import Converter
from liteparity.data.binding import IOSpec
from liteparity.reference.base import Source, SourceFacts
from liteparity.reference.names import LayerNames
from liteparity.specs import ModelSpec


class _Store:
    """A dict standing in for ``measure.resume.Cache``."""

    def __init__(self) -> None:
        self.models: dict[str, bytes] = {}

    def model(self, key: str) -> bytes | None:
        return self.models.get(key)

    def put_model(self, key: str, content: bytes) -> None:
        self.models[key] = content


class _Model(Source):
    format = "keras"
    compares_layers = True

    def __init__(self) -> None:
        super().__init__("/nowhere/model.keras")
        self.io = IOSpec(("image", "meta"), ((-1, 8, 8, 3), (-1, 2)), ("float32", "int32"), ("p",))

    def layer_names(self) -> frozenset[str]:
        return LayerNames(["conv", "head"], suffixed=True)

    def output_layers(self) -> list[str]:
        return ["head"]


def test_a_second_run_takes_every_model_from_the_store(monkeypatch) -> None:
    """The same calibrated model re-quantized with other float layers is another entry; a run
    with the same key makes nothing and gets the same bytes; another key makes anew."""
    made: list[tuple[bytes, tuple[str, ...], bool]] = []

    def requantize(calibrated, keep=(), *, numeric_verify=False):
        made.append((calibrated, tuple(keep), numeric_verify))
        return calibrated + b"|" + ",".join(keep).encode() + (b"|nv" if numeric_verify else b"")

    monkeypatch.setattr(process, "requantize", requantize)
    store, spec = _Store(), ModelSpec(_Model())  # in memory: made in this process
    first = Converter(spec, start=False)
    first.keep(store, "key-1")
    a = first.requantize(b"cal", ["conv"])
    b = first.requantize(b"cal", [], numeric_verify=True)
    assert (a, b) == (b"cal|conv", b"cal||nv") and len(made) == 2 and len(store.models) == 2

    again = Converter(spec, start=False)
    again.keep(store, "key-1")
    assert again.requantize(b"cal", ["conv"]) == a
    assert again.requantize(b"cal", [], numeric_verify=True) == b
    assert len(made) == 2  # nothing made again

    other = Converter(spec, start=False)
    other.keep(store, "key-2")  # another model file or calibration set
    other.requantize(b"cal", ["conv"])
    assert len(made) == 3 and len(store.models) == 3


def test_facts_survive_json_with_the_layer_naming_rule() -> None:
    """What a cached run reads instead of loading the model is what the model says."""
    facts = SourceFacts.of(_Model())
    back = SourceFacts.from_dict(json.loads(json.dumps(facts.to_dict())))
    assert back == facts
    assert back.layer_names.suffixed and back.io.input_shapes == ((-1, 8, 8, 3), (-1, 2))
    assert back.io.sample_shapes == ((8, 8, 3), (2,)) and back.output_layers == ("head",)
    assert np.dtype(back.io.input_dtypes[1]) == np.int32
