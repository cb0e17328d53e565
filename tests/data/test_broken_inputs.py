"""Deliberately broken inputs: one clear sentence and exit 2, or a rejects entry; never a traceback."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.data.helpers import check_args, prepare_args, write
from tui.commands.data import check_main, prepare_main

REPO = Path(__file__).resolve().parents[2]


def good_rows(n: int = 300) -> list[str]:
    return [
        f"tweet number {i} says something {['nice', 'bad', 'neutral'][i % 3]},{['pos', 'neg', 'neu'][i % 3]}"
        for i in range(n)
    ]


def csv_text(rows: list[str], header: str = "text,label") -> str:
    return header + "\n" + "\n".join(rows) + "\n"


def check(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = check_main(check_args(path, *extra))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_clear_error(err: str, *needles: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(tmp_path / "nope.csv", capsys)
    assert code == 2
    assert_one_clear_error(err, "nope.csv", "no such file")


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(write(tmp_path / "empty.csv", b""), capsys)
    assert code == 2
    assert_one_clear_error(err, "empty.csv", "empty")


def test_header_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(write(tmp_path / "header.csv", "text,label\n"), capsys)
    assert code == 2
    assert_one_clear_error(err, "no data rows")


def test_binary_garbage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = bytes(range(256)) * 64
    code, _, err = check(write(tmp_path / "garbage.csv", garbage), capsys)
    assert code == 2
    assert_one_clear_error(err, "garbage.csv", "binary data", "byte offset 0")


def test_parquet_named_file_that_is_not_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(write(tmp_path / "fake.parquet", csv_text(good_rows())), capsys)
    assert code == 2
    assert_one_clear_error(err, "not a Parquet file")


def test_missing_column_names_the_columns_that_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "cols.csv", csv_text(good_rows()))
    code, _, err = check(path, capsys, "--label-col", "sentiment")
    assert code == 2
    assert_one_clear_error(err, "no label column 'sentiment'", "the columns are text, label", "--label-col")


def test_bad_bytes_name_row_and_offset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = csv_text(good_rows()).encode()
    at = raw.index(b"tweet number 57 ") + 6
    path = write(tmp_path / "bad.csv", raw[:at] + b"\xff" + raw[at:])
    code, _, err = check(path, capsys)
    assert code == 2
    assert_one_clear_error(err, "bad.csv", "row 58,", f"byte offset {at}", "0xff", "--encoding")


def test_truncated_inside_a_quote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = csv_text(good_rows(100)) + '"this quoted text was cut off in the mid'
    code, _, err = check(write(tmp_path / "cut.csv", text), capsys)
    assert code == 2
    assert_one_clear_error(err, "row 101", "never closes", "truncated")


def test_truncated_mid_row_goes_to_rejects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = csv_text(good_rows(100), header="id,text,label").replace("tweet", "1,tweet") + "2,a row cut sh"
    rejects = tmp_path / "rejects.csv"
    code, out, _ = check(write(tmp_path / "cut2.csv", text), capsys, "--rejects", str(rejects))
    rows = list(csv.DictReader(rejects.open()))
    assert [r["row"] for r in rows] == ["101"]
    assert "wrong field count: expected 3, got 2" in rows[0]["reason"] and "truncated" in rows[0]["reason"]
    assert "malformed 1" in out and code == 0


def test_malformed_rows_go_to_rejects_with_row_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = good_rows()
    rows[9] = "too,many,fields,here"
    rows[19] = '"bad "quote" here,pos'
    rejects = tmp_path / "r.csv"
    code, out, _ = check(write(tmp_path / "mal.csv", csv_text(rows)), capsys, "--rejects", str(rejects))
    found = {int(r["row"]): r["reason"] for r in csv.DictReader(rejects.open())}
    assert set(found) == {10, 20}
    assert found[10].startswith("malformed: wrong field count: expected 2, got 4")
    assert found[20].startswith("malformed: unparsable row")
    assert "rows: 300 read, 298 valid, 2 rejected" in out
    assert "WARN  rejected_rows" in out and code == 0  # under 1% rejected: a warning, not a failure


def test_nan_and_empty_labels_and_texts_are_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = good_rows()
    rows[4] = "a text without a label,"
    rows[5] = "another one,NaN"
    rows[6] = "and one more,  null "
    rows[7] = "   ,pos"
    rejects = tmp_path / "r.csv"
    code, out, _ = check(write(tmp_path / "nan.csv", csv_text(rows)), capsys, "--rejects", str(rejects))
    found = {int(r["row"]): r["reason"] for r in csv.DictReader(rejects.open())}
    assert found == {5: "missing_label", 6: "missing_label", 7: "missing_label", 8: "empty_text"}
    assert "missing_label 3" in out and "empty_text 1" in out
    assert code == 1
    # A second run never overwrites the first run's rejects file: it is refused, the file kept.
    before = rejects.read_bytes()
    code, _, err = check(tmp_path / "nan.csv", capsys, "--json", "--rejects", str(rejects))
    assert code == 2 and rejects.read_bytes() == before
    assert_one_clear_error(err, str(rejects), "already exists", "remove it or choose another path")
    code, out, _ = check(tmp_path / "nan.csv", capsys, "--json")
    assert json.loads(out)["rejects"]["path"] is None
    rejected = {t["name"]: t for t in json.loads(out)["tests"]}["rejected_rows"]
    assert rejected["details"]["by_reason"] == {"empty_text": 1, "missing_label": 3}
    assert rejected["offending_rows"] == [5, 6, 7, 8] and rejected["status"] == "fail"


def test_rejects_are_counted_not_written_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rows = good_rows()
    rows[3] = "no label here,"
    write(tmp_path / "data.csv", csv_text(rows))
    code, out, _ = check(tmp_path / "data.csv", capsys)
    assert code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]
    assert "rejects: missing_label 1 -> not saved; give --rejects PATH to save them" in out
    code, out, _ = check(tmp_path / "data.csv", capsys, "--rejects", str(tmp_path / "kept.csv"))
    assert code == 0 and f"-> {tmp_path / 'kept.csv'}" in out
    assert (tmp_path / "kept.csv").read_text().splitlines()[1].startswith("4,missing_label")


def test_rejects_folder_is_never_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = good_rows()
    rows[3] = "no label here,"
    data = write(tmp_path / "data.csv", csv_text(rows))
    code, _, err = check(data, capsys, "--rejects", str(tmp_path / "missing" / "r.csv"))
    assert code == 2 and not (tmp_path / "missing").exists()
    assert_one_clear_error(err, f"folder {tmp_path / 'missing'} does not exist")


def test_all_rows_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [f"text {i}," for i in range(50)]
    code, _, err = check(write(tmp_path / "nolabels.csv", csv_text(rows)), capsys)
    assert code == 2
    assert_one_clear_error(err, "all 50 rows were rejected", "missing_label 50")


def test_all_one_label(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [f"tweet {i} with words,pos" for i in range(200)]
    path = write(tmp_path / "one.csv", csv_text(rows))
    code, out, _ = check(path, capsys)
    assert code == 1
    assert "FAIL  label_balance" in out and "at least two labels" in out
    code = prepare_main(prepare_args(path, tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == 2
    assert_one_clear_error(err, "every valid row has the label 'pos'")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_unknown_encoding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(write(tmp_path / "ok.csv", csv_text(good_rows())), capsys, "--encoding", "klingon")
    assert code == 2
    assert_one_clear_error(err, "--encoding klingon: unknown encoding")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real ``ftc`` entry point (``python -m tui``) in its own process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "tui", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_exit_codes_from_a_real_process(tmp_path: Path) -> None:
    clean = write(tmp_path / "clean.csv", csv_text([r.replace("tweet", "post") for r in good_rows()]))
    import random

    lines = clean.read_text().splitlines()
    body = lines[1:]
    random.Random(0).shuffle(body)
    clean.write_text("\n".join([lines[0], *body]) + "\n")
    ok = run_cli("check", str(clean))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (
        ok.stdout.splitlines()[-1].startswith("result: PASS") and "\x1b[" not in ok.stdout
    )  # no TTY, no colour
    sorted_file = write(
        tmp_path / "sorted.csv", csv_text(sorted(good_rows(), key=lambda r: r.rsplit(",", 1)[1]))
    )
    assert run_cli("check", str(sorted_file)).returncode == 1
    bad = run_cli("check", str(tmp_path / "missing.csv"))
    assert (
        bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.startswith("ftc check: error: ")
    )


def ftc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``ftc ARGS`` through the real command-line entry point, in this process."""
    from tui.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tweets_frame(n: int = 3000) -> pd.DataFrame:
    rows = good_rows(n)
    return pd.DataFrame(
        {"text": [r.rsplit(",", 1)[0] for r in rows], "label": [r.rsplit(",", 1)[1] for r in rows]}
    )


