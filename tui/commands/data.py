"""``ftc check`` and ``ftc prepare``: their arguments, and entry points that print and return exit codes."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from engine.data.errors import DataError, one_line
from engine.errors import ExitCode, FtcError

_MARK = {"pass": ("PASS", "green"), "warn": ("WARN", "yellow"), "fail": ("FAIL", "red")}


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="CSV, TSV, JSONL, Parquet or HDF5 (pandas table) file")
    parser.add_argument(
        "--text-col", metavar="C", help="text column (default: guessed from names, then content)"
    )
    parser.add_argument(
        "--label-col", metavar="L", help="label column (default: guessed from names, then content)"
    )
    parser.add_argument(
        "--encoding",
        metavar="E",
        help="text encoding: a codec name (default utf-8, strict) or 'auto' to detect it",
    )
    parser.add_argument(
        "--format", choices=("csv", "tsv", "jsonl", "parquet", "hdf5"), help="override the extension"
    )
    parser.add_argument("--key", metavar="K", help="HDF5: the table key (default: the first table)")
    parser.add_argument("--tokenizer", metavar="DIR", help="tokenizer folder: adds the token-length test")
    parser.add_argument(
        "--max-length", type=int, default=128, metavar="N", help="max_length for truncation (128)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    parser.add_argument("--chunk-rows", type=int, default=50_000, help=argparse.SUPPRESS)


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ftc check DATA ...``."""
    _add_source_arguments(parser)
    parser.add_argument(
        "--rejects",
        metavar="PATH",
        help="new file to write rejected rows to (its folder must exist; never overwritten); "
        "default: not saved, only counted",
    )


def add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ftc prepare DATA --out DIR ...``."""
    _add_source_arguments(parser)
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder for shards, manifest.json, rejects.csv"
    )
    parser.add_argument(
        "--split",
        default="0.7,0.15,0.15",
        metavar="T,V,T",
        help="train,validation,test fractions (0.7,0.15,0.15)",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed for the split and the shuffle (42)")
    parser.add_argument(
        "--shard-rows", type=int, default=100_000, metavar="N", help="rows per HDF5 shard (100000)"
    )
    parser.add_argument(
        "--dedupe",
        action="store_true",
        help="drop rows repeating an earlier text (to rejects.csv): no leakage",
    )


def _open(args: argparse.Namespace) -> Any:
    from engine.data.readers import open_source

    return open_source(
        args.data,
        fmt=args.format,
        encoding=args.encoding,
        text_col=args.text_col,
        label_col=args.label_col,
        hdf_key=args.key,
    )


class _Progress:
    """A single self-overwriting status line on a terminal; silent when stderr is not a TTY."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.enabled = stream, stream.isatty()
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int | None, fraction: float | None) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.2:
            return
        self._last = now
        pct = f" {fraction:.0%}" if fraction is not None else ""
        self.stream.write(f"\r{stage}: {done:,} rows{pct}   ")
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def _refused(command: str, exc: BaseException, where: str, suffix: str = "", always: bool = False) -> int:
    """Say in one line why ``ftc COMMAND`` stopped, and return its exit code.

    ``suffix`` ends the line of an interruption (or of any error, with ``always``).
    """
    if isinstance(exc, KeyboardInterrupt):
        print(f"ftc {command}: interrupted{suffix}", file=sys.stderr)
        return ExitCode.INTERRUPTED
    if isinstance(exc, OSError):
        message = f"{exc.filename or where}: {exc.strerror or one_line(exc)}"
    else:
        message = str(exc)
    print(f"ftc {command}: error: {message}{suffix if always else ''}", file=sys.stderr)
    return ExitCode.BAD_INPUT


def check_main(args: argparse.Namespace) -> int:
    """Run the data tests; 0 all pass (warnings allowed), 1 a test failed, 2 bad input."""
    from engine.data.errors import AllRejected
    from engine.data.outputs import check_rejects_path
    from engine.data.scan import report, scan

    progress = _Progress(sys.stderr)
    rejects: Path | None = None
    try:
        # Before any input is opened: the rejects file must not be (or overwrite) anything that exists.
        if args.rejects:
            rejects = check_rejects_path(args.rejects, [args.data, args.tokenizer])
            open(rejects, "x").close()  # claim it (exclusive create): nothing there is overwritten
    except (FtcError, OSError) as exc:
        return _refused("check", exc, args.rejects)
    tmpdir = tempfile.mkdtemp(prefix="ftc-check-")
    try:
        src = _open(args)
        result = scan(
            src,
            rejects_path=rejects,
            tokenizer=args.tokenizer,
            max_length=args.max_length,
            workdir=tmpdir,
            chunk_rows=args.chunk_rows,
            on_chunk=progress,
        )
        doc = report(result)
        doc["rejects"]["path"] = str(rejects) if rejects else None
    except (FtcError, OSError, KeyboardInterrupt) as exc:
        progress.clear()
        full = isinstance(exc, OSError) and _full_where(exc, rejects, Path(tmpdir))
        if rejects is not None and not isinstance(exc, AllRejected):
            rejects.unlink(missing_ok=True)  # ours, and cut short: a partial list would mislead
        if full:
            print(f"ftc check: error: no space left on device {full}", file=sys.stderr)
            return ExitCode.BAD_INPUT
        return _refused("check", exc, args.data)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    progress.clear()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_report(doc)
    return ExitCode.FAILED if doc["status"] == "fail" else ExitCode.OK


