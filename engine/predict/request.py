"""A prediction job's configuration, checked before any engine starts (no TensorFlow, nothing printed)."""

from __future__ import annotations

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
) -> dict[str, Any]:
    """The run configuration of a prediction session; raises a one-sentence error for what cannot work.

    Everything that can be checked without TensorFlow is: the input opens and has its text
    column, the output can be written (or resumed), the model names something loadable, and
    --max-length fits the model's positions.
    """
    from engine.predict.models import resolve_model
    from engine.predict.source import open_input
    from engine.predict.writer import check_target

    for name, value in (
        ("token-budget", token_budget),
        ("max-length", max_length),
        ("chunk-rows", chunk_rows),
    ):
        if value is not None and value <= 0:
            raise ConfigError(f"--{name} must be a positive number, got {value}")
    src = open_input(input_path, fmt=fmt, encoding=encoding, text_col=text_col, hdf_key=hdf_key)
    target = Path(output_path).expanduser().resolve()
    check_target(target, resume=resume, overwrite=overwrite)
    source = resolve_model(model, sessions_root)
    _check_max_length(max_length, source)
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