def test_jsonl_malformed_line_is_a_reject_with_its_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [json.dumps({"text": r.rsplit(",", 1)[0], "label": r.rsplit(",", 1)[1]}) for r in good_rows()]
    lines[41] = '{"text": "a line cut in the mid'
    rejects = tmp_path / "r.csv"
    path = write(tmp_path / "broken.jsonl", "\n".join(lines) + "\n")
    code, out, err = ftc(capsys, "check", str(path), "--rejects", str(rejects))
    assert "Traceback" not in err and code == 0, err
    found = {int(r["row"]): r["reason"] for r in csv.DictReader(rejects.open())}
    assert list(found) == [42] and found[42].startswith("malformed: malformed JSON")
    assert "rows: 300 read, 299 valid, 1 rejected" in out


def test_jsonl_of_no_objects_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "notjson.jsonl", "this is not json\nnor is this\n")
    code, _, err = ftc(capsys, "check", str(path))
    assert code == 2
    assert_one_clear_error(err, "notjson.jsonl", "no JSON object")


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_truncated_parquet_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cut: float
) -> None:
    whole = tmp_path / "whole.parquet"
    tweets_frame().to_parquet(whole, row_group_size=500)
    raw = whole.read_bytes()
    path = write(tmp_path / "cut.parquet", raw[: int(len(raw) * cut)])
    code, _, err = ftc(capsys, "check", str(path))
    assert code == 2
    assert_one_clear_error(err, "cut.parquet", "truncated or damaged")


