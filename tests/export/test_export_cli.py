"""``ftc export`` on a real finished tiny-BERT session: the formats, the weights it picks, --overwrite.

The session is trained once per test process by a real engine (tests/export/sessions.py); each
test exports from its own copy, and checks that nothing in the session changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from engine.session import SessionPaths
from tests.export.sessions import LABELS, copy_session, trained_session
from tests.robustness.harness import Files, ftc, ftc_process


@pytest.fixture
def session(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> SessionPaths:
    return copy_session(trained_session(tmp_path_factory), tmp_path / "sessions")


def export(session: SessionPaths, *args: str) -> tuple[int, str, str]:
    out = ftc("--sessions-dir", str(session.root.parent), "export", session.id, *args)
    assert out.escaped is None, out.escaped
    return out.code, out.out, out.err


def front_matter(card: str) -> dict:
    import yaml

    assert card.startswith("---\n")
    return yaml.safe_load(card.split("\n---\n", 1)[0][4:])


def test_hf_export_of_a_finished_session_is_its_model_folder_with_a_card(
    session: SessionPaths, tmp_path: Path
) -> None:
    before = Files(session.root)
    out = tmp_path / "exports" / "hf"
    out.parent.mkdir()
    code, stdout, stderr = export(session, "--format", "hf", "--out", str(out))
    assert code == 0, stderr
    assert {"model.safetensors", "config.json", "README.md", "tokenizer.json"} <= {
        p.name for p in out.iterdir()
    }
    config = json.loads((out / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(len(LABELS))] == LABELS
    lines = stdout.splitlines()
    assert lines[0].startswith(f"exporting {session.id}: model/ ")
    assert any(ln.strip().startswith("weights: model.safetensors") for ln in lines)
    assert any(ln.strip().startswith("card: README.md") for ln in lines)
    assert lines[-1] == f"exported to {out}"
    card = (out / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-classification"
    assert "transformers v5 / PyTorch" in card and "AutoModelForSequenceClassification" in card
    assert sorted(p.name for p in out.parent.iterdir()) == ["hf"], "no temp folder is left beside --out"
    before.assert_unchanged(no_new_files=True)


def test_savedmodel_export_of_the_last_checkpoint_serves_probabilities(
    session: SessionPaths, tmp_path: Path
) -> None:
    import tensorflow as tf

    before = Files(session.root)
    out = tmp_path / "sm"
    code, stdout, stderr = export(
        session, "--checkpoint", "last", "--format", "savedmodel", "--out", str(out)
    )
    assert code == 0, stderr
    last = sorted((session.checkpoints).glob("ckpt-*"), key=lambda p: int(p.name[5:]))[-1]
    assert f"{last.name} (the newest intact checkpoint at step" in stdout
    assert (out / "saved_model.pb").is_file() and (out / "README.md").is_file()
    assert (out / "assets" / "labels.txt").read_text().split() == LABELS
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    card = (out / "README.md").read_text()
    assert f"Weights: {last.name}" in card and "tf.saved_model.load" in card
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    ids = tf.constant([[2, 10, 11, 3], [2, 12, 3, 0]], tf.int32)
    result = serve(input_ids=ids, attention_mask=tf.cast(ids != 0, tf.int32))
    probs = result["probabilities"].numpy()
    assert probs.shape == (2, len(LABELS)) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    before.assert_unchanged(no_new_files=True)


def test_best_checkpoint_and_a_named_one(session: SessionPaths, tmp_path: Path) -> None:
    from engine.train import checkpoints as ck

    best = ck.read_state(ck.latest_complete(session.checkpoints)).get("best_step")
    assert isinstance(best, int)
    code, stdout, stderr = export(
        session, "--checkpoint", "best", "--format", "hf", "--out", str(tmp_path / "b")
    )
    assert code == 0, stderr
    assert f"ckpt-{best} (the best checkpoint at step {best}" in stdout
    code, stdout, stderr = export(
        session, "--checkpoint", str(best), "--format", "hf", "--out", str(tmp_path / "n")
    )
    assert code == 0, stderr
    a = (tmp_path / "b" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "n" / "model.safetensors").read_bytes(), "the same checkpoint, the same weights"


def test_overwrite_replaces_an_earlier_export_and_refuses_a_stranger(
    session: SessionPaths, tmp_path: Path
) -> None:
    out = tmp_path / "hf"
    assert export(session, "--format", "hf", "--out", str(out))[0] == 0
    first = (out / "README.md").read_text()
    code, _, stderr = export(session, "--format", "hf", "--out", str(out))
    assert code == 2 and "--overwrite" in stderr
    code, _, stderr = export(
        session, "--checkpoint", "last", "--format", "hf", "--out", str(out), "--overwrite"
    )
    assert code == 0, stderr
    assert (out / "README.md").read_text() != first and "Weights: ckpt-" in (out / "README.md").read_text()
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    before = Files(stranger)
    code, _, stderr = export(session, "--format", "hf", "--out", str(stranger), "--overwrite")
    assert code == 2 and "not an earlier ftc export" in stderr
    before.assert_unchanged(no_new_files=True)


def test_an_export_killed_before_its_rename_leaves_the_old_one_whole(
    session: SessionPaths, tmp_path: Path
) -> None:
    out = tmp_path / "hf"
    assert export(session, "--format", "hf", "--out", str(out))[0] == 0
    before = Files(out)
    args = ("--sessions-dir", str(session.root.parent), "export", session.id, "--checkpoint", "last")
    killed = ftc_process(
        *args, "--format", "hf", "--out", str(out), "--overwrite", env={"FTC_FAULT": "export_complete@1"}
    )
    assert killed.code == -9, (killed.code, killed.err[-2000:])
    before.assert_unchanged(no_new_files=True)
    assert any(p.name.startswith(".ftc-export-hf-") for p in tmp_path.iterdir()), (
        "the kill left its temp folder"
    )
    code, _, stderr = export(
        session, "--checkpoint", "last", "--format", "hf", "--out", str(out), "--overwrite"
    )
    assert code == 0, stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "sessions") == ["hf"], (
        "the leftover is swept"
    )


def test_the_command_module_loads_no_tensorflow() -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    code = "import sys, tui.commands.export, engine.export.run; print('tensorflow' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.strip() == "False", proc.stderr


def test_a_full_disk_fails_in_one_line_and_keeps_the_earlier_export(
    session: SessionPaths, tmp_path: Path
) -> None:
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "small"
    disk.mkdir()
    # Room for one hf export of the tiny model (about 130 KB) but not for a second beside it.
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = disk / "hf"
        code, _, stderr = export(session, "--format", "hf", "--out", str(out))
        assert code == 0, stderr
        before = Files(disk)
        code, _, stderr = export(session, "--format", "hf", "--out", str(out), "--overwrite")
        lines = [ln for ln in stderr.splitlines() if ln.strip() and ln.startswith("ftc")]
        assert code == 2 and len(lines) == 1, stderr[-2000:]
        assert "no space left on device" in lines[0] and "export again" in lines[0]
        before.assert_unchanged(no_new_files=True)
        assert sorted(p.name for p in disk.iterdir()) == ["hf"], "the temp folder is removed"
    finally:
        subprocess.run(["umount", str(disk)], check=False)
