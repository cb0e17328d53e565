"""Which weights train at a given step: full fine-tune, head only, bottom N layers frozen, progressive."""

from __future__ import annotations

import re
from typing import Any

_LAYER = re.compile(r"/layer_\._(\d+)/")


def group_of(name: str) -> str:
    """'embeddings', 'layer:<i>' or 'head' (pooler, classifier and anything above the encoder)."""
    m = _LAYER.search(name)
    if m:
        return f"layer:{int(m.group(1))}"
    # ELECTRA projects its embeddings to the hidden size (electra/embeddings_project): part of the embeddings.
    if "/embeddings/" in name or "/embeddings_project/" in name:
        return "embeddings"
    return "head"


def num_layers(model: Any) -> int:
    cfg = model.config
    return int(getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layers", 0) or 0)


def frozen_groups(
    mode: str, step: int, *, layers: int, freeze_layers: int = 0, unfreeze_every: int = 100
) -> set[str]:
    """The groups kept frozen at this step."""
    encoder = {"embeddings"} | {f"layer:{i}" for i in range(layers)}
    if mode == "none":
        return set()
    if mode == "head_only":
        return encoder
    if mode == "bottom_n":
        return {"embeddings"} | {f"layer:{i}" for i in range(min(freeze_layers, layers))}
    if mode == "progressive":
        # Head first, then one more encoder layer from the top every unfreeze_every steps, embeddings last.
        open_layers = step // unfreeze_every
        still = {f"layer:{i}" for i in range(layers - open_layers)}
        return still | ({"embeddings"} if open_layers <= layers else set())
    raise ValueError(f"unknown freeze mode {mode!r}")


def trainable_names(variables: list[Any], frozen: set[str]) -> set[str] | None:
    """Names of the variables that train (None when all do)."""
    if not frozen:
        return None
    return {v.name for v in variables if group_of(v.name) not in frozen}
