"""What ``--model`` names (a session, a checkpoint or a saved model folder), its identity, and loading it."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import ModelError


class ModelRefError(ModelError):
    """A --model that names nothing usable; one sentence saying what to give instead."""


def resolve_model(ref: str, sessions_root: Path) -> dict[str, str]:
    """{"kind": "folder"|"checkpoint", "path": absolute folder} for a folder, checkpoint or session id."""
    from engine.train import checkpoints as ck

    path = Path(ref).expanduser()
    if path.is_dir():
        path = path.resolve()
        if (path / "config.json").is_file():
            return {"kind": "folder", "path": str(path)}
        if ck.is_checkpoint(path):
            if not ck.is_complete(path):
                raise ModelRefError(
                    f"{path}: checkpoint is incomplete (no {ck.MARKER} marker, or a file it lists is "
                    "gone); pick another one"
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
    from engine.train import checkpoints as ck

    model = root / "model"
    if (model / "config.json").is_file():
        return {"kind": "folder", "path": str(model.resolve())}
    latest = ck.latest_complete(root / "checkpoints")
    hint = f"; give one of its checkpoints, e.g. {latest}" if latest else ""
    raise ModelRefError(f"session {ref!r} has no trained model yet ({model} is empty){hint}")


def base_folder(ref: dict[str, str]) -> Path | None:
    """A checkpoint's base model folder when it is a local one (its tokenizer and config come from there)."""
    if ref["kind"] != "checkpoint":
        return None
    from engine.train import checkpoints as ck

    source = ck.base_source(Path(ref["path"]))
    if source is None or not Path(source).expanduser().is_dir():
        return None  # a hub name: the engine fetches and checks it
    return Path(source).expanduser().resolve()


WEIGHT_FILES = ("tf_model.h5", "tf_model.h5.index.json", "model.safetensors", "model.safetensors.index.json")
_HDF5 = b"\x89HDF\r\n\x1a\n"


def check_loadable(ref: dict[str, str]) -> None:
    """Refuse, without TensorFlow, a model folder that cannot load: config.json, weights, tokenizer.

    Reads only small files and headers: config.json, the tokenizer files, the first bytes of
    the weights. A checkpoint's weights are its own (checked when loaded); its base model's
    config and tokenizer are checked here when the base model is a local folder.
    """
    folder = Path(ref["path"])
    if ref["kind"] == "checkpoint":
        base = base_folder(ref)
        if base is None:
            return
        folder = base
    _check_config(folder)
    if ref["kind"] == "folder" or (folder / "config.json").is_file():
        _check_weights(folder)
    _check_tokenizer(folder)


