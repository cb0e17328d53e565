"""What ``--model`` names (a session, a checkpoint or a saved model folder), its identity, and loading it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

# Checkpoint folders are recognised by the files engine/train/checkpoints.py writes.
_CKPT_FILES = ("weights.npz", "state.json")
_WEIGHT_FILES = ("tf_model.h5", "model.safetensors", "tf_model.h5.index.json", "model.safetensors.index.json")


class ModelRefError(ValueError):
    """A --model that names nothing usable; one sentence saying what to give instead."""


def resolve_model(ref: str, sessions_root: Path) -> dict[str, str]:
    """{"kind": "folder"|"checkpoint", "path": absolute folder} for a folder, checkpoint or session id."""
    path = Path(ref).expanduser()
    if path.is_dir():
        path = path.resolve()
        if (path / "config.json").is_file():
            return {"kind": "folder", "path": str(path)}
        if all((path / f).is_file() for f in _CKPT_FILES):
            if not (path / "COMPLETE").is_file():
                raise ModelRefError(
                    f"{path}: checkpoint is incomplete (no COMPLETE marker); pick another one"
                )
            return {"kind": "checkpoint", "path": str(path)}
        if (path / "config.toml").is_file():
            return _session_model(path, ref)
        raise ModelRefError(
            f"{path}: not a model folder (no config.json), checkpoint or session; give one of those"
        )
    from engine.session import SessionError, resolve

    try:
        paths = resolve(sessions_root, ref)
    except SessionError:
        raise ModelRefError(
            f"model {ref!r}: no such folder and no session of that id in {sessions_root}; "
            "give a saved model folder, a checkpoint folder or a session id"
        ) from None
    return _session_model(paths.root, ref)


def _session_model(root: Path, ref: str) -> dict[str, str]:
    model = root / "model"
    if (model / "config.json").is_file():
        return {"kind": "folder", "path": str(model.resolve())}
    ckpts = root / "checkpoints"
    done = (
        sorted(p.name for p in ckpts.glob("ckpt-*") if (p / "COMPLETE").is_file()) if ckpts.is_dir() else []
    )
    hint = f"; give one of its checkpoints, e.g. {ckpts / done[-1]}" if done else ""
    raise ModelRefError(f"session {ref!r} has no trained model yet ({model} is empty){hint}")


def fingerprint(ref: dict[str, str]) -> str:
    """A cheap identity of the model: config, tokenizer files and the weights' size, head and tail."""
    folder = Path(ref["path"])
    digest = hashlib.sha256(ref["kind"].encode())
    names = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and p.suffix in (".json", ".txt", ".npz", ".h5", ".safetensors")
    )
    for name in names:
        file = folder / name
        digest.update(name.encode())
        size = file.stat().st_size
        digest.update(str(size).encode())
        with open(file, "rb") as fh:
            # Weights can be gigabytes: the first and last MiB plus the size identify them well enough.
            digest.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                digest.update(fh.read())
    return digest.hexdigest()[:16]


def load(ref: dict[str, str]) -> tuple[Any, Any, dict[int, str], dict[str, Any]]:
    """(model, tokenizer, id2label, info) for prediction; info tells where the weights came from."""
    from engine.model import load_for_prediction

    if ref["kind"] == "folder":
        tokenizer, model, id2label = load_for_prediction(ref["path"])
        return model, tokenizer, id2label, {"source": ref["path"]}
    return _load_checkpoint(Path(ref["path"]))


def _load_checkpoint(ckpt: Path) -> tuple[Any, Any, dict[int, str], dict[str, Any]]:
    """A training checkpoint: the session's base model and labels, then its weights by position."""
    import numpy as np

    from engine.config import load_toml
    from engine.model import load_model, load_tokenizer

    session = ckpt.parent.parent
    config = load_toml(session / "config.toml")
    source = config.get("model", {}).get("source")
    manifest_path = session / "data" / "manifest.json"
    data_dir = config.get("data", {}).get("dir")
    if not manifest_path.is_file() and data_dir:
        manifest_path = Path(data_dir) / "manifest.json"
    if not source or not manifest_path.is_file():
        raise ModelRefError(f"{ckpt}: cannot find its session's base model and labels in {session}")
    labels = json.loads(manifest_path.read_text())["labels"]
    id2label = dict(enumerate(str(x) for x in labels))
    model = load_model(source, len(labels), id2label, {n: i for i, n in id2label.items()})
    state = json.loads((ckpt / "state.json").read_text())
    names = [v.name.split("/", 1)[-1] for v in model.variables]
    if state.get("variable_names") not in (None, names):
        raise ModelRefError(f"{ckpt}: its weights belong to another model layout than {source}")
    with np.load(ckpt / "weights.npz") as data:
        for i, var in enumerate(model.variables):
            var.assign(data[f"arr_{i}"])
    return model, load_tokenizer(source), id2label, {"source": str(source), "checkpoint": str(ckpt)}
