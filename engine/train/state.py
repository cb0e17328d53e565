"""Where a training run stands (TrainerState, saved in each checkpoint) and what its callbacks ask for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.train import checkpoints as ck

# major.minor of state.json: a minor change adds fields with defaults (older readers ignore them);
# only a major change may be refused.
STATE_VERSION = "1.0"


class Evaluation(BaseModel):
    """One validation evaluation in the metric history."""

    model_config = ConfigDict(extra="ignore")

    step: int
    metrics: dict[str, float]


class TrainerState(BaseModel):
    """The run's position, early-stopping state, metric history and fingerprints (HF's TrainerState).

    Saved as a checkpoint's state.json and loaded back on resume. The keys are those ftc 0.1.0
    wrote and reads (``best``, ``bad_evals``...), so each release reads the other's checkpoints:
    keys this one does not know are ignored, and keys an older one did not write take defaults.
    """

    model_config = ConfigDict(extra="ignore")

    version: str = STATE_VERSION
    step: int = 0  # optimizer steps done (HF's global_step)
    epoch: int = 0
    batch_index: int = 0  # the next batch of the epoch's seeded plan
    total_steps: int = 0
    seed: int | None = None
    best: float | None = None  # the early-stopping metric's best value, and its step
    best_step: int | None = None
    bad_evals: int = 0  # evaluations since the best one (the patience counter)
    stopped_early: bool = False
    history: list[Evaluation] = Field(default_factory=list)
    # Compared on resume by checkpoints.check_fingerprints, which owns their fields.
    fingerprints: dict[str, Any] = Field(default_factory=dict)
    # Variable names in weights.npz order, without the model's per-process scope.
    variable_names: list[str] | None = None
    # Of the save itself: why, when, and the early-stopping metric at its step (the checkpoint list).
    reason: str | None = None
    time: float | None = None
    metric: float | None = None

    @classmethod
    def load(cls, checkpoint: Path) -> TrainerState:
        """The state saved in a checkpoint folder; a damaged or too new one raises CheckpointError."""
        try:
            raw = ck.read_state(checkpoint)
            state = cls.model_validate(raw)
        except (OSError, json.JSONDecodeError, ValidationError) as exc:
            raise ck.CheckpointError(
                f"{checkpoint.name}: state.json cannot be read ({str(exc).splitlines()[0]}); "
                "resume from another checkpoint"
            ) from None
        if state.version.split(".")[0] != STATE_VERSION.split(".")[0]:
            raise ck.CheckpointError(
                f"{checkpoint.name}: its state.json is version {state.version} and this release "
                f"reads {STATE_VERSION.split('.')[0]}.x; resume it with the release that wrote it"
            )
        return state

    def latest_metric(self, name: str) -> float | None:
        """The named metric at the last evaluation, if any."""
        return self.history[-1].metrics.get(name) if self.history else None


@dataclass
class TrainerControl:
    """What callbacks ask the loop to do at this step (HF's TrainerControl); reset once acted on."""

    should_evaluate: bool = False
    should_save: str | None = None  # the checkpoint's reason: "periodic" is written in the background
    should_training_stop: bool = False
