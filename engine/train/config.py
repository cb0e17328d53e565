"""The training run's configuration: validated [model], [data] and [train] sections of config.toml."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.config import load_toml
from engine.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Section):
    source: str = Field(min_length=1, description="hub name or local folder of the pretrained encoder")


class DataSection(_Section):
    dir: str | None = Field(
        None, description="prepared data folder (manifest.json); default: the session's data/"
    )
    # Or a raw labelled file, prepared into the session's data/ before training (engine.data.job).
    source: str | None = Field(None, min_length=1, description="CSV/TSV/JSONL/Parquet/HDF5 file to prepare")
    text_col: str | None = None
    label_col: str | None = None
    encoding: str | None = None
    format: str | None = None
    key: str | None = Field(None, description="HDF5 key of the table")
    tokenizer: str | None = Field(
        None, description="tokenizer for the token-length test; default: the model's"
    )
    split: dict[str, float] | list[float] | None = None
    seed: int | None = None
    shard_rows: int | None = Field(None, ge=1)
    dedupe: bool = False
    # A failing data test stops the run before step 1 ("fail") or is shown and trained past ("warn").
    on_fail: Literal["fail", "warn"] = Field(
        "fail", description="what a failing data test does: stop the run before step 1, or only warn"
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataSection:
        if self.dir is not None and self.source is not None:
            raise ValueError("dir and source both set; give a prepared folder (dir) or a raw file (source)")
        return self


# What every evaluation reports (engine.train.metrics); roc_auc needs two classes in the split.
EVAL_METRICS = ("loss", "accuracy", "macro_precision", "macro_recall", "macro_f1", "roc_auc")


class EarlyStopping(_Section):
    metric: str = "macro_f1"
    mode: Literal["auto", "max", "min"] = "auto"
    # Evaluations without improvement before stopping; None tracks the best but never stops.
    patience: int | None = Field(None, ge=1)
    min_delta: float = Field(0.0, ge=0)
    restore_best: bool = True

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, name: str) -> str:
        # Checked here, not at the first evaluation: a typo should not cost a training epoch.
        if name not in EVAL_METRICS:
            raise ValueError(f"{name!r} is not an evaluation metric; use one of {', '.join(EVAL_METRICS)}")
        return name

    @property
    def maximize(self) -> bool:
        if self.mode != "auto":
            return self.mode == "max"
        return not self.metric.endswith("loss")


class TrainSection(_Section):
    seed: int = 42
    epochs: int = Field(3, ge=1)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs when set")
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    max_length: int = Field(128, ge=8)
    learning_rate: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    schedule: Literal["constant", "linear", "cosine", "exponential", "cyclic", "cosine_restarts"] = "linear"
    warmup_steps: int | None = Field(None, ge=0)
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="final LR / peak LR for linear and cosine")
    decay_rate: float = Field(0.5, gt=0, le=1, description="exponential: LR factor per decay_steps")
    decay_steps: int = Field(1000, ge=1)
    cycle_steps: int | None = Field(
        None, ge=1, description="cyclic: steps of one cycle, up and down; cosine_restarts: the first cycle"
    )
    cycle_mode: Literal["triangular", "triangular2"] = Field(
        "triangular", description="cyclic: same peak each cycle, or the peak halved after each cycle"
    )
    cycle_mult: float = Field(1.0, ge=1, description="cosine_restarts: each cycle this many times the last")
    # Differential learning rates (1.0 and 1.0: one rate for every weight).
    head_lr_multiplier: float = Field(1.0, gt=0, description="the classifier head's LR / learning_rate")
    layer_lr_decay: float = Field(
        1.0, gt=0, le=1, description="each encoder layer below the top learns at this times the one above"
    )
    # Regularisation (None: the pretrained model's own setting).
    dropout: float | None = Field(None, ge=0, lt=1, description="the encoder's hidden dropout")
    attention_dropout: float | None = Field(None, ge=0, lt=1, description="the encoder's attention dropout")
    classifier_dropout: float | None = Field(None, ge=0, lt=1, description="dropout before the classifier")
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="share of each target spread over all classes"
    )
    resample: Literal["none", "oversample", "undersample"] = Field(
        "none", description="per epoch, from the seed: repeat minority rows or drop majority rows to balance"
    )
    grad_accum_steps: int = Field(1, ge=1)
    clip_norm: float | None = Field(1.0, gt=0)
    class_weights: Literal["none", "balanced"] | dict[str, float] = "none"
    freeze: Literal["none", "head_only", "bottom_n", "progressive"] = "none"
    freeze_layers: int = Field(0, ge=0, description="bottom_n: encoder layers (plus embeddings) kept frozen")
    unfreeze_every_steps: int = Field(100, ge=1, description="progressive: steps between unfreezing a layer")
    mixed_precision: Literal["auto", "off", "mixed_float16", "mixed_bfloat16"] = "auto"
    # AdamW's update compiled with XLA (on CPU too), from step JIT_FROM_STEP on; "auto": for runs of
    # 300 steps or more, where its compile pays (engine.train.loop JIT_MIN_STEPS). The resolved
    # choice and step are recorded in each checkpoint and kept on resume, so the field is not semantic.
    jit_optimizer: bool | Literal["auto"] = "auto"
    eval_every_steps: int | None = Field(None, ge=1, description="also evaluated at every epoch end")
    early_stopping: EarlyStopping = Field(default_factory=lambda: EarlyStopping.model_validate({}))
    checkpoint_every_steps: int | None = Field(500, ge=1)
    checkpoint_every_minutes: float | None = Field(10.0, gt=0)
    keep_last: int = Field(3, ge=1)
    keep_best: bool = True
    bucket_window: int = Field(50, ge=1, description="batches per length-sorting window")

    @model_validator(mode="after")
    def _consistent(self) -> TrainSection:
        if self.warmup_steps is not None and self.warmup_ratio is not None:
            raise ValueError("warmup_steps and warmup_ratio both set; keep one of them")
        if self.freeze == "bottom_n" and self.freeze_layers == 0:
            raise ValueError("freeze = 'bottom_n' needs freeze_layers >= 1")
        if isinstance(self.class_weights, dict) and any(w < 0 for w in self.class_weights.values()):
            raise ValueError("class_weights: weights must be >= 0")
        if self.schedule in ("cyclic", "cosine_restarts") and self.cycle_steps is None:
            raise ValueError(f"schedule = {self.schedule!r} needs cycle_steps (steps per cycle, >= 1)")
        if self.resample != "none" and self.class_weights != "none":
            raise ValueError(
                f"resample = {self.resample!r} and class_weights both balance the classes; keep one of them"
            )
        return self


# Fields that change how often things are written, not what is learned: a resume may change them.
NON_SEMANTIC = frozenset(
    {"checkpoint_every_steps", "checkpoint_every_minutes", "keep_last", "keep_best", "jit_optimizer"}
)


class TrainConfig(_Section):
    model: ModelSection
    data: DataSection = Field(default_factory=lambda: DataSection.model_validate({}))
    train: TrainSection = Field(default_factory=lambda: TrainSection.model_validate({}))

    def semantic(self) -> dict[str, Any]:
        """The settings that decide the result (saved in checkpoints, compared on resume)."""
        return _strip(self.model_dump(mode="json"))

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.semantic(), sort_keys=True).encode()).hexdigest()[:16]


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    for key in NON_SEMANTIC:
        data["train"].pop(key, None)
    # The prepared data's own fingerprint covers its content, wherever and however it was made.
    data["data"] = {}
    return data


def _hint(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "remove it or check its spelling"
    if kind == "missing":
        return "add it"
    return "fix the value"


def parse_config(raw: dict[str, Any]) -> TrainConfig:
    """Validate the [model], [data] and [train] sections (engine.jobs.validate refuses any other section)."""
    sections = {k: raw[k] for k in ("model", "data", "train") if k in raw}
    try:
        return TrainConfig.model_validate(sections)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc)) from None


def validation_message(exc: ValidationError, section: str | None = None) -> str:
    """A pydantic error as one line naming the section and field: '[train] batch_size: ...; fix the value'.

    ``section`` names the table when the model validated is one section rather than the whole file.
    """
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if not str(p).startswith(("literal[", "dict["))]
    if section is not None:
        loc = [section, *loc]
    where = f"[{loc[0]}] {'.'.join(loc[1:])}".strip() if loc else "config"
    msg = " ".join(err["msg"].removeprefix("Value error, ").split())
    return f"{where}: {msg}; {_hint(err)}"


def load_config(path: Path) -> TrainConfig:
    """A config.toml file's training sections, validated; ConfigError naming the file or field."""
    return parse_config(load_toml(path))


