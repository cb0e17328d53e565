"""The ``hf`` export: a folder transformers v5 with PyTorch loads with ``from_pretrained``.

``model.safetensors`` holds the weights under PyTorch parameter names and layouts (dense kernels
transposed), converted with transformers' own TF->PT name mapping and written with
``safetensors.numpy``: no torch is needed to export. ``config.json`` names the PyTorch class, and
the tokenizer files come from ``tokenizer.save_pretrained``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine import fsio
from engine.errors import ModelError

# model_type -> the PyTorch class transformers v5 builds, and the prefixes of its parameter names
# (the encoder's base_model_prefix, then the head's layers). Each one is proven by the interop round
# trip (tests/export/interop): every parameter the PyTorch class expects is written, nothing else.
SUPPORTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "bert": ("BertForSequenceClassification", ("bert.", "classifier.")),
    "distilbert": ("DistilBertForSequenceClassification", ("distilbert.", "pre_classifier.", "classifier.")),
    "electra": ("ElectraForSequenceClassification", ("electra.", "classifier.")),
    "roberta": ("RobertaForSequenceClassification", ("roberta.", "classifier.")),
}

WEIGHTS = "model.safetensors"
CONFIG = "config.json"

# Config keys only transformers 4.x's TF port reads; the PyTorch classes ignore or reject them.
_TF_ONLY_KEYS = ("tf_legacy_loss", "use_bfloat16", "xla_device")


def architecture(model_type: str) -> str:
    """The PyTorch class for ``model_type``, or a one-line ModelError naming what is supported."""
    if model_type not in SUPPORTED:
        raise ModelError(
            f"model_type {model_type!r} cannot be exported as hf yet; supported: "
            f"{', '.join(sorted(SUPPORTED))} (export it as --format savedmodel instead)"
        )
    return SUPPORTED[model_type][0]


def pt_state_dict(model: Any) -> dict[str, Any]:
    """The TF model's weights as numpy arrays under the PyTorch class's parameter names and layouts."""
    import numpy as np
    from transformers.modeling_tf_pytorch_utils import TransposeType, convert_tf_weight_name_to_pt_weight_name

    model_type = str(model.config.model_type)
    arch = architecture(model_type)
    prefixes = SUPPORTED[model_type][1]
    state: dict[str, Any] = {}
    for var in model.variables:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(var.name, tf_weight_shape=var.shape)
        if transpose not in (TransposeType.NO, TransposeType.SIMPLE) or not name.startswith(prefixes):
            raise ModelError(
                f"{model_type} weight {var.name} has no PyTorch counterpart in {arch} "
                f"(became {name!r}); this model cannot be exported as hf"
            )
        if name in state:
            raise ModelError(
                f"{model_type} weights {var.name} and another map to the same PyTorch name {name!r}; "
                "this model cannot be exported as hf"
            )
        array = np.asarray(var.numpy())
        if array.dtype.kind == "f" and array.dtype != np.float32:
            array = array.astype(np.float32)  # bfloat16 and friends: safetensors.numpy writes float32
        if transpose is TransposeType.SIMPLE:
            array = array.T
        state[name] = np.ascontiguousarray(array)
    return state


def pt_config(model: Any) -> dict[str, Any]:
    """config.json for the PyTorch class: the model's settings, labels and architecture, no TF-only keys."""
    config = model.config
    data: dict[str, Any] = config.to_diff_dict()
    for key in _TF_ONLY_KEYS:
        data.pop(key, None)
    data["model_type"] = config.model_type
    data["architectures"] = [architecture(str(config.model_type))]
    data["id2label"] = {str(int(k)): str(v) for k, v in config.id2label.items()}
    data["label2id"] = {str(k): int(v) for k, v in config.label2id.items()}
    data.pop("torch_dtype", None)
    data["dtype"] = "float32"  # the weights are written as float32 (transformers >= 4.56 and v5 read "dtype")
    return data


def write_hf(model: Any, tokenizer: Any, out: Path) -> dict[str, Any]:
    """Write the hf export into ``out`` (an existing, empty folder); returns what the model card shows.

    Every file is fsynced; the caller renames ``out`` into place and makes that durable.
    """
    from safetensors.numpy import save_file

    out = Path(out)
    if not out.is_dir() or any(out.iterdir()):
        raise ValueError(f"{out}: write_hf needs an existing empty folder")  # a caller's bug, not a person's
    state = pt_state_dict(model)  # refuses an unsupported architecture before anything is written
    config = pt_config(model)
    save_file(state, str(out / WEIGHTS), metadata={"format": "pt"})
    fsio.fsync(out / WEIGHTS)
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    fsio.write_synced(out / CONFIG, lambda fh: fh.write(text.encode("utf-8")))
    # safetensors creates its file 0600; an export is for sharing: the mode (umask) of the other files.
    os.chmod(out / WEIGHTS, (out / CONFIG).stat().st_mode & 0o777)
    tokenizer_files = [Path(p).name for p in tokenizer.save_pretrained(str(out))]
    for name in set(tokenizer_files):
        if (out / name).is_file():
            fsio.fsync(out / name)
    fsio.fsync(out)
    return {
        "format": "hf",
        "architecture": config["architectures"][0],
        "model_type": config["model_type"],
        "tensors": len(state),
        "parameters": int(sum(a.size for a in state.values())),
        "files": sorted({WEIGHTS, CONFIG, *(n for n in tokenizer_files if (out / n).is_file())}),
    }
