"""The bad-input corpus for ``ftc predict``: each case is refused before an engine starts, in one line.

Every case builds its bad input under ``tmp_path``, hashes every file there, runs ``ftc predict``
in this process and asserts: exit 2, one stderr line starting ``ftc`` that names the file or
option at fault, no traceback, no session created, every file byte-identical afterwards. None
loads TensorFlow: the model folders pass (or fail) the checks made before an engine starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.predict.conftest import LABELS, fake_model, texts, write_csv
from tests.robustness.harness import Files, ftc, refused


@dataclass
class Case:
    """What a builder made: the ftc predict arguments to run and what the refusal must name."""

    args: list[str]
    names: tuple[str, ...]
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Setup:
    root: Path
    data: Path
    model: Path
    out: Path

    def argv(
        self, *more: str, data: Path | None = None, model: Path | None = None, out: Path | None = None
    ) -> list[str]:
        return [
            "--model",
            str(model or self.model),
            "--input",
            str(data or self.data),
            "--output",
            str(out or self.out),
            *more,
        ]


def _ftc_output(s: Setup, out: Path | None = None, *, fingerprint: str = "other-model") -> Path:
    """A real ftc output with its cursor (written by the writer itself), of a run of some model."""
    from engine.predict.source import Position
    from engine.predict.writer import PredictionWriter

    out = out or s.out
    meta = {
        "labels": LABELS,
        "label2id": {n: i for i, n in enumerate(LABELS)},
        "model": {"kind": "folder", "path": str(s.model), "fingerprint": fingerprint},
        "input": {"path": str(s.data), "size": 1, "mtime_ns": 1, "format": "csv", "text_col": "text"},
        "settings": {"chunk_rows": 4, "token_budget": 64, "max_length": 16, "multiple": 2},
        "precision": "float32",
    }
    writer = PredictionWriter.create(out, LABELS, meta, overwrite=False)
    probs = np.full((4, 3), 1 / 3, dtype=np.float32)
    writer.append(
        writer.frame([1, 2, 3, 4], probs, probs.argmax(axis=1), [""] * 4), Position(4, 40).as_dict()
    )
    return out


# ---------------------------------------------------------------- the output is an input


def output_is_the_input(s: Setup) -> Case:
    return Case(s.argv(out=s.data), (s.data.name, "--output", "--input"))


def output_is_the_input_with_overwrite(s: Setup) -> Case:
    return Case(s.argv("--overwrite", out=s.data), (s.data.name, "--output", "--input"))


def output_is_a_symlink_to_the_input(s: Setup) -> Case:
    link = s.root / "link.h5"
    link.symlink_to(s.data)
    return Case(s.argv("--overwrite", out=link), (s.data.name, "--output"))


def output_is_a_hard_link_to_the_input(s: Setup) -> Case:
    link = s.root / "hard.h5"
    os.link(s.data, link)
    return Case(s.argv("--overwrite", out=link), ("hard.h5", s.data.name, "same file on disk"))


def output_reaches_the_input_through_dotdot(s: Setup) -> Case:
    (s.root / "sub").mkdir()
    return Case(s.argv("--overwrite", out=s.root / "sub" / ".." / s.data.name), (s.data.name, "--output"))


def output_is_the_models_weights(s: Setup) -> Case:
    return Case(s.argv("--overwrite", out=s.model / "tf_model.h5"), ("tf_model.h5", "--model"))


def output_is_a_new_file_inside_the_model_folder(s: Setup) -> Case:
    return Case(s.argv(out=s.model / "preds.h5"), ("preds.h5", "--model", s.model.name))


# ---------------------------------------------------------------- the output cannot be written or replaced


def overwrite_onto_a_file_that_is_not_an_ftc_output(s: Setup) -> Case:
    s.out.write_bytes(b"quarterly figures, not a prediction\n")
    return Case(s.argv("--overwrite"), (s.out.name, "not an ftc prediction output", "--overwrite"))


def overwrite_onto_someone_elses_hdf5(s: Setup) -> Case:
    pd.DataFrame({"x": range(5)}).to_hdf(s.out, key="results", format="table")
    return Case(s.argv("--overwrite"), (s.out.name, "ftc metadata", "--overwrite"))


def output_exists_without_overwrite(s: Setup) -> Case:
    _ftc_output(s)
    return Case(s.argv(), (s.out.name, "--overwrite"))


def only_an_earlier_runs_cursor_is_there(s: Setup) -> Case:
    _ftc_output(s)
    s.out.unlink()
    return Case(s.argv(), (f"{s.out.name}.cursor.json", "--resume", "--overwrite"))


def output_folder_missing(s: Setup) -> Case:
    return Case(s.argv(out=s.root / "no-such-dir" / "out.h5"), ("no-such-dir", "create it first"))


def output_is_a_folder(s: Setup) -> Case:
    (s.root / "results").mkdir()
    return Case(s.argv(out=s.root / "results"), ("results", "is a folder", "--output"))


def resume_and_overwrite_together(s: Setup) -> Case:
    return Case(s.argv("--resume", "--overwrite"), ("--resume", "--overwrite"))


# ---------------------------------------------------------------- resuming a damaged or foreign output


def resume_with_a_damaged_cursor(s: Setup) -> Case:
    _ftc_output(s)
    cursor = s.root / f"{s.out.name}.cursor.json"
    cursor.write_bytes(cursor.read_bytes()[:57])  # cut short mid-JSON
    return Case(s.argv("--resume"), (cursor.name, "--overwrite"))


def resume_with_a_cursor_of_another_kind(s: Setup) -> Case:
    _ftc_output(s)
    (s.root / f"{s.out.name}.cursor.json").write_text(json.dumps({"version": 1, "rows": 5}))
    return Case(s.argv("--resume"), (f"{s.out.name}.cursor.json", "damaged ftc cursor"))


def resume_onto_a_file_that_is_not_an_ftc_output(s: Setup) -> Case:
    _ftc_output(s)
    s.out.write_text("id,label\n1,pos\n")  # someone saved their own file under the output's name
    return Case(s.argv("--resume"), (s.out.name, "not an ftc prediction output", "--output"))


def resume_an_output_that_is_gone(s: Setup) -> Case:
    _ftc_output(s)
    s.out.unlink()
    return Case(s.argv("--resume"), (s.out.name, "4 rows", "--overwrite"))


def resume_with_another_model(s: Setup) -> Case:
    from engine.predict.source import input_fingerprint, open_input

    _ftc_output(s, fingerprint="not-this-model")
    # Same input as recorded, so only the model differs.
    cursor_file = s.root / f"{s.out.name}.cursor.json"
    cursor = json.loads(cursor_file.read_text())
    cursor["meta"]["input"] = input_fingerprint(open_input(s.data))
    cursor_file.write_text(json.dumps(cursor))
    return Case(s.argv("--resume"), (s.out.name, "another model"))


def resume_on_a_changed_input(s: Setup) -> Case:
    from engine.predict.models import fingerprint

    _ftc_output(s, fingerprint=fingerprint({"kind": "folder", "path": str(s.model)}))
    return Case(s.argv("--resume"), (s.out.name, "another input", "--overwrite"))


# ---------------------------------------------------------------- the model


def model_missing(s: Setup) -> Case:
    return Case(s.argv(model=s.root / "no-model"), ("no-model", "no such folder"))


def model_without_weights(s: Setup) -> Case:
    (s.model / "tf_model.h5").unlink()
    return Case(s.argv(), (s.model.name, "no weights"))


def model_with_empty_weights(s: Setup) -> Case:
    (s.model / "tf_model.h5").write_bytes(b"")
    return Case(s.argv(), ("tf_model.h5", "damaged"))


def model_with_truncated_safetensors(s: Setup) -> Case:
    (s.model / "tf_model.h5").unlink()
    header = json.dumps({"w": {"dtype": "F32", "shape": [64], "data_offsets": [0, 256]}}).encode()
    data = len(header).to_bytes(8, "little") + header + b"\0" * 100  # 156 bytes of the 256 it lists
    (s.model / "model.safetensors").write_bytes(data)
    return Case(s.argv(), ("model.safetensors", "truncated"))


def model_with_corrupt_config(s: Setup) -> Case:
    (s.model / "config.json").write_text('{"model_type": "bert", "id2label": {"0": "neg",')
    return Case(s.argv(), ("config.json", "not valid JSON", "line 1"))


def model_config_without_model_type(s: Setup) -> Case:
    (s.model / "config.json").write_text(json.dumps({"hidden_size": 32}))
    return Case(s.argv(), ("config.json", "model_type"))


def model_with_corrupt_tokenizer(s: Setup) -> Case:
    (s.model / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "WordPiece", "vocab": ')
    return Case(s.argv(), ("tokenizer.json", "tokenizer"))


def model_with_a_tokenizer_json_that_is_not_one(s: Setup) -> Case:
    (s.model / "tokenizer.json").write_text(json.dumps({"hello": "world"}))
    return Case(s.argv(), ("tokenizer.json", "cannot be loaded as a tokenizer"))


def model_without_vocab(s: Setup) -> Case:
    (s.model / "vocab.txt").unlink()
    (s.model / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    return Case(s.argv(), (s.model.name, "no tokenizer"))


def model_with_corrupt_tokenizer_config(s: Setup) -> Case:
    (s.model / "tokenizer_config.json").write_bytes(b"\xff\xfe\x00garbage")
    return Case(s.argv(), ("tokenizer_config.json", "JSON"))


# ---------------------------------------------------------------- the input


def input_missing(s: Setup) -> Case:
    return Case(s.argv(data=s.root / "nope.csv"), ("nope.csv", "no such file"))


def input_empty(s: Setup) -> Case:
    empty = s.root / "empty.csv"
    empty.write_bytes(b"")
    return Case(s.argv(data=empty), ("empty.csv", "empty"))


def input_text_column_missing(s: Setup) -> Case:
    return Case(s.argv("--text-col", "tweet"), (s.data.name, "tweet", "--text-col"))


def input_without_a_recognisable_text_column(s: Setup) -> Case:
    data = write_csv(s.root / "body.csv", texts(5), column="body2")
    return Case(s.argv(data=data), ("body.csv", "--text-col"))


def input_with_nul_bytes(s: Setup) -> Case:
    data = s.root / "nul.csv"
    data.write_bytes(b"id,text\n1,hello\x00world\n2,fine\n")
    return Case(s.argv(data=data), ("nul.csv", "NUL"))


def input_in_another_encoding(s: Setup) -> Case:
    data = write_csv(s.root / "latin.csv", ["café crème", *texts(5)], encoding="latin-1")
    return Case(s.argv(data=data), ("latin.csv", "--encoding"))


def input_hdf5_truncated(s: Setup) -> Case:
    data = s.root / "in.h5"
    pd.DataFrame({"text": texts(300)}).to_hdf(data, key="texts", format="table")
    whole = data.read_bytes()
    data.write_bytes(whole[: len(whole) // 2])
    return Case(s.argv(data=data), ("in.h5", "truncated"))


def input_hdf5_wrong_key(s: Setup) -> Case:
    data = s.root / "in.h5"
    pd.DataFrame({"text": texts(30)}).to_hdf(data, key="texts", format="table")
    return Case(s.argv("--key", "tweets", data=data), ("in.h5", "tweets"))


def input_is_a_folder(s: Setup) -> Case:
    (s.root / "data").mkdir()
    return Case(s.argv(data=s.root / "data"), ("data", "directory"))


# ---------------------------------------------------------------- numbers


def token_budget_zero(s: Setup) -> Case:
    return Case(s.argv("--token-budget", "0"), ("--token-budget", "positive"))


def chunk_rows_negative(s: Setup) -> Case:
    return Case(s.argv("--chunk-rows", "-5"), ("--chunk-rows", "positive"))


def max_length_past_the_models_positions(s: Setup) -> Case:
    return Case(s.argv("--max-length", "65"), ("--max-length", "64"))


CASES: list[Callable[[Setup], Case]] = [
    output_is_the_input,
    output_is_the_input_with_overwrite,
    output_is_a_symlink_to_the_input,
    output_is_a_hard_link_to_the_input,
    output_reaches_the_input_through_dotdot,
    output_is_the_models_weights,
    output_is_a_new_file_inside_the_model_folder,
    overwrite_onto_a_file_that_is_not_an_ftc_output,
    overwrite_onto_someone_elses_hdf5,
    output_exists_without_overwrite,
    only_an_earlier_runs_cursor_is_there,
    output_folder_missing,
    output_is_a_folder,
    resume_and_overwrite_together,
    resume_with_a_damaged_cursor,
    resume_with_a_cursor_of_another_kind,
    resume_onto_a_file_that_is_not_an_ftc_output,
    resume_an_output_that_is_gone,
    resume_with_another_model,
    resume_on_a_changed_input,
    model_missing,
    model_without_weights,
    model_with_empty_weights,
    model_with_truncated_safetensors,
    model_with_corrupt_config,
    model_config_without_model_type,
    model_with_corrupt_tokenizer,
    model_with_a_tokenizer_json_that_is_not_one,
    model_without_vocab,
    model_with_corrupt_tokenizer_config,
    input_missing,
    input_empty,
    input_text_column_missing,
    input_without_a_recognisable_text_column,
    input_with_nul_bytes,
    input_in_another_encoding,
    input_hdf5_truncated,
    input_hdf5_wrong_key,
    input_is_a_folder,
    token_budget_zero,
    chunk_rows_negative,
    max_length_past_the_models_positions,
]


@pytest.fixture
def setup(tmp_path: Path, sessions_root: Path) -> Setup:
    work = tmp_path / "work"
    work.mkdir()
    data = write_csv(work / "in.csv", texts(12))
    return Setup(root=work, data=data, model=fake_model(work / "model"), out=work / "out.h5")


@pytest.mark.parametrize("build", CASES, ids=[c.__name__ for c in CASES])
def test_predict_refuses_bad_input(build: Callable[[Setup], Case], setup: Setup, sessions_root: Path) -> None:
    case = build(setup)
    before = Files(setup.root)
    out = ftc("predict", *case.args, "--detach")
    refused(out, *case.names, case=f"predict:{build.__name__}")
    before.assert_unchanged(no_new_files=True)
    assert not any(sessions_root.glob("*/config.toml")), "a refused prediction creates no session"


@contextlib.contextmanager
def _mounted(folder: Path, *options: str) -> Iterator[None]:
    """A tmpfs at ``folder`` (root only); skips the test with the reason when it cannot be mounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(exist_ok=True)
    opts = ",".join(("size=1m", *options))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_an_output_folder_on_a_read_only_disk_is_refused(
    setup: Setup, tmp_path: Path, sessions_root: Path
) -> None:
    readonly = tmp_path / "ro"
    with _mounted(readonly, "ro"):
        before = Files(setup.root)
        out = ftc("predict", *setup.argv(out=readonly / "out.h5"), "--detach")
        refused(out, "ro", "read-only", "--output", case="predict:output_folder_read_only")
        before.assert_unchanged(no_new_files=True)


