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


# ---------------------------------------------------------------- before a session: engine.jobs.validate


def _vocab_model(folder: Path, vocab: str = "[PAD]\n[UNK]\ngreat\nawful\n") -> Path:
    """A model folder with a vocab.txt tokenizer (no tokenizer.json) and safetensors weights, no TF."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "max_position_embeddings": 512}))
    (folder / "model.safetensors").write_bytes(b"present, not loaded")
    (folder / "vocab.txt").write_text(vocab)
    return folder


def _train(source: str, data: str) -> dict:
    return {"job": {"kind": "train"}, "model": {"source": source}, "data": {"dir": data}}


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    import json

    folder = tmp_path / "prepared"
    folder.mkdir()
    manifest = {"version": 1, "labels": ["neg", "pos"], "splits": {"train": {"rows": 0}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize(
    ("kind", "config", "needle"),
    [
        (
            "selftest",
            {"selftest": {}, "train": {}},
            "[train]: unknown section; a selftest job takes [job], [selftest]",
        ),
        (
            "predict",
            {"predict": {}, "data": {}},
            "[data]: unknown section; a predict job takes [job], [predict]",
        ),
        ("check", {"data": {"source": "x.csv"}, "model": {}}, "[model]: unknown section"),
        ("check", {"data": {"source": "x.csv"}, "train": {"epochs": 2}}, "[train] epochs: Extra inputs"),
        ("prepare", {"data": {"source": "x.csv", "dir": "d"}}, "[data] dir: Extra inputs"),
        (
            "selftest",
            {"selftest": {"steps": -1}},
            "[selftest] steps: Input should be greater than or equal to 0",
        ),
        ("predict", {"predict": {"model": "m", "input": "i"}}, "[predict] output: Field required"),
        (
            "predict",
            {"predict": {"model": "m", "input": "i", "output": "o", "chunk": 5}},
            "[predict] chunk: Extra",
        ),
    ],
)
def test_every_job_kind_has_strict_sections_and_keys(kind: str, config: dict, needle: str) -> None:
    from engine.jobs import validate

    with pytest.raises(ValueError) as err:
        validate(kind, {"job": {"kind": kind}, **config})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_the_other_kinds_accept_what_their_jobs_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.jobs import validate

    (tmp_path / "x.csv").write_text("text,label\ngreat,pos\nawful,neg\n")
    monkeypatch.chdir(tmp_path)

    validate("selftest", {"job": {"kind": "selftest"}, "selftest": {"steps": 3, "step_s": 0.0, "fail_at": 2}})
    validate(
        "check",
        {
            "job": {"kind": "check"},
            "data": {"source": "x.csv", "encoding": "auto"},
            "train": {"max_length": 64},
        },
    )
    prepare = {"data": {"source": "x.csv", "split": [0.8, 0.1, 0.1], "seed": 3, "dedupe": True}}
    validate("prepare", prepare)
    assert prepare["data"]["source"] == str(tmp_path / "x.csv")  # the engine runs in the session folder
    with pytest.raises(ValueError, match=r"\[data\] source: y.csv: no such file"):
        validate("check", {"data": {"source": "y.csv"}})
    validate(
        "predict",
        {"job": {"kind": "predict"}, "predict": {"model": "m", "input": "i", "output": "o", "resume": True}},
    )


@pytest.mark.parametrize(
    "name", ["bert-base-uncased", "sentence-transformers/all-MiniLM-L6-v2", "org/model.v2"]
)
def test_a_hub_name_is_kept_for_the_engine_to_download(
    name: str, prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.jobs import validate

    monkeypatch.chdir(tmp_path)
    config = _train(name, str(prepared))
    validate("train", config)
    assert config["model"]["source"] == name


@pytest.mark.parametrize(
    "value", ["./bert", "../models/bert", "~/no-such-model-here", "/nowhere/bert", "a/b/c", "prepared/bert"]
)
def test_a_path_that_does_not_exist_is_refused_not_sent_to_the_hub(
    value: str, prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.jobs import validate

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"\[model\] source .*no such folder"):
        validate("train", _train(value, str(prepared)))


def test_relative_paths_are_the_current_directorys_and_become_absolute(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine runs in the session folder: config.toml must name what the user's directory held."""
    from engine.jobs import validate

    _vocab_model(tmp_path / "models" / "bert")
    monkeypatch.chdir(tmp_path)
    config = _train("models/bert", "prepared")
    config["data"]["tokenizer"] = "./models/bert"
    validate("train", config)
    assert config["model"]["source"] == str(tmp_path / "models" / "bert")
    assert config["data"] == {"dir": str(prepared), "tokenizer": str(tmp_path / "models" / "bert")}


def test_a_vocabulary_tokenizer_is_checked_without_transformers(tmp_path: Path, prepared: Path) -> None:
    from engine.jobs import validate
    from engine.train.precheck import check_tokenizer

    folder = _vocab_model(tmp_path / "m")
    validate("train", _train(str(folder), str(prepared)))
    (folder / "vocab.txt").write_text("")
    with pytest.raises(ValueError, match=r"vocab.txt: the tokenizer's vocabulary is empty"):
        check_tokenizer(folder)
    (folder / "vocab.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=r"vocab.txt: not UTF-8 text"):
        check_tokenizer(folder)


def test_real_model_folders_pass(tiny_tf: Path, tmp_path: Path, prepared: Path) -> None:
    """The tiny BERT the engine tests train, and the demo's MiniLM when its assets are here."""
    from engine.jobs import validate
    from tui.demo import MODEL_PACKAGE, assets_dir

    config = _train(str(tiny_tf), str(prepared))
    config["train"] = {"max_length": 64}
    validate("train", config)
    minilm = assets_dir() / MODEL_PACKAGE[1] / MODEL_PACKAGE[2]
    if minilm.is_dir():
        validate("train", _train(str(minilm), str(prepared)))
