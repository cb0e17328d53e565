"""--shard K/N and ftc predict merge: shards as real engine processes, one killed and resumed, merge into
the single run's file (bit-equal probabilities); every refusal names the shard and leaves files unchanged."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.errors import ConfigError
from engine.fsio import FAULT_ENV
from engine.journal import read_all
from engine.predict.shards import Shard, parse_shard, shard_rows
from engine.predict.writer import cursor_path, read_cursor, read_metadata
from engine.protocol import JobFinished
from engine.session import SessionPaths, pid_alive, read_state, resolve
from tests.conftest import wait_for
from tests.predict.conftest import LABELS, make_classifier, run_job, texts, write_csv
from tui.cli import main as ftc

CHUNK = 40  # 12 chunks of the 470-row input: shards of 4 chunks each, the last one shorter
ROWS = 470


@pytest.fixture(scope="module")
def job(tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An input, the single run's output, and its three shards' outputs (in-process), as the refusals need."""
    folder = tmp_path_factory.mktemp("shards")
    inp = write_csv(folder / "in.csv", [*texts(ROWS - 2, seed=21), None, "x"])
    made = {"model": tiny_classifier, "input": inp, "ref": folder / "ref.h5"}
    run_job(tiny_classifier, inp, made["ref"], chunk_rows=CHUNK)
    for k in (1, 2, 3):
        made[f"s{k}"] = folder / f"out.part{k}of3.h5"
        run_job(tiny_classifier, inp, made[f"s{k}"], chunk_rows=CHUNK, shard=f"{k}/3")
    return made


def _copy(job: dict[str, Path], folder: Path, *ks: int) -> list[Path]:
    """Copies of shard outputs (and their cursors) in ``folder``: tests may tamper with them."""
    found = []
    for k in ks:
        src = job[f"s{k}"]
        for file in (src, cursor_path(src)):
            shutil.copy2(file, folder / file.name)
        found.append(folder / src.name)
    return found


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def _assert_same_as_single_run(merged: Path, ref: Path) -> None:
    a, b = pd.read_hdf(ref), pd.read_hdf(merged)
    pd.testing.assert_frame_equal(b, a, check_exact=True)
    probs = [f"prob_{x}" for x in LABELS]
    assert b[probs].to_numpy().view(np.uint32).tolist() == a[probs].to_numpy().view(np.uint32).tolist()
    meta = read_metadata(merged)
    assert meta.pop("merged")["shards"] == 3
    assert meta == read_metadata(ref)


def _start(
    job: dict[str, Path], out: Path, k: int, capsys: pytest.CaptureFixture[str], *extra: str
) -> SessionPaths:
    args = ["predict", "--model", str(job["model"]), "--input", str(job["input"]), "--output", str(out)]
    assert ftc([*args, "--chunk-rows", str(CHUNK), "--shard", f"{k}/3", "--detach", *extra]) == 0
    session = capsys.readouterr().out.strip().splitlines()[-1]
    return resolve(Path(os.environ["FTC_SESSIONS_DIR"]), session)


def _ended(paths: SessionPaths) -> str:
    pid = int(wait_for(lambda: read_state(paths).get("pid"), what="engine pid"))
    wait_for(lambda: not pid_alive(pid), timeout=120, what=f"engine {pid} to end")
    return str(read_state(paths)["status"])