@contextlib.contextmanager
def _immutable(path: Path) -> Iterator[None]:
    """chattr +i: not even root may change it (the permission error a root test can make); undone after."""
    if os.geteuid() != 0:
        pytest.skip("chattr +i needs root")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i does not work here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_an_output_folder_without_write_permission_is_refused(setup: Setup, sessions_root: Path) -> None:
    locked = setup.root / "locked"
    locked.mkdir()
    with _immutable(locked):
        before = Files(setup.root)
        out = ftc("predict", *setup.argv(out=locked / "out.h5"), "--detach")
        refused(out, "locked", "permission denied", "--output", case="predict:output_folder_not_writable")
        before.assert_unchanged(no_new_files=True)


@pytest.mark.parametrize("option", ["--overwrite", "--resume"])
def test_an_output_without_write_permission_is_refused(
    setup: Setup, sessions_root: Path, option: str
) -> None:
    from engine.predict.models import fingerprint
    from engine.predict.source import input_fingerprint, open_input

    _ftc_output(setup, fingerprint=fingerprint({"kind": "folder", "path": str(setup.model)}))
    cursor_file = setup.root / f"{setup.out.name}.cursor.json"
    cursor = json.loads(cursor_file.read_text())
    cursor["meta"]["input"] = input_fingerprint(open_input(setup.data))  # a resume that would otherwise go
    cursor_file.write_text(json.dumps(cursor))
    with _immutable(setup.out):
        before = Files(setup.root)
        out = ftc("predict", *setup.argv(option), "--detach")
        refused(out, setup.out.name, "permission denied", option, case=f"predict:output_not_writable{option}")
        before.assert_unchanged(no_new_files=True)