def test_corrupt_parquet_pages_name_the_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = tmp_path / "whole.parquet"
    tweets_frame().to_parquet(whole, row_group_size=500)
    raw = whole.read_bytes()
    mid = len(raw) // 3  # inside the data pages; the footer still reads
    path = write(tmp_path / "bad.parquet", raw[:mid] + bytes(200) + raw[mid + 200 :])
    code, _, err = ftc(capsys, "check", str(path), "--chunk-rows", "1000")
    assert code == 2
    assert_one_clear_error(err, "bad.parquet", "rows ", "cannot be read", "re-export")


def test_truncated_hdf5_is_one_line_without_the_hdf5_back_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = tmp_path / "whole.h5"
    tweets_frame().to_hdf(whole, key="tweets", format="table")
    raw = whole.read_bytes()
    path = write(tmp_path / "cut.h5", raw[: len(raw) // 2])
    code, _, err = ftc(capsys, "check", str(path))
    assert code == 2
    assert_one_clear_error(err, "cut.h5", "truncated", "copy or export it again")
    assert "back trace" not in err and 'File "H5' not in err


def test_damaged_hdf5_strings_are_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "damaged.h5"
    tweets_frame().to_hdf(path, key="tweets", format="table")  # uncompressed: the strings are in the bytes
    raw = path.read_bytes()
    at = raw.index(b"tweet number 2500 ")
    path.write_bytes(raw[:at] + b"\xff\xfe" + raw[at + 2 :])
    code, _, err = ftc(capsys, "check", str(path), "--chunk-rows", "1000")
    assert code == 2
    assert_one_clear_error(err, "damaged.h5", "rows 2001-3000", "UnicodeDecodeError", "re-export")
    # The preview pages through the same reader: it raises the same clear error, not UnicodeDecodeError.
    from engine.data.errors import DataError
    from engine.data.readers import open_source, read_page

    with pytest.raises(DataError, match="rows 2491-2510"):
        read_page(open_source(path), 2491, 20)
