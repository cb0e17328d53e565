"""What ``ftc train`` checks before it creates a session: the model source and the data exist and load.

Without TensorFlow or transformers: the model folder's config.json is parsed, its weights are
present and its tokenizer loads (``tokenizer.json`` through the ``tokenizers`` package, else the
vocabulary files are present and readable); ``[data] dir`` holds a readable manifest, or ``[data]
source`` is a data file whose header and columns read. Each problem is one line naming the field
or file and the fix (ConfigError, ModelError, DataError).

Relative paths are the current directory's (where ``ftc train`` runs): they are made absolute in
the configuration, so the session's config.toml names what the engine (which runs in the session
folder) opens. A value that names no local path is kept as a hub name when it looks like one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, DataError, FtcError, ModelError
from engine.train.config import TrainConfig, parse_config
from engine.train.gate import config_words

# A hub repository id: "name" or "org/name" (letters, digits, '-', '_', '.'; no '--' or '..').
_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "tf_model.h5", "tf_model.h5.index.json")
# Tokenizers without tokenizer.json: transformers builds them from these (any one set is enough).
_VOCABS = (("vocab.txt",), ("vocab.json", "merges.txt"), ("spiece.model",), ("sentencepiece.bpe.model",))
_JSON_FILES = ("tokenizer_config.json", "special_tokens_map.json", "vocab.json")


def check_train(config: dict[str, Any]) -> TrainConfig:
    """Validate a train configuration and what it names; relative paths become absolute in ``config``."""
    cfg = parse_config(config)
    model = model_source(cfg.model.source)
    config["model"]["source"] = model
    data = config.setdefault("data", {})
    if cfg.data.dir is not None:
        data["dir"] = _data_dir(cfg.data.dir)
    elif cfg.data.source is not None:
        data["source"] = data_source(cfg.data.source, data)
    else:
        raise ConfigError(
            '[data]: no data given; set source = "labelled.csv" (a raw file to prepare) '
            'or dir = "prepared/" (a folder made by ftc prepare)'
        )
    if cfg.data.tokenizer is not None:
        data["tokenizer"] = model_source(cfg.data.tokenizer, field="[data] tokenizer", tokenizer_only=True)
    if Path(model).is_dir():
        _check_max_length(cfg.train.max_length, Path(model))
    return parse_config(config)


# ---------------------------------------------------------------- model


def looks_like_path(value: str) -> bool:
    """True when a value can only mean a local path (so a missing one is an error, not a hub name)."""
    if value.startswith(("/", ".", "~")) or "\\" in value or value.endswith("/") or value.count("/") > 1:
        return True
    if "/" in value:  # "models/bert" where ./models is a folder: a local path, not org/name on the hub
        return Path(value.split("/", 1)[0]).is_dir()
    return False


def is_hub_name(value: str) -> bool:
    return bool(_HUB_NAME.match(value)) and "--" not in value and ".." not in value


def model_source(value: str, field: str = "[model] source", *, tokenizer_only: bool = False) -> str:
    """The absolute folder for a local model, or the hub name as given; ModelError otherwise."""
    path = Path(value).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(
                f"{field} {value}: is a file; give the folder holding config.json and the tokenizer"
            )
        folder = path.resolve()
        if not tokenizer_only:
            check_model_folder(folder, field)
        check_tokenizer(folder, field)
        return str(folder)
    if looks_like_path(value):
        raise ModelError(
            f"{field} {value}: no such folder ({path.absolute()}); relative paths are the current "
            "directory's: fix the path, or give a hub name such as bert-base-uncased"
        )
    if not is_hub_name(value):
        raise ModelError(
            f"{field} {value!r}: neither a local folder nor a hub name (org/name); fix the value"
        )
    return value  # a hub name: the engine downloads it (or finds it in the hub cache)


def check_model_folder(folder: Path, field: str = "[model] source") -> dict[str, Any]:
    """config.json parses and names a model_type, and weights the loader reads are there."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelError(
            f"{field} {folder}: no config.json; give a transformers model folder (config.json, "
            "weights, tokenizer) or a hub name"
        )
    config = _read_json(config_file, "the model's configuration")
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ModelError(
            f"{config_file}: no model_type in it; copy the model's config.json again "
            "(save_pretrained writes one)"
        )
    if not any((folder / name).is_file() for name in _WEIGHTS):
        if (folder / "pytorch_model.bin").is_file():
            raise ModelError(
                f"{folder}: only pytorch_model.bin (a torch pickle); convert it to safetensors "
                "or give a folder with model.safetensors or tf_model.h5"
            )
        raise ModelError(
            f"{folder}: no weights (model.safetensors or tf_model.h5); copy them into the folder"
        )
    return config


