"""A prediction job's configuration, checked before any engine starts (no TensorFlow, nothing printed)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from engine.errors import ConfigError


def predict_config(
    *,
    model: str,
    input_path: str,
    output_path: str,
    sessions_root: Path,
    text_col: str | None = None,
    encoding: str | None = None,
    fmt: str | None = None,
    hdf_key: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    token_budget: int | None = None,
    max_length: int | None = None,
    chunk_rows: int | None = None,
    precision: str | None = None,
    shard: str | None = None,
) -> dict[str, Any]:
    """The run configuration of a prediction session; raises a one-sentence error for what cannot work.

    Everything that can be checked without TensorFlow is, in this order: the numbers; the model
    names something; the output is none of the inputs (resolved paths and inodes, before any
    file is opened); the output can be written, replaced (only an ftc output) or resumed; the
    input opens and has its text column; the model's config, weights and tokenizer look
    loadable; --max-length fits; a resume continues the same model and input.
    """
    for name, value in (
        ("token-budget", token_budget),
        ("max-length", max_length),
        ("chunk-rows", chunk_rows),
    ):
        if value is not None and value <= 0:
            raise ConfigError(f"--{name} must be a positive number, got {value}")
    if shard is not None:
        from engine.predict.shards import parse_shard

        shard = str(parse_shard(shard))
    try:
        return _checked_config(
            model=model,
            input_path=input_path,
            output_path=output_path,
            sessions_root=sessions_root,
            text_col=text_col,
            encoding=encoding,
            fmt=fmt,
            hdf_key=hdf_key,
            resume=resume,
            overwrite=overwrite,
            token_budget=token_budget,
            max_length=max_length,
            chunk_rows=chunk_rows,
            precision=precision,
            shard=shard,
        )
    except OSError as exc:  # permission denied, a read-only disk, an I/O error: name the file
        raise ConfigError(os_error_line(exc)) from None


def os_error_line(exc: OSError) -> str:
    """One line for an OSError: the file, what the system said, and what to do."""
    where = exc.filename or "a file"
    why = (exc.strerror or str(exc) or type(exc).__name__).lower()
    if exc.errno in (errno.EACCES, errno.EPERM):
        fix = "check its permissions (ls -l) or run as a user who may read/write it"
    elif exc.errno == errno.EROFS:
        fix = "choose an --output on a writable disk"
    elif exc.errno == errno.ENOSPC:
        fix = "free space or choose an --output on another disk"
    else:
        fix = "check the path and the disk"
    return f"{where}: {why}; {fix}"


def _checked_config(
    *,
    model: str,
    input_path: str,
    output_path: str,
    sessions_root: Path,
    text_col: str | None,
    encoding: str | None,
    fmt: str | None,
    hdf_key: str | None,
    resume: bool,
    overwrite: bool,
    token_budget: int | None,
    max_length: int | None,
    chunk_rows: int | None,
    precision: str | None,
    shard: str | None,
) -> dict[str, Any]:
    from engine.predict.models import base_folder, check_loadable, fingerprint, resolve_model
    from engine.predict.shards import check_same_shard, parse_shard
    from engine.predict.source import input_fingerprint, open_input
    from engine.predict.writer import check_not_an_input, check_same_run, check_target, read_cursor

    source = resolve_model(model, sessions_root)
    given = Path(output_path).expanduser()
    inputs = [("--input", Path(input_path)), ("--model", Path(source["path"]))]
    base = base_folder(source)
    if base is not None:
        inputs.append(("--model's base model", base))
    check_not_an_input(given, inputs)
    target = given.resolve()
    check_target(target, resume=resume, overwrite=overwrite)
    src = open_input(input_path, fmt=fmt, encoding=encoding, text_col=text_col, hdf_key=hdf_key)
    check_loadable(source)
    _check_max_length(max_length, source)
    if resume:
        cursor = read_cursor(target)
        assert cursor is not None  # check_target made sure
        now = {"model": {"fingerprint": fingerprint(source)}, "input": input_fingerprint(src)}
        check_same_run(cursor["meta"], now, target)
        check_same_shard(cursor["meta"], parse_shard(shard) if shard else None, target)
    predict = {
        "model": source,
        "input": str(Path(src.path).resolve()),
        "output": str(target),
        "text_col": src.text_col,
        "encoding": src.encoding,
        "format": src.format,
        "hdf_key": src.hdf_key,
        "chunk_rows": chunk_rows,
        "token_budget": token_budget,
        "max_length": max_length,
        "resume": resume,
        "overwrite": overwrite,
        "precision": precision,
        "shard": shard,
    }
    return {"job": {"kind": "predict"}, "predict": {k: v for k, v in predict.items() if v is not None}}


def _check_max_length(max_length: int | None, model: dict[str, str]) -> None:
    """Refuse a --max-length past the model's position embeddings now, not deep inside TensorFlow."""
    from engine.model import position_limit
    from engine.predict.models import max_length_error, model_config

    config = model_config(model) if max_length is not None else None
    limit = position_limit(config) if config is not None else None
    if max_length is not None and limit is not None and max_length > limit:
        raise ConfigError(max_length_error(max_length, limit, f"the model in {model['path']}"))
