"""The bad-input corpus for ``ftc check`` and ``ftc prepare``: realistic bad inputs, each refused clearly.

Each case builds its input in a fresh folder, snapshots every file there, runs the real ``ftc``
entry point in-process and asserts: exit 2, exactly one stderr line starting ``ftc`` that names
the file, row or field, no traceback, every file byte-identical afterwards and no file left
behind (no half-written rejects file, no build folder of a preparation).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.robustness.harness import Files, ftc, refused


@dataclass
class Case:
    argv: list[str]
    names: tuple[str, ...]


def rows(n: int = 60) -> list[tuple[str, str]]:
    return [
        (f"tweet number {i} says something {['nice', 'bad'][i % 2]}", ["pos", "neg"][i % 2]) for i in range(n)
    ]


def good_csv(path: Path, n: int = 60) -> Path:
    path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows(n)), encoding="utf-8")
    return path


def prepared(tmp: Path, data: Path) -> Path:
    """An existing, complete preparation of ``data`` in tmp/prep (what a re-prepare must not lose)."""
    out = tmp / "prep"
    done = ftc("prepare", str(data), "--out", str(out), "--json")
    assert done.code == 0, done.err
    return out


# ---------------------------------------------------------------- ftc check: outputs


def rejects_is_the_data(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    return Case(["check", str(data), "--rejects", str(data)], ("data.csv", "--rejects", "input"))


def rejects_is_a_hard_link_to_the_data(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    os.link(data, tmp / "link.csv")
    return Case(["check", str(data), "--rejects", str(tmp / "link.csv")], ("link.csv", "--rejects", "input"))


def rejects_is_a_symlink_to_the_data(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    (tmp / "alias.csv").symlink_to(data)
    return Case(
        ["check", str(data), "--rejects", str(tmp / "alias.csv")], ("alias.csv", "--rejects", "input")
    )


def rejects_is_the_data_through_dotdot(tmp: Path) -> Case:
    good_csv(tmp / "data.csv")
    (tmp / "sub").mkdir()
    return Case(
        ["check", "data.csv", "--rejects", "./sub/../data.csv"], ("sub/../data.csv", "--rejects", "input")
    )


def rejects_file_already_exists(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    (tmp / "old-rejects.csv").write_text("row,reason,preview\n7,empty_text,\n")
    return Case(
        ["check", str(data), "--rejects", str(tmp / "old-rejects.csv")],
        ("old-rejects.csv", "already exists", "remove it or choose another path"),
    )


def rejects_folder_is_missing(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    return Case(
        ["check", str(data), "--rejects", str(tmp / "nope" / "r.csv")],
        ("--rejects", "folder", "does not exist"),
    )


def rejects_is_a_folder(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    (tmp / "out").mkdir()
    return Case(["check", str(data), "--rejects", str(tmp / "out")], ("--rejects", "is a folder"))


# ---------------------------------------------------------------- ftc check: the data itself


def nul_bytes(tmp: Path) -> Case:
    raw = good_csv(tmp / "nul.csv").read_bytes()
    at = raw.index(b"number 3 ")
    (tmp / "nul.csv").write_bytes(raw[:at] + b"\x00\x00" + raw[at:])
    return Case(["check", str(tmp / "nul.csv")], ("nul.csv", f"NUL byte at byte offset {at}"))


def unbalanced_quote(tmp: Path) -> Case:
    path = good_csv(tmp / "quote.csv")
    with open(path, "a") as fh:
        fh.write('"an opening quote that never closes,pos\nmore text,neg\n')
    return Case(["check", str(path)], ("quote.csv", "row 61", "never closes"))


def empty_file(tmp: Path) -> Case:
    (tmp / "empty.csv").write_bytes(b"")
    return Case(["check", str(tmp / "empty.csv")], ("empty.csv", "empty"))


def header_only(tmp: Path) -> Case:
    (tmp / "header.csv").write_text("text,label\n")
    return Case(["check", str(tmp / "header.csv")], ("header.csv", "no data rows"))


def text_col_not_in_file(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    return Case(
        ["check", str(data), "--text-col", "tweet"], ("data.csv", "'tweet'", "text, label", "--text-col")
    )


def unknown_encoding_name(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    return Case(["check", str(data), "--encoding", "utf-9"], ("--encoding utf-9", "unknown encoding"))


def no_text_like_column(tmp: Path) -> Case:
    lines = "".join(f"{i},{i * 0.5},{'ab'[i % 2]}\n" for i in range(50))
    (tmp / "numbers.csv").write_text("id,score,class\n" + lines)
    return Case(
        ["check", str(tmp / "numbers.csv")],
        ("numbers.csv", "no text column", "id, score, class", "--text-col"),
    )


def every_label_missing(tmp: Path) -> Case:
    lines = "".join(f"text {i},{['', 'NaN', 'null'][i % 3]}\n" for i in range(30))
    (tmp / "nolabels.csv").write_text("text,label\n" + lines)
    return Case(
        ["check", str(tmp / "nolabels.csv")],
        ("nolabels.csv", "all 30 rows were rejected", "missing_label 30"),
    )


def label_is_a_fractional_score(tmp: Path) -> Case:
    lines = "".join(f"tweet {i} is here,0.{i + 10}\n" for i in range(40))
    (tmp / "scores.csv").write_text("text,label\n" + lines)
    return Case(
        ["check", str(tmp / "scores.csv")],
        ("scores.csv", "label column 'label'", "fractional", "--label-col"),
    )


def utf16_with_bom(tmp: Path) -> Case:
    (tmp / "wide.csv").write_bytes(good_csv(tmp / "x.csv").read_text().encode("utf-16"))
    (tmp / "x.csv").unlink()
    return Case(["check", str(tmp / "wide.csv")], ("wide.csv", "UTF-16", "iconv"))


def utf16_without_bom(tmp: Path) -> Case:
    (tmp / "wide.csv").write_bytes(good_csv(tmp / "x.csv").read_text().encode("utf-16-le"))
    (tmp / "x.csv").unlink()
    return Case(
        ["check", str(tmp / "wide.csv")], ("wide.csv", "UTF-16", "no byte-order mark", "iconv -f utf-16le")
    )


def binary_file_named_csv(tmp: Path) -> Case:
    (tmp / "photo.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    return Case(["check", str(tmp / "photo.csv")], ("photo.csv", "binary data"))


def jsonl_without_objects(tmp: Path) -> Case:
    (tmp / "arrays.jsonl").write_text("[1, 2]\n[3, 4]\n")
    return Case(["check", str(tmp / "arrays.jsonl")], ("arrays.jsonl", "no JSON object"))


def a_folder_given_as_the_data(tmp: Path) -> Case:
    (tmp / "data.csv").mkdir()
    return Case(["check", str(tmp / "data.csv")], ("data.csv", "is a directory"))


def a_fifo_given_as_the_data(tmp: Path) -> Case:
    # chmod 000 does not stop root; a pipe is the unreadable file a root user can still be handed.
    os.mkfifo(tmp / "pipe.csv")
    return Case(["check", str(tmp / "pipe.csv")], ("pipe.csv", "not a regular file"))


# ---------------------------------------------------------------- Parquet and HDF5 inputs


def parquet_text_is_int(tmp: Path) -> Case:
    pd.DataFrame({"text": list(range(50)), "label": ["a", "b"] * 25}).to_parquet(tmp / "ints.parquet")
    return Case(
        ["check", str(tmp / "ints.parquet")], ("ints.parquet", "text column 'text'", "int", "--text-col")
    )


def parquet_label_is_float(tmp: Path) -> Case:
    frame = pd.DataFrame(
        {"text": [f"review {i} text" for i in range(50)], "label": [i / 7 for i in range(50)]}
    )
    frame.to_parquet(tmp / "floats.parquet")
    return Case(
        ["check", str(tmp / "floats.parquet")], ("floats.parquet", "label column 'label'", "fractional")
    )


def parquet_label_is_struct(tmp: Path) -> Case:
    frame = pd.DataFrame(
        {"text": [f"review {i} text" for i in range(50)], "label": [{"name": "a", "p": 0.5}] * 50}
    )
    frame.to_parquet(tmp / "struct.parquet")
    return Case(["check", str(tmp / "struct.parquet")], ("struct.parquet", "label column 'label'", "struct"))


def parquet_truncated(tmp: Path) -> Case:
    pd.DataFrame(dict(zip(("text", "label"), zip(*rows(500), strict=True), strict=True))).to_parquet(
        tmp / "cut.parquet"
    )
    raw = (tmp / "cut.parquet").read_bytes()
    (tmp / "cut.parquet").write_bytes(raw[: len(raw) // 2])
    return Case(["check", str(tmp / "cut.parquet")], ("cut.parquet", "truncated or damaged"))


def hdf5_truncated(tmp: Path) -> Case:
    frame = pd.DataFrame(dict(zip(("text", "label"), zip(*rows(500), strict=True), strict=True)))
    frame.to_hdf(tmp / "cut.h5", key="rows", format="table")
    raw = (tmp / "cut.h5").read_bytes()
    (tmp / "cut.h5").write_bytes(raw[: len(raw) // 2])
    return Case(["check", str(tmp / "cut.h5")], ("cut.h5", "truncated or damaged"))


def hdf5_fixed_format(tmp: Path) -> Case:
    frame = pd.DataFrame(dict(zip(("text", "label"), zip(*rows(50), strict=True), strict=True)))
    frame.to_hdf(tmp / "fixed.h5", key="rows", format="fixed")
    return Case(["check", str(tmp / "fixed.h5")], ("fixed.h5", "'fixed' format", "format='table'"))


# ---------------------------------------------------------------- ftc prepare


def out_is_the_data(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    return Case(["prepare", str(data), "--out", str(data)], ("--out", "data.csv", "input"))


def out_is_the_data_through_dotdot(tmp: Path) -> Case:
    good_csv(tmp / "data.csv")
    (tmp / "a").mkdir()
    return Case(["prepare", "data.csv", "--out", "a/../data.csv"], ("--out a/../data.csv", "input"))


def out_holds_the_data(tmp: Path) -> Case:
    (tmp / "work").mkdir()
    data = good_csv(tmp / "work" / "data.csv")
    return Case(["prepare", str(data), "--out", str(tmp / "work")], ("--out", "holds the input", "data.csv"))


def out_is_a_symlink_to_the_folder_holding_the_data(tmp: Path) -> Case:
    (tmp / "work").mkdir()
    data = good_csv(tmp / "work" / "data.csv")
    (tmp / "link").symlink_to(tmp / "work")
    return Case(["prepare", str(data), "--out", str(tmp / "link")], ("--out", "link", "holds the input"))


def out_holds_a_users_files(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    (tmp / "results").mkdir()
    (tmp / "results" / "thesis.tex").write_text("\\chapter{Results}\n")
    return Case(
        ["prepare", str(data), "--out", str(tmp / "results")],
        ("--out", "thesis.tex", "not an ftc preparation"),
    )


def out_is_a_file(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    (tmp / "notes.txt").write_text("keep me\n")
    return Case(
        ["prepare", str(data), "--out", str(tmp / "notes.txt")], ("--out", "notes.txt", "not a folder")
    )


def out_parent_is_missing(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    return Case(
        ["prepare", str(data), "--out", str(tmp / "no" / "such" / "prep")],
        ("--out", "folder", "does not exist"),
    )


def reprepare_with_a_bad_byte_late(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv", n=30_005)
    prepared(tmp, data)
    raw = data.read_bytes()
    at = raw.index(b"tweet number 30000 ") + 6
    data.write_bytes(raw[:at] + b"\xff" + raw[at:])
    return Case(
        ["prepare", str(data), "--out", str(tmp / "prep"), "--chunk-rows", "1000"],
        ("data.csv", "row 30001", "0xff", "prep is as it was"),
    )


def reprepare_with_a_truncated_file(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    prepared(tmp, data)
    with open(data, "a") as fh:
        fh.write('"cut off in the mid')
    return Case(["prepare", str(data), "--out", str(tmp / "prep")], ("data.csv", "row 61", "never closes"))


def split_with_two_fractions(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    return Case(["prepare", str(data), "--out", str(tmp / "p"), "--split", "0.7,0.3"], ("--split", "0.7,0.3"))


def split_not_numbers(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    return Case(
        ["prepare", str(data), "--out", str(tmp / "p"), "--split", "most,some,rest"], ("--split", "most")
    )


def split_not_summing_to_one(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    return Case(
        ["prepare", str(data), "--out", str(tmp / "p"), "--split", "0.5,0.3,0.3"],
        ("--split 0.5,0.3,0.3", "sum to 1"),
    )


def split_leaving_validation_empty(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv", n=40)
    return Case(
        ["prepare", str(data), "--out", str(tmp / "p"), "--split", "0.98,0.01,0.01"],
        ("data.csv", "--split 0.98,0.01,0.01", "validation split empty"),
    )


def split_without_train(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    return Case(["prepare", str(data), "--out", str(tmp / "p"), "--split", "0,0.5,0.5"], ("--split", "train"))


def prepare_one_label(tmp: Path) -> Case:
    (tmp / "one.csv").write_text("text,label\n" + "".join(f"text number {i},pos\n" for i in range(30)))
    return Case(
        ["prepare", str(tmp / "one.csv"), "--out", str(tmp / "p")], ("one.csv", "'pos'", "two or more")
    )


def prepare_every_label_missing(tmp: Path) -> Case:
    (tmp / "nolabels.csv").write_text("text,label\n" + "".join(f"text {i},\n" for i in range(30)))
    return Case(
        ["prepare", str(tmp / "nolabels.csv"), "--out", str(tmp / "p")],
        ("nolabels.csv", "all 30 rows were rejected", "--rejects PATH"),
    )


def prepare_truncated_hdf5(tmp: Path) -> Case:
    case = hdf5_truncated(tmp)
    return Case(["prepare", case.argv[1], "--out", str(tmp / "p")], case.names)


def prepare_label_col_missing(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    return Case(
        ["prepare", str(data), "--out", str(tmp / "p"), "--label-col", "stars"],
        ("data.csv", "'stars'", "--label-col"),
    )


def prepare_zero_shard_rows(tmp: Path) -> Case:
    data = good_csv(tmp / "data.csv")
    return Case(["prepare", str(data), "--out", str(tmp / "p"), "--shard-rows", "0"], ("--shard-rows 0",))


def prepare_parquet_text_is_int(tmp: Path) -> Case:
    case = parquet_text_is_int(tmp)
    return Case(["prepare", case.argv[1], "--out", str(tmp / "p")], case.names)


CASES: list[Callable[[Path], Case]] = [
    rejects_is_the_data,
    rejects_is_a_hard_link_to_the_data,
    rejects_is_a_symlink_to_the_data,
    rejects_is_the_data_through_dotdot,
    rejects_file_already_exists,
    rejects_folder_is_missing,
    rejects_is_a_folder,
    nul_bytes,
    unbalanced_quote,
    empty_file,
    header_only,
    text_col_not_in_file,
    unknown_encoding_name,
    no_text_like_column,
    every_label_missing,
    label_is_a_fractional_score,
    utf16_with_bom,
    utf16_without_bom,
    binary_file_named_csv,
    jsonl_without_objects,
    a_folder_given_as_the_data,
    a_fifo_given_as_the_data,
    parquet_text_is_int,
    parquet_label_is_float,
    parquet_label_is_struct,
    parquet_truncated,
    hdf5_truncated,
    hdf5_fixed_format,
    out_is_the_data,
    out_is_the_data_through_dotdot,
    out_holds_the_data,
    out_is_a_symlink_to_the_folder_holding_the_data,
    out_holds_a_users_files,
    out_is_a_file,
    out_parent_is_missing,
    reprepare_with_a_bad_byte_late,
    reprepare_with_a_truncated_file,
    split_with_two_fractions,
    split_not_numbers,
    split_not_summing_to_one,
    split_leaving_validation_empty,
    split_without_train,
    prepare_one_label,
    prepare_every_label_missing,
    prepare_truncated_hdf5,
    prepare_label_col_missing,
    prepare_zero_shard_rows,
    prepare_parquet_text_is_int,
]


@pytest.mark.parametrize("build", CASES, ids=[c.__name__ for c in CASES])
def test_bad_data_input_is_refused_clearly(build: Callable[[Path], Case], tmp_path: Path) -> None:
    case = build(tmp_path)
    before = Files(tmp_path)
    out = ftc(*case.argv, cwd=tmp_path)
    refused(out, *case.names, case=f"data::{build.__name__}")
    before.assert_unchanged(no_new_files=True)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert not leftovers, f"build or swap folders left behind: {leftovers}"


def test_a_failed_reprepare_leaves_the_previous_preparation_usable(tmp_path: Path) -> None:
    """Byte-identical is checked above; here the old preparation still reads as a whole."""
    from engine.data.shards import iter_split, load_manifest

    case = reprepare_with_a_truncated_file(tmp_path)
    assert ftc(*case.argv, cwd=tmp_path).code == 2
    manifest = load_manifest(tmp_path / "prep")
    assert sum(len(f) for f in iter_split(tmp_path / "prep", "train")) == manifest["splits"]["train"]["rows"]
    assert json.loads((tmp_path / "prep" / "report.json").read_text())["rows"]["read"] == 60