_ABSENT = object()


def _default_semantic() -> dict[str, Any]:
    """What ``semantic()`` gives for a config that sets nothing but is otherwise default."""
    # The model source has no default; the data section is not compared (see _strip).
    return _strip({"model": {}, "data": {}, "train": TrainSection.model_validate({}).model_dump(mode="json")})


def semantic_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The trajectory-changing fields that differ: 'train.learning_rate 5e-05 -> 0.0001', saved -> current.

    Both are ``semantic()`` dicts, compared field by field. A field ``saved`` lacks was added by a
    later release: it counts as unchanged while ``current`` holds its default, which is the
    behaviour the earlier release had. Fields only ``saved`` has are gone from this release, and
    nothing here can act on them.
    """
    return _changes(saved, current, _default_semantic(), "")


def _changes(saved: dict[str, Any], current: dict[str, Any], default: Any, prefix: str) -> list[str]:
    changes = []
    for key in sorted(current):
        new, name = current[key], f"{prefix}{key}"
        old = saved.get(key, _ABSENT)
        fallback = default.get(key, _ABSENT) if isinstance(default, dict) else _ABSENT
        if isinstance(new, dict) and isinstance(fallback, dict) and (old is _ABSENT or isinstance(old, dict)):
            # A section (train, early_stopping): its fields one by one.
            changes.extend(_changes(old if isinstance(old, dict) else {}, new, fallback, name + "."))
        elif old is _ABSENT:
            if new != fallback:
                was = "no default" if fallback is _ABSENT else f"default {fallback!r}"
                changes.append(f"{name} (not in the checkpoint: {was}) -> {new!r}")
        elif old != new:
            changes.append(f"{name} {old!r} -> {new!r}")
    return changes
