"""A plain-numpy BERT encoder over PyTorch-named weights: an independent reference for the TF conversion."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def encode(state: dict[str, Any], config: Any, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Last hidden states [batch, seq, hidden] of BertModel for the given ids and attention mask."""
    p = {k.removeprefix("bert."): v.astype(np.float64) for k, v in state.items()}
    batch, seq = input_ids.shape
    x = p["embeddings.word_embeddings.weight"][input_ids]
    x = x + p["embeddings.position_embeddings.weight"][np.arange(seq)][None]
    x = x + p["embeddings.token_type_embeddings.weight"][0][None, None]
    eps = config.layer_norm_eps
    x = _layer_norm(x, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"], eps)
    heads = config.num_attention_heads
    size = config.hidden_size // heads
    bias = (1.0 - mask[:, None, None, :]) * -1e9

    def linear(h: np.ndarray, name: str) -> np.ndarray:
        return h @ p[f"{name}.weight"].T + p[f"{name}.bias"]

    def split(h: np.ndarray) -> np.ndarray:
        return h.reshape(batch, seq, heads, size).transpose(0, 2, 1, 3)

    for i in range(config.num_hidden_layers):
        pre = f"encoder.layer.{i}"
        q = split(linear(x, f"{pre}.attention.self.query"))
        k = split(linear(x, f"{pre}.attention.self.key"))
        v = split(linear(x, f"{pre}.attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, seq, -1)
        att = linear(ctx, f"{pre}.attention.output.dense")
        x = _layer_norm(
            att + x,
            p[f"{pre}.attention.output.LayerNorm.weight"],
            p[f"{pre}.attention.output.LayerNorm.bias"],
            eps,
        )
        hidden = _gelu(linear(x, f"{pre}.intermediate.dense"))
        out = linear(hidden, f"{pre}.output.dense")
        x = _layer_norm(out + x, p[f"{pre}.output.LayerNorm.weight"], p[f"{pre}.output.LayerNorm.bias"], eps)
    return x
