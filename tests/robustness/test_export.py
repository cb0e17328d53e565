"""The bad-input corpus for ``ftc export``: each case is refused before anything is written, in one line.

Every case runs ``ftc export`` in this process on a copy of a real finished tiny-BERT session
(tests/export/sessions.py) and asserts: exit 2, one stderr line starting ``ftc`` that names what
is at fault, no traceback, and every file under the test's folder (the session and any output)
byte-identical, with no file created. None of them loads TensorFlow in ftc: the checks come first.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.session import SessionPaths
from engine.train import checkpoints as ck
from tests.export.sessions import copy_session, trained_session
from tests.robustness.harness import Files, ftc, refused


@dataclass
class Setup:
    tmp: Path
    session: SessionPaths

    @property
    def root(self) -> Path:
        return self.session.root.parent

    def run(self, *args: str, session: str | None = None) -> object:
        return ftc("--sessions-dir", str(self.root), "export", session or self.session.id, *args)


@pytest.fixture
def setup(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Setup:
    return Setup(tmp_path, copy_session(trained_session(tmp_path_factory), tmp_path / "sessions"))


def _newest(s: Setup) -> Path:
    return ck.folders(s.session.checkpoints)[-1]


def _damage(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    path = _newest(s)
    weights = path / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    return ["--checkpoint", path.name, "--format", "hf", "--out", str(s.tmp / "out")], (path.name, "damaged")


def _existing(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    out = s.tmp / "out"
    out.mkdir()
    (out / "README.md").write_text("mine\n")
    return ["--format", "hf", "--out", str(out)], ("--out", "exists", "--overwrite")


def _not_an_export(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    out = s.tmp / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work\n")
    return ["--format", "hf", "--out", str(out), "--overwrite"], ("--out", "not an earlier ftc export")


def _out_is_a_file(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    out = s.tmp / "model.bin"
    out.write_bytes(b"\0" * 16)
    return ["--format", "hf", "--out", str(out), "--overwrite"], ("model.bin", "not a folder")


def _inside(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    return ["--format", "hf", "--out", str(s.session.root / "export")], ("inside the session", s.session.id)


def _the_session(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    return ["--format", "hf", "--out", str(s.session.root), "--overwrite"], ("inside the session",)


def _the_model_folder(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    return ["--format", "savedmodel", "--out", str(s.session.model), "--overwrite"], ("inside the session",)


def _sessions_folder(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    return ["--format", "hf", "--out", str(s.root), "--overwrite"], ("holds the session",)


def _parent_missing(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    return ["--format", "hf", "--out", str(s.tmp / "no" / "such" / "out")], (
        "parent folder",
        "does not exist",
    )


def _format(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    return ["--format", "onnx", "--out", str(s.tmp / "out")], ("--format", "onnx", "hf")


def _unknown_checkpoint(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    return ["--checkpoint", "ckpt-99999", "--format", "hf", "--out", str(s.tmp / "out")], (
        "ckpt-99999",
        "intact",
    )


def _other_sessions_checkpoint(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    other = copy_session(s.session, s.tmp / "elsewhere")
    path = str(_newest(s).relative_to(s.session.root))
    theirs = other.root / path
    return ["--checkpoint", str(theirs), "--format", "hf", "--out", str(s.tmp / "out")], (
        "not one of session",
    )


def _best_pruned(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    best = ck.read_state(_newest(s)).get("best_step")
    ck._delete(s.session.checkpoints / f"ckpt-{best}")
    return ["--checkpoint", "best", "--format", "hf", "--out", str(s.tmp / "out")], (
        "best checkpoint",
        "pruned",
    )


def _nothing_trained(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    import shutil

    shutil.rmtree(s.session.model)
    shutil.rmtree(s.session.checkpoints)
    return ["--format", "hf", "--out", str(s.tmp / "out")], ("no trained model", "no checkpoint")


def _all_damaged(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    import shutil

    shutil.rmtree(s.session.model)
    for path in ck.folders(s.session.checkpoints):
        (path / "optimizer.npz").write_bytes(b"cut")
    return ["--checkpoint", "last", "--format", "hf", "--out", str(s.tmp / "out")], (
        "no intact checkpoint",
        "damaged",
    )


def _unknown_session(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    return ["--format", "hf", "--out", str(s.tmp / "out")], ("no session", "nosuchsession")


def _unsupported_architecture(s: Setup) -> tuple[list[str], tuple[str, ...]]:
    config = s.session.model / "config.json"
    data = json.loads(config.read_text())
    data["model_type"] = "gpt2"
    config.write_text(json.dumps(data))
    return ["--format", "hf", "--out", str(s.tmp / "out")], ("gpt2", "savedmodel")


CASES: dict[str, tuple[Callable[[Setup], tuple[list[str], tuple[str, ...]]], str | None]] = {
    "existing_out_without_overwrite": (_existing, None),
    "overwrite_of_a_folder_that_is_no_export": (_not_an_export, None),
    "overwrite_of_a_file": (_out_is_a_file, None),
    "out_inside_the_session": (_inside, None),
    "out_is_the_session": (_the_session, None),
    "out_is_the_sessions_model_folder": (_the_model_folder, None),
    "out_holds_the_session": (_sessions_folder, None),
    "out_parent_missing": (_parent_missing, None),
    "unsupported_format": (_format, None),
    "unknown_session": (_unknown_session, "nosuchsession"),
    "unknown_checkpoint_name": (_unknown_checkpoint, None),
    "checkpoint_of_another_session": (_other_sessions_checkpoint, None),
    "damaged_checkpoint": (_damage, None),
    "best_checkpoint_pruned": (_best_pruned, None),
    "session_without_model_or_checkpoint": (_nothing_trained, None),
    "every_checkpoint_damaged": (_all_damaged, None),
    "unsupported_architecture": (_unsupported_architecture, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_export_refuses(case: str, setup: Setup) -> None:
    build, session = CASES[case]
    args, names = build(setup)
    before = Files(setup.tmp)
    had_tensorflow = "tensorflow" in sys.modules
    out = setup.run(*args, session=session)
    refused(out, *names, case=f"export:{case}")  # type: ignore[arg-type]
    assert out.err_lines[0].startswith("ftc export: ")  # type: ignore[attr-defined]
    before.assert_unchanged(no_new_files=True)
    assert had_tensorflow or "tensorflow" not in sys.modules, "a refusal loaded TensorFlow"
