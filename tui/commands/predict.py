"""``ftc predict``: its arguments, then start a prediction session's engine and follow it.

Imported when the ``ftc`` parser is built, so nothing heavy at module level.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from engine.errors import ExitCode, FtcError
from engine.predict.models import PRECISIONS

USAGE = """ftc predict --model M --input FILE --output OUT.h5 [--shard K/N] [options]
       ftc predict merge OUT.h5 SHARD.h5... (or --merge OUT.h5 SHARD.h5...)"""
REQUIRED = ("model", "input", "output")


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ftc predict --model M --input FILE --output OUT.h5 ...`` and of its merge.

    --model, --input and --output are required unless merging (checked in predict_main: argparse
    would demand them of ``ftc predict merge`` too).
    """
    parser.usage = USAGE
    parser.add_argument(
        "words",
        nargs="*",
        metavar="merge OUT.h5 SHARD.h5",
        help="merge shard outputs into OUT.h5: checks every input row is covered once by complete shards "
        "of one model and input, then writes the output a single run would have written",
    )
    parser.add_argument("--merge", nargs="+", metavar="FILE", help="the same as 'merge OUT.h5 SHARD.h5...'")
    parser.add_argument(
        "--model",
        metavar="M",
        help="a session id or folder (its model/), a checkpoint "
        "folder, or any saved model folder (save_pretrained output)",
    )
    parser.add_argument("--input", metavar="FILE", help="CSV, TSV, JSONL, Parquet or HDF5 file")
    parser.add_argument("--output", metavar="OUT.h5", help="HDF5 table to write (pandas.read_hdf)")
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="predict only shard K of N (1-based) of the input's rows, whole chunks of --chunk-rows each; "
        "run every K (on any hosts), then 'ftc predict merge'",
    )
    parser.add_argument("--text-col", metavar="C", help="the text column (default: 'text' or similar)")
    parser.add_argument("--encoding", metavar="E", help="text encoding, or 'auto' to detect (default: utf-8)")
    parser.add_argument(
        "--format", choices=("csv", "tsv", "jsonl", "parquet", "hdf5"), help="override the extension"
    )
    parser.add_argument("--key", metavar="K", help="HDF5 input: the table key (default: the first table)")
    parser.add_argument(
        "--resume", action="store_true", help="continue OUT.h5 from its cursor after a crash or stop"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5")
    parser.add_argument(
        "--token-budget",
        type=int,
        metavar="N",
        help="padded tokens per batch (rows x padded length; default 8192)",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        metavar="N",
        help="truncate texts to N tokens (default: for a model ftc trained, its training's max_length; "
        "else the model's, at most 512)",
    )
    parser.add_argument(
        "--chunk-rows", type=int, metavar="N", help="rows per appended chunk and cursor update (8192)"
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="bfloat16 computes in bf16 (Keras mixed_bfloat16): faster on Ampere+ GPUs, on CPUs only "
        "where bf16 matmuls are (bench.roofline); probabilities within ~0.01-0.05 (default: float32)",
    )
    parser.add_argument("--name", help="a short name for the session id (default: predict)")
    parser.add_argument(
        "--detach", action="store_true", help="start the engine and return at once (prints the session id)"
    )


def build_config(args: argparse.Namespace, sessions_root: Path) -> dict[str, Any]:
    """The prediction session's run configuration from the parsed arguments, checked (see predict_config)."""
    from engine.predict.request import predict_config

    return predict_config(
        model=args.model,
        input_path=args.input,
        output_path=args.output,
        sessions_root=sessions_root,
        text_col=args.text_col,
        encoding=args.encoding,
        fmt=args.format,
        hdf_key=args.key,
        resume=args.resume,
        overwrite=args.overwrite,
        token_budget=args.token_budget,
        max_length=args.max_length,
        chunk_rows=args.chunk_rows,
        precision=args.precision,
        shard=args.shard,
    )


def predict_main(args: argparse.Namespace) -> int:
    from engine.session import sessions_dir

    words = list(args.words or [])
    if args.merge or words[:1] == ["merge"]:
        return merge_main((args.merge or []) + words[1 if words[:1] == ["merge"] else 0 :])
    if words:
        print(
            f"ftc predict: unexpected {words[0]!r}; did you mean 'ftc predict merge OUT.h5 SHARD.h5...'?",
            file=sys.stderr,
        )
        return ExitCode.BAD_INPUT
    missing = [f"--{name}" for name in REQUIRED if not getattr(args, name)]
    if missing:
        print(f"ftc predict: the following arguments are required: {', '.join(missing)}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    root = sessions_dir(getattr(args, "sessions_dir", None))
    try:
        config = build_config(args, root)
    except (FtcError, ValueError) as exc:  # OutputError and ModelRefError are ValueErrors too
        print(f"ftc predict: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    from engine.launcher import create_session, start_engine
    from engine.predict.request import os_error_line

    try:
        paths = create_session(root, config, name=args.name or "predict")
        start_engine(paths)
    except OSError as exc:  # the sessions folder: unwritable, read-only, full
        print(f"ftc predict: {os_error_line(exc)}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if args.detach:
        print(paths.id)
        return ExitCode.OK
    if sys.stdout.isatty() and sys.stdin.isatty():
        from tui.screens.predict import run_predict_app

        run_predict_app(root, paths.id)
        return outcome(paths)
    print(paths.id, flush=True)
    from tui.commands.follow import follow_plain  # the same lines as ftc attach: progress, ETA, last rows

    return follow_plain(paths)


def merge_main(files: list[str]) -> int:
    """``ftc predict merge OUT.h5 SHARD.h5...``: one line per shard copied, then what was written."""
    from engine.predict.merge import merge_shards

    if len(files) < 2:
        print(
            "ftc predict merge: give the output, then every shard's output: OUT.h5 SHARD.h5...",
            file=sys.stderr,
        )
        return ExitCode.BAD_INPUT
    started = time.monotonic()
    try:
        summary = merge_shards(files[0], files[1:], progress=lambda line: print(line, flush=True))
    except FtcError as exc:
        print(f"ftc predict merge: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    print(
        f"merged {summary['shards_merged']} shards ({summary['rows']:,} rows) into {summary['output']} "
        f"in {time.monotonic() - started:.1f} s"
    )
    return ExitCode.OK


def outcome(paths: Any) -> int:
    """The exit code once the screen closes: the job's, or 0 if it still runs (detached)."""
    from engine.session import LIVE_STATUSES, live_status, read_state

    state = read_state(paths)
    status = live_status(state)
    if status in LIVE_STATUSES:
        print(f"detached; the engine keeps running. 'ftc attach {paths.id}' to come back")
        return ExitCode.OK
    if status in ("finished", "stopped"):
        return ExitCode.OK
    from engine.journal import tail
    from engine.protocol import JobFailed

    failed = [e.body for e in tail(paths.events) if isinstance(e.body, JobFailed)]
    # The engine makes state.json final (with the reason) before it journals job_failed: a reader
    # that comes in between finds the reason there.
    reason = failed[-1].error_text if failed else str(state.get("message") or "")
    print(f"prediction {status}{': ' + reason if reason else ''} (see {paths.log})", file=sys.stderr)
    return ExitCode.FAILED