def _full_where(exc: OSError, rejects: Path | None, scratch: Path) -> str:
    """Where a full disk stopped ``ftc check`` and what to do, or "" when the error is something else."""
    from engine.data.outputs import disk_full

    if rejects is not None and disk_full(exc, rejects.parent):
        return f"writing --rejects {rejects}; free space there or choose another folder"
    if disk_full(exc, scratch):
        return (
            f"in {scratch.parent} (scratch space for the duplicate tests); free space there "
            "or set TMPDIR to a folder with room"
        )
    return ""


def _parse_split(text: str) -> dict[str, float]:
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        raise DataError(f"--split {text!r}: give three fractions such as 0.7,0.15,0.15") from None
    if len(parts) != 3:
        raise DataError(
            f"--split {text!r}: give three fractions (train,validation,test) such as 0.7,0.15,0.15"
        )
    return dict(zip(("train", "validation", "test"), parts, strict=True))


def prepare_main(args: argparse.Namespace) -> int:
    """Prepare shards and a manifest in --out; 0 prepared (test results printed), 2 bad input."""
    from engine.data.outputs import check_out_folder, sweep
    from engine.data.prepare import PrepareOptions, prepare

    progress = _Progress(sys.stderr)
    try:
        sweep(Path(args.out))  # a killed swap: put the earlier preparation back before anything else
    except OSError:
        pass  # the checks below say what is wrong with --out
    # Whatever stops a preparation leaves an earlier one in --out as it was: say so when there is one.
    earlier = os.path.isfile(os.path.join(args.out, "manifest.json"))
    unchanged = f"; {args.out} is as it was" if earlier else f"; nothing was written to {args.out}"
    try:
        opts = PrepareOptions(
            out=Path(args.out),
            split=_parse_split(args.split),
            seed=args.seed,
            shard_rows=args.shard_rows,
            chunk_rows=args.chunk_rows,
            tokenizer=args.tokenizer,
            max_length=args.max_length,
            dedupe=args.dedupe,
        )
        opts.validate()
        # Before any input is opened: --out must not be, or hold, an input, nor a user's other files.
        check_out_folder(args.out, [args.data, args.tokenizer])
        done = prepare(_open(args), opts, on_chunk=progress)
    except OSError as exc:
        progress.clear()
        # The file named by the OSError was in the discarded build folder: name --out instead.
        why = exc.strerror or one_line(exc)
        named = f"{exc.filename}: " if exc.filename and os.path.exists(exc.filename) else ""
        print(f"ftc prepare: error: {named}{why} while preparing into {args.out}{unchanged}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except (FtcError, KeyboardInterrupt) as exc:
        progress.clear()
        return _refused("prepare", exc, args.out, unchanged, always=earlier)
    progress.clear()
    if args.json:
        print(json.dumps(done, indent=2))
        return ExitCode.OK
    manifest = done["manifest"]
    print_report(done["report"])
    for name, split in manifest["splits"].items():
        print(f"{name}: {split['rows']:,} rows in {len(split['shards'])} shards")
    print(f"prepared: {os.path.join(args.out, 'manifest.json')}")
    return ExitCode.OK


def print_report(doc: dict[str, Any]) -> None:
    """Plain lines (colour only on a terminal, via rich), one test per line with its advice and rows."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    src = doc["source"]
    enc = src["encoding"] or "-"
    if src.get("encoding_note"):
        enc += f" (detected: {src['encoding_note']})"
    console.print(escape(f"data: {src['path']} ({src['format']}, encoding {enc})"))
    console.print(
        escape(f"columns: text={src['text_col']!r} label={src['label_col']!r} of {', '.join(src['columns'])}")
    )
    rows = doc["rows"]
    console.print(f"rows: {rows['read']:,} read, {rows['valid']:,} valid, {rows['rejected']:,} rejected")
    if doc["rejects"]["count"]:
        reasons = ", ".join(f"{k} {v:,}" for k, v in doc["rejects"]["by_reason"].items())
        where = doc["rejects"].get("path") or "not saved; give --rejects PATH to save them"
        console.print(escape(f"rejects: {reasons} -> {where}"))
    console.print(escape("labels: " + ", ".join(f"{k} {v:,}" for k, v in doc["label_counts"].items())))
    for test in doc["tests"]:
        word, colour = _MARK[test["status"]]
        console.print(f"[{colour}]{word}[/]  {escape(test['name']):<20} {escape(test['figure'])}")
        if test["status"] != "pass":
            console.print(f"      {escape(test['advice'])}")
            if test["offending_rows"]:
                shown = ", ".join(str(r) for r in test["offending_rows"][:10])
                more = (
                    f" (+{len(test['offending_rows']) - 10} more)" if len(test["offending_rows"]) > 10 else ""
                )
                console.print(f"      rows: {shown}{more}")
    counts = {s: sum(t["status"] == s for t in doc["tests"]) for s in ("fail", "warn")}
    word, colour = _MARK[doc["status"]]
    console.print(f"result: [{colour}]{word}[/] ({counts['fail']} failed, {counts['warn']} warnings)")
