"""Checks of the configurations of the jobs other than train (selftest, check, prepare, predict, lr_find).

Each section is strict: an unknown key or a value of the wrong type is one line naming the
section, the key and the fix. Nothing here imports more than pydantic.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import ConfigError
from engine.train.config import validation_message


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class SelftestSection(_Section):
    steps: int = Field(100, ge=0)
    step_s: float = Field(0.05, ge=0)
    fail_at: int = Field(0, ge=0)
    checkpoint_every: int = Field(0, ge=0)
    eval_every: int = Field(0, ge=0)  # an evaluation every that many steps (0: none)
    eval_s: float = Field(1.0, ge=0)  # how long one evaluation takes
    eval_batches: int = Field(10, ge=1)


class DataJobSection(_Section):
    """[data] of a check or prepare job (engine.data.job)."""

    source: str = Field(min_length=1, description="CSV/TSV/JSONL/Parquet/HDF5 file to test or prepare")
    text_col: str | None = None
    label_col: str | None = None
    encoding: str | None = None
    format: str | None = None
    key: str | None = None
    tokenizer: str | None = None
    max_length: int | None = Field(None, ge=8)
    split: dict[str, float] | list[float] | None = None
    seed: int | None = None
    shard_rows: int | None = Field(None, ge=1)
    dedupe: bool = False


class DataJobTrain(_Section):
    """[train] of a check or prepare job: only the max_length the token-length test uses."""

    max_length: int = Field(128, ge=8)


def _section(model: type[_Section], config: dict[str, Any], name: str) -> None:
    try:
        model.model_validate(config.get(name, {}))
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, section=name)) from None


def check_selftest(config: dict[str, Any]) -> None:
    _section(SelftestSection, config, "selftest")


def check_data_job(config: dict[str, Any]) -> None:
    """[data] of check and prepare; the source (and tokenizer) are checked and made absolute, as for train."""
    from engine.train.precheck import data_source, model_source

    _section(DataJobSection, config, "data")
    _section(DataJobTrain, config, "train")
    data = config["data"]
    data["source"] = data_source(data["source"], data)
    if data.get("tokenizer") is not None:
        data["tokenizer"] = model_source(data["tokenizer"], field="[data] tokenizer", tokenizer_only=True)


def check_predict(config: dict[str, Any]) -> None:
    """[predict]: the keys engine.predict.run.Params takes; model, input and output are required."""
    import dataclasses

    from engine.predict.run import Params

    known = {f.name for f in dataclasses.fields(Params)}
    section = config.get("predict", {})
    for key in section:
        if key not in known:
            raise ConfigError(
                f"[predict] {key}: Extra inputs are not permitted; remove it or check its spelling "
                f"(known: {', '.join(sorted(known))})"
            )
    for need in ("model", "input", "output"):
        if not section.get(need):
            raise ConfigError(f"[predict] {need}: Field required; add it")


class LrFindSection(_Section):
    """[lr_find] of a learning-rate range test (engine.train.lrfind): the sweep and when it ends."""

    start_lr: float = Field(1e-7, gt=0, description="the sweep's first learning rate")
    end_lr: float = Field(1.0, gt=0, description="its last; the rates grow exponentially in between")
    steps: int = Field(100, ge=2, le=10_000, description="optimizer steps of the sweep")
    beta: float = Field(0.98, ge=0, lt=1, description="smoothing of the loss (exponential average)")
    diverge: float = Field(4.0, gt=1, description="the sweep ends when the loss passes this times its best")


def lr_find_section(config: dict[str, Any]) -> LrFindSection:
    """The [lr_find] section, validated (defaults for what it leaves out)."""
    try:
        section = LrFindSection.model_validate(config.get("lr_find", {}))
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, section="lr_find")) from None
    if section.end_lr <= section.start_lr:
        raise ConfigError(
            f"[lr_find] end_lr: {section.end_lr:g} is not above start_lr {section.start_lr:g}; "
            "the sweep goes up, so set end_lr higher (e.g. 1.0)"
        )
    return section


def check_lr_find(config: dict[str, Any]) -> None:
    """[lr_find], then the run's [model], [data] and [train] exactly as ftc train checks them."""
    from engine.train.precheck import check_train

    lr_find_section(config)
    check_train(config)