def check_tokenizer(folder: Path, field: str = "[model] source") -> None:
    """The folder's tokenizer loads: tokenizer.json via ``tokenizers``, else its vocabulary files read."""
    for name in _JSON_FILES:
        if (folder / name).is_file():
            _read_json(folder / name, "a tokenizer file")
    fast = folder / "tokenizer.json"
    if fast.is_file():
        from tokenizers import Tokenizer

        try:
            Tokenizer.from_file(str(fast))
        except Exception as exc:  # the Rust side raises its own Exception type, with a multi-line text
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ModelError(
                f"{fast}: cannot load the tokenizer ({reason}); copy the model's tokenizer.json again"
            ) from None
        return
    for names in _VOCABS:
        files = [folder / n for n in names]
        if all(f.is_file() for f in files):
            for f in files:
                if f.stat().st_size == 0:
                    raise ModelError(f"{f}: the tokenizer's vocabulary is empty; copy it again")
                if f.suffix == ".txt":
                    _read_text(f)
            return
    raise ModelError(
        f"{field} {folder}: no tokenizer (tokenizer.json, vocab.txt, vocab.json with merges.txt, or a "
        "sentencepiece .model); copy the model's tokenizer files into the folder"
    )


def _check_max_length(max_length: int, folder: Path) -> None:
    from engine.model import position_limit

    limit = position_limit(_read_json(folder / "config.json", "the model's configuration"))
    if limit is not None and max_length > limit:
        raise ConfigError(
            f"[train] max_length: {max_length} is more than {folder} takes "
            f"({limit} tokens, its max_position_embeddings); set it to {limit} or less"
        )


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: {what} is not valid JSON ({exc}); copy the file again") from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: not UTF-8 text (byte offset {exc.start}); copy the file again") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None


# ---------------------------------------------------------------- data


def _data_dir(value: str) -> str:
    """[data] dir: an existing folder with a manifest this ftc reads; its absolute path."""
    from engine.data.shards import read_manifest

    path = Path(value).expanduser()
    if not path.exists():
        raise DataError(
            f"[data] dir {value}: no such folder ({path.absolute()}); give the folder 'ftc prepare --out' "
            'wrote, or source = "file.csv" for a raw file'
        )
    if not path.is_dir():
        raise DataError(
            f'[data] dir {value}: is a file; for a raw data file write source = "{value}" instead of dir'
        )
    try:
        read_manifest(path.resolve())
    except OSError as exc:
        raise DataError(f"[data] dir {path / 'manifest.json'}: cannot be read ({exc.strerror})") from None
    return str(path.resolve())


def data_source(value: str, options: dict[str, Any]) -> str:
    """[data] source: a data file whose header reads and which holds the named columns; its absolute path."""
    from engine.data.readers import open_source

    path = Path(value).expanduser()
    try:
        open_source(
            path,
            fmt=options.get("format"),
            encoding=options.get("encoding"),
            text_col=options.get("text_col"),
            label_col=options.get("label_col"),
            hdf_key=options.get("key"),
        )
    except FtcError as exc:
        raise DataError(f"[data] source: {config_words(str(exc))}") from None
    except OSError as exc:
        raise DataError(f"[data] source {path}: cannot be read ({exc.strerror})") from None
    except Exception as exc:  # a parser's own error (pyarrow, tables) on a damaged file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DataError(f"[data] source {path}: cannot be read as data ({reason}); check the file") from None
    return str(path.resolve())
