"""``ftc predict`` refuses bad input before starting an engine: one sentence on stderr, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.predict.conftest import fake_model, texts, write_csv
from tui.cli import main as ftc


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    # Before the engine starts the folder is checked (config, weights' header, tokenizer), not loaded.
    return fake_model(tmp_path / "model")


def _err(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    assert ftc(["predict", *args, "--detach"]) == 2
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ftc predict: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_bad_inputs_give_one_clear_sentence(
    model_dir: Path, tmp_path: Path, sessions_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_csv(tmp_path / "in.csv", texts(20))
    out = tmp_path / "out.h5"
    base = ["--model", str(model_dir), "--output", str(out)]
    assert "no such file" in _err(capsys, [*base, "--input", str(tmp_path / "missing.csv")])
    latin = write_csv(tmp_path / "latin.csv", ["café crème", *texts(5)], encoding="latin-1")
    msg = _err(capsys, [*base, "--input", str(latin)])
    assert "not valid utf-8" in msg and "--encoding latin-1" in msg
    msg = _err(capsys, [*base, "--input", str(good), "--text-col", "tweet"])
    assert "no text column 'tweet'" in msg and "id, text" in msg
    no_text = write_csv(tmp_path / "two.csv", texts(3), column="body2")
    assert "pass --text-col" in _err(capsys, [*base, "--input", str(no_text)])
    out.write_bytes(b"precious")
    assert "already exists; pass --overwrite" in _err(capsys, [*base, "--input", str(good)])
    assert out.read_bytes() == b"precious"
    assert "nothing to resume" in _err(capsys, [*base, "--input", str(good), "--resume"])
    msg = _err(
        capsys, ["--model", str(tmp_path / "nope"), "--input", str(good), "--output", str(tmp_path / "o2.h5")]
    )
    assert "no such folder and no session" in msg
    empty = tmp_path / "empty-model"
    empty.mkdir()
    msg = _err(capsys, ["--model", str(empty), "--input", str(good), "--output", str(tmp_path / "o2.h5")])
    assert "not a model folder" in msg
    assert "must be a positive number" in _err(
        capsys, [*base, "--input", str(good), "--overwrite", "--token-budget", "0"]
    )
    assert not any(sessions_root.glob("*/config.toml")), "no session may be created for bad input"


def test_latin1_input_is_accepted_with_its_encoding(
    model_dir: Path, tmp_path: Path, sessions_root: Path
) -> None:
    import argparse

    from tui.commands.predict import add_predict_arguments, build_config

    latin = write_csv(tmp_path / "latin.csv", ["café crème", *texts(5)], encoding="latin-1")
    parser = argparse.ArgumentParser()
    add_predict_arguments(parser)
    args = parser.parse_args(
        ["--model", str(model_dir), "--input", str(latin), "--output", "rel.h5", "--encoding", "latin-1"]
    )
    cfg = build_config(args, sessions_root)["predict"]
    assert cfg["encoding"] == "iso8859-1" and cfg["text_col"] == "text"
    assert Path(cfg["output"]).is_absolute() and Path(cfg["input"]).is_absolute()
    assert cfg["model"] == {"kind": "folder", "path": str(model_dir.resolve())}


def test_a_session_without_a_trained_model_is_refused(
    tmp_path: Path, sessions_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.session import SessionPaths

    paths = SessionPaths(sessions_root / "20260101-000000-train-abcd")
    paths.create()
    paths.config.write_text('[job]\nkind = "train"\n')
    good = write_csv(tmp_path / "in.csv", texts(5))
    msg = _err(
        capsys, ["--model", "20260101-000000-train", "--input", str(good), "--output", str(tmp_path / "o.h5")]
    )
    assert "has no trained model yet" in msg


def test_a_max_length_past_the_models_positions_is_refused_before_starting(
    tmp_path: Path, sessions_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_csv(tmp_path / "in.csv", texts(5))
    bert = fake_model(tmp_path / "bert", max_position_embeddings=64)
    # RoBERTa's positions start after its padding index: 514 embeddings take 512 tokens.
    roberta = fake_model(
        tmp_path / "roberta", model_type="roberta", max_position_embeddings=514, pad_token_id=1
    )
    out = str(tmp_path / "o.h5")
    msg = _err(capsys, ["--model", str(bert), "--input", str(good), "--output", out, "--max-length", "65"])
    assert "--max-length 65 is more than the model" in msg and "give --max-length 64 or less" in msg
    msg = _err(
        capsys, ["--model", str(roberta), "--input", str(good), "--output", out, "--max-length", "513"]
    )
    assert "give --max-length 512 or less" in msg
    assert not any(sessions_root.glob("*/config.toml"))

    import argparse

    from tui.commands.predict import add_predict_arguments, build_config

    parser = argparse.ArgumentParser()
    add_predict_arguments(parser)
    for model, n in ((bert, "64"), (roberta, "512")):
        args = parser.parse_args(
            ["--model", str(model), "--input", str(good), "--output", out, "--max-length", n]
        )
        assert build_config(args, sessions_root)["predict"]["max_length"] == int(n)


def test_precision_is_an_option_recorded_in_the_job(
    model_dir: Path, tmp_path: Path, sessions_root: Path
) -> None:
    import argparse

    from tui.commands.predict import add_predict_arguments, build_config

    good = write_csv(tmp_path / "in.csv", texts(5))
    parser = argparse.ArgumentParser()
    add_predict_arguments(parser)
    base = ["--model", str(model_dir), "--input", str(good), "--output", str(tmp_path / "o.h5")]
    assert build_config(parser.parse_args(base), sessions_root)["predict"]["precision"] == "float32"
    args = parser.parse_args([*base, "--precision", "bfloat16"])
    assert build_config(args, sessions_root)["predict"]["precision"] == "bfloat16"
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--precision", "float16"])


def test_overwrite_and_resume_accept_ftcs_own_outputs_even_damaged(
    model_dir: Path, tmp_path: Path, sessions_root: Path
) -> None:
    """The checks that refuse foreign files must not refuse ftc's own output, whole or cut short by a kill."""
    import argparse

    import numpy as np

    from engine.predict.models import fingerprint
    from engine.predict.source import Position, input_fingerprint, open_input
    from engine.predict.writer import PredictionWriter
    from tests.predict.conftest import LABELS
    from tui.commands.predict import add_predict_arguments, build_config

    good = write_csv(tmp_path / "in.csv", texts(8))
    out = tmp_path / "o.h5"
    meta = {
        "labels": LABELS,
        "model": {
            "kind": "folder",
            "path": str(model_dir),
            "fingerprint": fingerprint({"kind": "folder", "path": str(model_dir)}),
        },
        "input": input_fingerprint(open_input(good)),
        "settings": {"chunk_rows": 4, "token_budget": 64, "max_length": 16, "multiple": 2},
    }
    writer = PredictionWriter.create(out, LABELS, meta, overwrite=False)
    probs = np.full((4, 3), 1 / 3, dtype=np.float32)
    writer.append(
        writer.frame([1, 2, 3, 4], probs, probs.argmax(axis=1), [""] * 4), Position(4, 40).as_dict()
    )
    parser = argparse.ArgumentParser()
    add_predict_arguments(parser)
    base = ["--model", str(model_dir), "--input", str(good), "--output", str(out)]
    for option in ("--overwrite", "--resume"):
        assert build_config(parser.parse_args([*base, option]), sessions_root)["predict"][option[2:]] is True
    whole = out.read_bytes()
    out.write_bytes(whole[: len(whole) // 2])  # cut short: no longer opens, but its cursor names it
    for option in ("--overwrite", "--resume"):
        assert build_config(parser.parse_args([*base, option]), sessions_root)["predict"][option[2:]] is True
    assert out.read_bytes() == whole[: len(whole) // 2], "the checks only look"
