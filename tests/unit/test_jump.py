"""``locate``'s jump marker on hand-made SQNR profiles (no model, no interpreter)."""

from __future__ import annotations

from liteparity.layerwise.locate import first_jump


def test_the_marker_is_where_the_signal_collapses_not_the_first_few_db() -> None:
    """A ViT-like profile: the positional conv costs 9 dB (45 → 36), the LayerNormalization
    31 dB at once (36 → 5). The first layer 6 dB below the best before it is pos_conv; the
    collapse is at norm."""
    profile = [
        ("input", 45.0),
        ("pos_conv", 36.0),
        ("embed", 38.0),
        ("norm", 5.0),
        ("mix", 4.0),
    ]
    assert first_jump(profile) == "norm"


def test_gradual_losses_and_unmeasured_layers_have_no_jump() -> None:
    # 3 dB per layer: never 6 dB below every layer before it at once
    assert first_jump([("a", 40.0), ("b", 37.0), ("c", None), ("d", 34.0), ("e", 31.0)]) is None
    assert first_jump([("a", None), ("b", 30.0)]) is None  # the first measured layer
    # a fall measured against the lowest before it, across an unmeasured layer: 34 - 20
    assert first_jump([("a", 40.0), ("b", 34.0), ("c", None), ("d", 20.0)]) == "d"
