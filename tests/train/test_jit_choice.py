"""jit_optimizer = "auto": AdamW's update is compiled with XLA only for runs long enough to pay for
the compile, and a resume keeps the choice its checkpoint trained with."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.train import checkpoints as ck
from engine.train.config import ConfigError, parse_config
from engine.train.loop import JIT_MIN_STEPS, Trainer
from tests.train.conftest import make_ctx, train_config


def _trainer(tiny_tf: Path, tiny_data: Path, root: Path, **train: object) -> Trainer:
    cfg = train_config(tiny_tf, tiny_data, max_steps=1, **train)
    ctx, _ = make_ctx(root, config=cfg)
    return Trainer(parse_config(cfg), tiny_data, ctx)


def test_auto_compiles_the_update_for_long_runs_only(tiny_tf: Path, tiny_data: Path, tmp_path: Path) -> None:
    trainer = _trainer(tiny_tf, tiny_data, tmp_path / "s")
    assert trainer.t.jit_optimizer == "auto"  # the default
    assert trainer._jit_optimizer(JIT_MIN_STEPS - 1) is False
    assert trainer._jit_optimizer(JIT_MIN_STEPS) is True
    for setting in (True, False):  # an explicit setting is kept whatever the length
        explicit = _trainer(tiny_tf, tiny_data, tmp_path / f"s{setting}", jit_optimizer=setting)
        assert explicit._jit_optimizer(10) is setting and explicit._jit_optimizer(10_000) is setting
    with pytest.raises(ConfigError, match="jit_optimizer"):
        parse_config(train_config(tiny_tf, tiny_data, jit_optimizer="sometimes"))


@pytest.mark.parametrize(
    ("fingerprints", "expected"),
    [
        ({"jit_optimizer": True}, True),  # recorded by this release
        ({"jit_optimizer": False}, False),
        ({"config_semantic": {"train": {"jit_optimizer": True}}}, True),  # ftc 0.1.0: the config's value
    ],
)
def test_a_resume_keeps_its_checkpoints_choice(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path, fingerprints: dict, expected: bool
) -> None:
    trainer = _trainer(tiny_tf, tiny_data, tmp_path / "s")
    ck.save(trainer.ckpt_dir, 4, weights=[], optimizer=[], rng=[], state={"fingerprints": fingerprints})
    trainer._resuming = True
    assert trainer._jit_optimizer(JIT_MIN_STEPS if not expected else 10) is expected
    trainer._resuming = False  # a new run decides by its length
    assert trainer._jit_optimizer(10) is False


def test_a_checkpoint_trained_with_the_other_update_is_refused(tmp_path: Path) -> None:
    new = ck.save(
        tmp_path / "a", 4, weights=[], optimizer=[], rng=[], state={"fingerprints": {"jit_optimizer": True}}
    )
    old = ck.save(
        tmp_path / "b", 4, weights=[], optimizer=[], rng=[],
        state={"fingerprints": {"config_semantic": {"train": {"jit_optimizer": False}}}},
    )  # fmt: skip
    ck.check_fingerprints(new, {"jit_optimizer": True})
    for path, saved in ((new, "true"), (old, "false")):
        flipped = saved != "true"
        with pytest.raises(
            ck.CheckpointError, match=rf"jit_optimizer changed \({saved} -> {str(flipped).lower()}\)"
        ):
            ck.check_fingerprints(path, {"jit_optimizer": flipped})