def test_three_shard_processes_one_killed_and_resumed_merge_into_the_single_run(
    job: dict[str, Path],
    sessions_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = _hashes(job["input"].parent)
    outs = [tmp_path / f"out.part{k}of3.h5" for k in (1, 2, 3)]
    monkeypatch.setenv(FAULT_ENV, "predict_append@2")  # shard 2's engine is killed -9 inside its 2nd write
    killed = _start(job, outs[1], 2, capsys)
    monkeypatch.delenv(FAULT_ENV)
    others = [_start(job, outs[k - 1], k, capsys) for k in (1, 3)]
    assert _ended(killed) == "running", "shard 2's engine must have died without a clean end"
    assert read_cursor(outs[1])["rows"] == CHUNK  # one chunk durable, the kill inside the second
    # A resume of it as another shard is refused before any engine starts.
    args = ["predict", "--model", str(job["model"]), "--input", str(job["input"]), "--output", str(outs[1])]
    assert ftc([*args, "--shard", "1/3", "--resume"]) == 2
    assert "is shard 2/3 of its input; resume it with --shard 2/3" in capsys.readouterr().err
    resumed = _start(job, outs[1], 2, capsys, "--resume")  # while shards 1 and 3 may still run
    assert [_ended(p) for p in [*others, resumed]] == ["finished"] * 3
    finished = [e.body for e in read_all(resumed.events) if isinstance(e.body, JobFinished)]
    assert finished[-1].summary.shard == "2/3" and finished[-1].summary.rows == 160
    for k, out in enumerate(outs, 1):
        frame = pd.read_hdf(out)
        start, stop = shard_rows(ROWS, CHUNK, Shard(k, 3))
        assert list(frame["row"]) == list(range(start + 1, stop + 1))  # global input rows
        assert list(frame.index) == list(range(start, stop))
        assert read_metadata(out)["shard"]["k"] == k
    merged = tmp_path / "merged.h5"
    assert ftc(["predict", "merge", str(merged), *map(str, outs)]) == 0
    assert f"merged 3 shards ({ROWS} rows)" in capsys.readouterr().out
    _assert_same_as_single_run(merged, job["ref"])
    # A finished merged output is as complete as a single run's: a resume of it has nothing to do.
    assert read_cursor(merged)["done"] and read_cursor(merged)["rows"] == ROWS
    assert _hashes(job["input"].parent) == user


def test_more_shards_than_chunks_gives_empty_complete_shards(
    tiny_classifier: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inp = write_csv(tmp_path / "in.csv", texts(30, seed=2))
    run_job(tiny_classifier, inp, tmp_path / "ref.h5", chunk_rows=20)
    outs = [tmp_path / f"s{k}.h5" for k in (1, 2, 3)]
    for k, out in enumerate(outs, 1):
        run_job(tiny_classifier, inp, out, chunk_rows=20, shard=f"{k}/3")
    assert read_cursor(outs[0])["done"] and read_cursor(outs[0])["rows"] == 0 and not outs[0].exists()
    assert ftc(["predict", "--merge", str(tmp_path / "m.h5"), *map(str, outs)]) == 0
    pd.testing.assert_frame_equal(
        pd.read_hdf(tmp_path / "m.h5"), pd.read_hdf(tmp_path / "ref.h5"), check_exact=True
    )


@pytest.mark.parametrize("fmt", ["parquet", "hdf5"])
def test_parquet_and_hdf5_shards_read_their_slice_and_merge_into_the_single_run(
    tiny_classifier: Path, tmp_path: Path, fmt: str
) -> None:
    frame = pd.DataFrame({"text": [*texts(98, seed=4), "", "last"]})
    inp = tmp_path / f"in.{'h5' if fmt == 'hdf5' else fmt}"
    if fmt == "parquet":  # row groups of 30 rows: shard 2 (rows 41-100 of chunks of 20) starts inside one
        frame.to_parquet(inp, row_group_size=30)
    else:
        frame.to_hdf(inp, key="texts", format="table")
    run_job(tiny_classifier, inp, tmp_path / "ref.h5", chunk_rows=20)
    outs = [tmp_path / f"s{k}.h5" for k in (1, 2)]
    for k, out in enumerate(outs, 1):
        run_job(tiny_classifier, inp, out, chunk_rows=20, shard=f"{k}/2")
    assert list(pd.read_hdf(outs[1])["row"]) == list(range(41, 101))
    assert ftc(["predict", "merge", str(tmp_path / "m.h5"), *map(str, outs)]) == 0
    merged, ref = pd.read_hdf(tmp_path / "m.h5"), pd.read_hdf(tmp_path / "ref.h5")
    pd.testing.assert_frame_equal(merged, ref, check_exact=True)


@pytest.mark.parametrize("spec", ["0/3", "4/3", "a/b", "2", "1/0"])
def test_a_bad_shard_spec_is_refused_in_one_line(
    job: dict[str, Path], sessions_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str
) -> None:
    args = ["predict", "--model", str(job["model"]), "--input", str(job["input"])]
    assert ftc([*args, "--output", str(tmp_path / "o.h5"), "--shard", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"ftc predict: --shard {spec!r}" if spec in ("a/b", "2") else f"ftc predict: --shard {spec}"
    )
    assert "\n" not in err and not sessions_root.exists()


def test_parse_and_rows_of_shards() -> None:
    assert parse_shard(" 2 / 3 ") == Shard(2, 3)
    with pytest.raises(ConfigError, match="between 1 and 3"):
        parse_shard("4/3")
    # 12 chunks in 3 shards of 4; 5 chunks in 3 shards of 1, 2, 2; rows past the end are cut.
    assert [shard_rows(470, 40, Shard(k, 3)) for k in (1, 2, 3)] == [(0, 160), (160, 320), (320, 470)]
    assert [shard_rows(100, 20, Shard(k, 3)) for k in (1, 2, 3)] == [(0, 20), (20, 60), (60, 100)]


def _merge_refused(out: Path, shards: list[Path], capsys: pytest.CaptureFixture[str]) -> str:
    folder = shards[0].parent
    before = _hashes(folder)
    assert ftc(["predict", "merge", str(out), *map(str, shards)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert _hashes(folder) == before  # nothing changed, nothing left behind
    return err


def test_a_missing_shard_is_named_with_the_command_that_runs_it(
    job: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shards = _copy(job, tmp_path, 1, 3)
    err = _merge_refused(tmp_path / "m.h5", shards, capsys)
    assert "shard 2/3 (rows 161-320 of 470) is missing" in err
    assert err.endswith("--chunk-rows 40 --token-budget 8192 --max-length 64 --shard 2/3")
    assert f"--input {job['input']} --output {tmp_path / 'out.part2of3.h5'}" in err


def test_a_partial_shard_is_named_with_the_command_that_finishes_it(
    job: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shards = _copy(job, tmp_path, 1, 3)
    partial = tmp_path / "out.part2of3.h5"
    run_job(job["model"], job["input"], partial, stop_at=80, chunk_rows=CHUNK, shard="2/3")
    err = _merge_refused(tmp_path / "m.h5", [shards[0], partial, shards[1]], capsys)
    assert f"{partial}: shard 2/3 is partial (80 of 160 rows written)" in err
    assert f"finish it, then merge again: ftc predict --model {job['model']} " in err
    assert f"--output {partial} " in err and err.endswith("--shard 2/3 --resume")


def test_shards_of_another_model_another_split_or_twice_are_refused(
    job: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s1, s3 = _copy(job, tmp_path, 1, 3)
    other = tmp_path / "other.h5"
    run_job(make_classifier(tmp_path / "model2", seed=1), job["input"], other, chunk_rows=CHUNK, shard="2/3")
    err = _merge_refused(tmp_path / "m.h5", [s1, other, s3], capsys)
    assert f"{other}: its model fingerprint" in err and "not the same run's" in err
    half = tmp_path / "half.h5"
    run_job(job["model"], job["input"], half, chunk_rows=CHUNK, shard="2/2")
    assert "is shard 2/2 but" in _merge_refused(tmp_path / "m.h5", [s1, half], capsys)
    twin = tmp_path / "twin.h5"
    shutil.copy2(s3, twin)
    shutil.copy2(cursor_path(s3), cursor_path(twin))
    err = _merge_refused(tmp_path / "m.h5", [s1, s3, twin], capsys)
    assert "are both shard 3/3" in err and "overlap" in err
    assert "is given twice" in _merge_refused(tmp_path / "m.h5", [s1, s3, s3], capsys)


def test_a_merge_killed_midway_leaves_no_output_and_the_next_one_completes(
    job: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shards = _copy(job, tmp_path, 1, 2, 3)
    out = tmp_path / "m.h5"
    env = {**os.environ, FAULT_ENV: "predict_merge@2"}  # killed -9 with one shard's rows copied
    cmd = [sys.executable, "-m", "tui.cli", "predict", "merge", str(out), *map(str, shards)]
    assert subprocess.run(cmd, env=env, capture_output=True, check=False).returncode == -signal.SIGKILL
    assert not out.exists() and not cursor_path(out).exists()
    assert [p.name for p in tmp_path.glob(".m.h5.merge-*.tmp")]  # the partial copy, under a temp name
    assert ftc(["predict", "merge", str(out), *map(str, shards)]) == 0
    assert not list(tmp_path.glob(".m.h5.merge-*.tmp"))  # the killed merge's temp file is gone too
    _assert_same_as_single_run(out, job["ref"])


def test_merge_never_overwrites_a_file(
    job: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shards = _copy(job, tmp_path, 1, 2, 3)
    mine = tmp_path / "mine.h5"
    mine.write_bytes(b"a user's file")
    assert "already exists" in _merge_refused(mine, shards, capsys)
    assert "is the shard file" in _merge_refused(shards[1], shards, capsys)
