"""Freezing plans: which layer groups stay frozen at each step for every freeze mode."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("mode", ["none", "head_only", "bottom_n", "progressive"])
def test_freeze_groups(mode: str) -> None:
    from engine.train.freeze import frozen_groups, group_of

    assert group_of("m/bert/encoder/layer_._3/attention/self/query/kernel:0") == "layer:3"
    assert group_of("m/bert/embeddings/LayerNorm/gamma:0") == "embeddings"
    assert group_of("m/electra/embeddings_project/kernel:0") == "embeddings"
    assert group_of("m/classifier/kernel:0") == "head" and group_of("m/bert/pooler/dense/bias:0") == "head"
    at = [frozen_groups(mode, s, layers=3, freeze_layers=2, unfreeze_every=10) for s in (0, 10, 25, 30, 40)]
    encoder = {"embeddings", "layer:0", "layer:1", "layer:2"}
    expected = {
        "none": [set()] * 5,
        "head_only": [encoder] * 5,
        "bottom_n": [{"embeddings", "layer:0", "layer:1"}] * 5,
        "progressive": [
            encoder,
            {"embeddings", "layer:0", "layer:1"},
            {"embeddings", "layer:0"},
            {"embeddings"},
            set(),
        ],
    }
    assert at == expected[mode]
