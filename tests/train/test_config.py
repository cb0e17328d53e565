"""The [model]/[data]/[train] configuration: defaults, one-line errors, fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.train.config import ConfigError, load_config, parse_config, semantic_changes


def test_defaults_and_other_sections_ignored() -> None:
    cfg = parse_config({"job": {"kind": "train"}, "model": {"source": "bert-base-uncased"}})
    assert cfg.train.schedule == "linear" and cfg.train.grad_accum_steps == 1
    assert cfg.train.early_stopping.maximize and cfg.data.dir is None


@pytest.mark.parametrize(
    ("train", "needle"),
    [
        ({"learning_rat": 1e-4}, "[train] learning_rat: Extra inputs are not permitted; remove it"),
        ({"schedule": "step"}, "[train] schedule"),
        ({"batch_size": 0}, "[train] batch_size"),
        ({"warmup_steps": 5, "warmup_ratio": 0.1}, "keep one of them"),
        ({"freeze": "bottom_n"}, "freeze_layers"),
        ({"early_stopping": {"patience": 0}}, "[train] early_stopping.patience"),
        ({"class_weights": "heavy"}, "[train] class_weights"),
        (
            {"early_stopping": {"metric": "f1"}},
            "[train] early_stopping.metric: 'f1' is not an evaluation metric; use one of loss, accuracy, "
            "macro_precision, macro_recall, macro_f1, roc_auc",
        ),
    ],
)
def test_errors_name_the_field_in_one_line(train: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"model": {"source": "m"}, "train": train})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_missing_model_source(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[train]\nepochs = 1\n")
    with pytest.raises(ConfigError, match=r"\[model\].*add it"):
        load_config(path)


def test_fingerprint_ignores_checkpoint_cadence_but_not_learning() -> None:
    base = parse_config({"model": {"source": "m"}, "train": {"keep_last": 2}})
    cadence = parse_config({"model": {"source": "m"}, "train": {"keep_last": 9, "checkpoint_every_steps": 7}})
    lr = parse_config({"model": {"source": "m"}, "train": {"learning_rate": 1e-3}})
    assert base.fingerprint() == cadence.fingerprint()
    assert base.fingerprint() != lr.fingerprint()
    assert semantic_changes(base.semantic(), lr.semantic()) == ["train.learning_rate 5e-05 -> 0.001"]
    assert semantic_changes(base.semantic(), cadence.semantic()) == []


def test_a_field_the_saved_config_lacks_is_unchanged_at_its_default() -> None:
    """A checkpoint older than a setting resumes while that setting is left at its default."""
    current = parse_config({"model": {"source": "m"}, "train": {"learning_rate": 1e-3}}).semantic()
    older = parse_config({"model": {"source": "m"}, "train": {"learning_rate": 1e-3}}).semantic()
    del older["train"]["bucket_window"], older["train"]["early_stopping"]["min_delta"]
    assert semantic_changes(older, current) == []
    changed = parse_config(
        {"model": {"source": "m"}, "train": {"learning_rate": 1e-3, "early_stopping": {"min_delta": 0.1}}}
    ).semantic()
    assert semantic_changes(older, changed) == [
        "train.early_stopping.min_delta (not in the checkpoint: default 0.0) -> 0.1"
    ]


def test_readme_training_configuration_lists_every_key_with_its_default() -> None:
    import re
    import tomllib

    from engine.train.config import DataSection, EarlyStopping, TrainSection

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Training configuration", 1)[1]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    parsed = parse_config(tomllib.loads(block))
    # Every value the example sets is the default, so the example documents the defaults.
    assert parsed.train.model_dump() == TrainSection.model_validate({}).model_dump()
    for model in (TrainSection, EarlyStopping, DataSection):
        missing = [name for name in model.model_fields if not re.search(rf"\b{name}\b", block)]
        assert not missing, f"README's example config does not mention {model.__name__}: {missing}"
