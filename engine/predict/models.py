"""What ``--model`` names (a session, a checkpoint or a saved model folder), its identity, and loading it."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
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


def load(ref: dict[str, str], precision: str = "float32") -> tuple[Any, Any, dict[int, str], dict[str, Any]]:
    """(model, tokenizer, id2label, info) for prediction; info tells where the weights came from.

    With ``precision="bfloat16"`` the model computes in bfloat16 (Keras 'mixed_bfloat16').
    """
    from engine.model import load_for_prediction

    with precision_policy(precision):
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
    source = _base_source(session, config)
    manifest_path = _data_dir(session, config) / "manifest.json"
    if not source:
        raise ModelRefError(f"{ckpt}: its session {session} names no base model ([model] source)")
    if not manifest_path.is_file():
        raise ModelRefError(
            f"{ckpt}: its labels should be in {manifest_path}, which is missing; "
            "give the session's model/ folder instead"
        )
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


def _session_path(session: Path, value: str) -> Path:
    """A path from a training session's config as its engine saw it: a relative one is the session's.

    The training engine runs in its session folder (engine/train/job.py resolves ``[data] dir``
    there too); a prediction engine runs in its own session folder, so the working directory
    says nothing about where the training session's relative paths point.
    """
    path = Path(value).expanduser()
    return path if path.is_absolute() else (session / path).resolve()


def _data_dir(session: Path, config: dict[str, Any]) -> Path:
    """The prepared data folder of a training session: ``[data] dir`` if given, else its data/."""
    data_dir = config.get("data", {}).get("dir")
    return _session_path(session, str(data_dir)) if data_dir else session / "data"


def _base_source(session: Path, config: dict[str, Any]) -> str | None:
    """``[model] source`` of a training session: a local folder (relative: the session's) or a hub name."""
    source = config.get("model", {}).get("source")
    if not source:
        return None
    path = _session_path(session, str(source))
    return str(path) if path.is_dir() else str(source)


def model_config(ref: dict[str, str]) -> dict[str, Any] | None:
    """The model's config.json (a checkpoint's: its base model's) if it is on disk; no TensorFlow needed."""
    folder = Path(ref["path"])
    if ref["kind"] == "checkpoint":
        from engine.config import ConfigError, load_toml

        session = folder.parent.parent
        try:
            source = _base_source(session, load_toml(session / "config.toml"))
        except ConfigError:
            return None
        if source is None or not Path(source).is_dir():
            return None  # a hub name: the engine checks it once the model is loaded
        folder = Path(source)
    try:
        config: dict[str, Any] = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config


def trained_max_length(ref: dict[str, str]) -> int | None:
    """``[train] max_length`` of the training session the model comes from, if it comes from one.

    A session's model/ folder or one of its checkpoints: the texts it learned from were cut there,
    so prediction cuts them there too unless asked otherwise. None for any other folder.
    """
    from engine.config import ConfigError, load_toml
    from engine.train.config import TrainSection

    folder = Path(ref["path"])
    if ref["kind"] == "checkpoint":
        session = folder.parent.parent
    elif folder.name == "model":
        session = folder.parent
    else:
        return None
    if not ((session / "config.toml").is_file() and (session / "state.json").is_file()):
        return None  # not an ftc session folder (every session has both)
    try:
        train = load_toml(session / "config.toml").get("train", {})
    except ConfigError:
        return None
    value = train.get("max_length", TrainSection.model_fields["max_length"].default)
    return value if isinstance(value, int) and value > 0 else None


def max_length_error(max_length: int, limit: int, where: str) -> str:
    """One sentence for a --max-length the model cannot take."""
    return (
        f"--max-length {max_length} is more than {where} can take ({limit} tokens, from its "
        f"max_position_embeddings); give --max-length {limit} or less, or leave it out"
    )


PRECISIONS = ("float32", "bfloat16")
# The Keras mixed-precision policy each --precision builds the model under (engine/train uses the same).
_POLICY = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


@contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Build layers under the Keras policy for ``precision``, then put the previous global policy back.

    The policy is global state in tf-keras and a layer keeps the policy it was built with, so
    the model computes in bfloat16 (variables float32) while later code sees the old policy.
    """
    if precision not in _POLICY:
        raise ValueError(f"precision {precision!r}: give one of {', '.join(PRECISIONS)}")
    import tf_keras

    previous = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy(_POLICY[precision])
    try:
        yield
    finally:
        tf_keras.mixed_precision.set_global_policy(previous)