def _json_file(path: Path, fix: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelRefError(f"{path}: is not UTF-8 JSON (binary or damaged); {fix}") from None
    except json.JSONDecodeError as exc:
        raise ModelRefError(
            f"{path}: is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); {fix}"
        ) from None


_RESTORE = "restore it from where the model came from (save_pretrained writes it)"


def _check_config(folder: Path) -> None:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelRefError(f"{folder}: no config.json; give a saved model folder (save_pretrained output)")
    config = _json_file(path, _RESTORE)
    if not isinstance(config, dict):
        raise ModelRefError(f"{path}: is not a model configuration (not a JSON object); {_RESTORE}")
    if not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise ModelRefError(f"{path}: has no model_type, so transformers cannot build the model; {_RESTORE}")
    labels = config.get("id2label")
    if labels is not None and not (isinstance(labels, dict) and labels):
        raise ModelRefError(f"{path}: id2label must map class ids to label names; {_RESTORE}")


def _check_weights(folder: Path) -> None:
    found = [folder / n for n in WEIGHT_FILES if (folder / n).is_file()]
    if not found:
        if (folder / "pytorch_model.bin").is_file():
            raise ModelRefError(
                f"{folder}: only pytorch_model.bin (a torch pickle); convert it to safetensors "
                "or give a folder with model.safetensors or tf_model.h5"
            )
        raise ModelRefError(
            f"{folder}: no weights (model.safetensors or tf_model.h5); give the folder save_pretrained wrote"
        )
    for path in found:
        if path.name.endswith(".index.json"):
            index = _json_file(path, _RESTORE)
            if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
                raise ModelRefError(f"{path}: has no weight_map; {_RESTORE}")
            shards = sorted(set(index["weight_map"].values()))
            missing = [n for n in shards if not (folder / str(n)).is_file()]
            if missing:
                raise ModelRefError(
                    f"{folder / str(missing[0])}: missing (listed in {path.name}); {_RESTORE}"
                )
        elif path.suffix == ".h5":
            with open(path, "rb") as fh:
                if fh.read(len(_HDF5)) != _HDF5:
                    raise ModelRefError(f"{path}: is not an HDF5 weights file (empty or damaged); {_RESTORE}")
        else:
            _check_safetensors(path)


def _check_safetensors(path: Path) -> None:
    """The header: an 8-byte length, then that much JSON, all inside the file."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        ok = 0 < n <= size - 8
        if ok:
            try:
                header = json.loads(fh.read(n))
                ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
                ok = 8 + n + max(ends, default=0) <= size
            except (ValueError, TypeError, KeyError, IndexError):
                ok = False
    if not ok:
        raise ModelRefError(
            f"{path}: is not a complete safetensors file (empty, truncated or damaged); {_RESTORE}"
        )


_TOKENIZER_SOURCES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


def _check_tokenizer(folder: Path) -> None:
    fix = "save the tokenizer with the model again (tokenizer.save_pretrained)"
    for name in ("tokenizer_config.json", "special_tokens_map.json", "vocab.json"):
        if (folder / name).is_file():
            _json_file(folder / name, fix)
    tokenizer_json = folder / "tokenizer.json"
    if tokenizer_json.is_file():
        from tokenizers import Tokenizer  # the Rust library: fast, no TensorFlow

        try:
            Tokenizer.from_file(str(tokenizer_json))
        except Exception as exc:
            text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise ModelRefError(
                f"{tokenizer_json}: cannot be loaded as a tokenizer ({text}); {fix}"
            ) from None
        return
    present = [n for n in _TOKENIZER_SOURCES if (folder / n).is_file()]
    if not present:
        raise ModelRefError(
            f"{folder}: no tokenizer (tokenizer.json, vocab.txt, vocab.json or a sentencepiece model); {fix}"
        )
    for name in present:
        if (folder / name).stat().st_size == 0:
            raise ModelRefError(f"{folder / name}: is empty; {fix}")


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
            info: dict[str, Any] = {"source": ref["path"]}
        else:
            model, tokenizer, id2label, info = _load_checkpoint(Path(ref["path"]))
    if precision == "bfloat16":
        from engine.precision import float32_activations, on_cpu

        if on_cpu():  # CPU bfloat16 element-wise kernels are slower than float32's (engine/precision.py)
            float32_activations(model)
    return model, tokenizer, id2label, info


def _load_checkpoint(ckpt: Path) -> tuple[Any, Any, dict[int, str], dict[str, Any]]:
    """A training checkpoint: its session's base model and labels, then its weights, via checkpoints.py."""
    from engine.model import load_model, load_tokenizer
    from engine.train import checkpoints as ck

    try:
        origin = ck.origin(ckpt)
        id2label = dict(enumerate(origin.labels))
        model = load_model(origin.source, len(origin.labels), id2label, {n: i for i, n in id2label.items()})
        names = [v.name.split("/", 1)[-1] for v in model.variables]
        if ck.read_state(ckpt).get("variable_names") not in (None, names):
            raise ModelRefError(f"{ckpt}: its weights belong to another model layout than {origin.source}")
        for var, value in zip(model.variables, ck.load_arrays(ckpt, "weights.npz"), strict=True):
            var.assign(value)
    except ck.CheckpointError as exc:
        raise ModelRefError(str(exc)) from None
    info = {"source": origin.source, "checkpoint": str(ckpt)}
    return model, load_tokenizer(origin.source), id2label, info


def model_config(ref: dict[str, str]) -> dict[str, Any] | None:
    """The model's config.json (a checkpoint's: its base model's) if it is on disk; no TensorFlow needed."""
    folder = Path(ref["path"])
    if ref["kind"] == "checkpoint":
        from engine.train import checkpoints as ck

        source = ck.base_source(folder)
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
