"""The ``ftc`` command line. Imports stay lazy so ``ftc --help`` starts fast and never loads TensorFlow."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from engine.errors import DataError, ExitCode, FtcError, brief, os_error_text
from tui.commands import data, export, predict


def _sessions_root(args: argparse.Namespace) -> Path:
    from engine.session import sessions_dir

    return sessions_dir(args.sessions_dir)


def _worker_count(value: str) -> int:
    from tui.commands.train import worker_count

    return worker_count(value)


def _resolve(args: argparse.Namespace) -> Any:
    from engine.session import resolve

    return resolve(_sessions_root(args), args.session)


# ------------------------------------------------------------------ commands


def cmd_tui(args: argparse.Namespace) -> int:
    from tui.app import FtcApp
    from tui.hangup import run_app

    run_app(FtcApp(sessions_root=_sessions_root(args)))
    return ExitCode.OK


def cmd_ls(args: argparse.Namespace) -> int:
    from engine.session import list_sessions
    from tui.format import ago

    sessions = list_sessions(_sessions_root(args))
    if args.json:
        print(json.dumps([s.as_json() for s in sessions], indent=2))
        return ExitCode.OK
    if not sessions:
        print(f"no sessions in {_sessions_root(args)}")
        return ExitCode.OK
    print(f"{'SESSION':40} {'STATUS':9} {'JOB':9} {'STEP':>13} {'BEST':>14}  HEARTBEAT")
    for s in sessions:
        step = f"{s.step}" + (f"/{s.total_steps}" if s.total_steps else "")
        best = f"{s.best_metric_name}={s.best_metric:.4f}" if s.best_metric is not None else "-"
        print(f"{s.id:40} {s.status:9} {s.job:9} {step:>13} {best:>14}  {ago(s.heartbeat)}")
    return ExitCode.OK


def cmd_control(args: argparse.Namespace) -> int:
    from engine import client, protocol

    body = {
        "pause": protocol.Pause,
        "unpause": protocol.Unpause,
        "checkpoint": protocol.CheckpointNow,
        "stop": protocol.Stop,
    }[args.command]()
    paths = _resolve(args)
    result = client.request(paths, body)
    note = "" if result.changed else " (already so; nothing changed)"
    print(f"{paths.id}: {args.command} requested at step {result.step}{note}")
    return ExitCode.OK


def _watch(args: argparse.Namespace, paths: Any, announce: bool = True) -> int:
    """The console on the session's monitor on a terminal, else its events as plain lines until it ends.

    Without a terminal the session id comes first (``announce``) for scripts that started it.
    """
    if getattr(args, "detach", False):
        print(paths.id)
        return ExitCode.OK
    if sys.stdout.isatty() and sys.stdin.isatty():
        from tui.app import FtcApp
        from tui.hangup import run_app

        run_app(FtcApp(sessions_root=_sessions_root(args), attach=paths.id))
        return ExitCode.OK
    if announce:
        print(paths.id, flush=True)
    from tui.commands.follow import follow_plain

    return follow_plain(paths)


def cmd_train(args: argparse.Namespace) -> int:
    from engine.config import load_toml
    from tui.commands.train import check_hosts_config, group_of, run_worker, start_run

    config = load_toml(Path(args.config))
    group = group_of(args.workers, args.cluster)
    if group is not None and not group.local:
        check_hosts_config(config)
    if group is not None and not group.is_chief:  # another host's worker: in the foreground
        return run_worker(_sessions_root(args), config, group)
    paths = start_run(
        _sessions_root(args),
        config,
        name=args.name,
        allow_failing_checks=args.allow_failing_checks,
        workers=group.size if group is not None and group.local else 1,
        hosts=group.hosts if group is not None and not group.local else None,
    )
    return _watch(args, paths)


def cmd_resume(args: argparse.Namespace) -> int:
    from engine.launcher import start_engine

    paths = _resolve(args)
    start_engine(paths, resume=True, checkpoint=args.checkpoint, force=args.force, workers=args.workers)
    return _watch(args, paths)


def cmd_attach(args: argparse.Namespace) -> int:
    paths = _resolve(args)
    if args.notify:
        os.environ["FTC_NOTIFY"] = "1"  # the console, on a terminal, rings as the session ends
    code = _watch(args, paths, announce=False)
    if args.notify and not (sys.stdout.isatty() and sys.stdin.isatty()):
        from tui.notify import ring_ended

        ring_ended(paths, sys.stdout)  # plain: the bell and the OSC 9/777 notification once it has ended
    return code


def cmd_lr_find(args: argparse.Namespace) -> int:
    """A learning-rate range test of a run configuration: checked as ftc train checks it, then watched."""
    from engine.config import job_kind, load_toml
    from engine.errors import ConfigError
    from tui.commands.train import start_run

    config = load_toml(Path(args.config))
    kind = job_kind(config)
    if kind not in ("train", "lr_find"):
        raise ConfigError(
            f"{args.config}: [job] kind is {kind!r}; ftc lr-find takes a training run's config "
            '(kind = "train", or no [job] section)'
        )
    config["job"] = {"kind": "lr_find"}
    paths = start_run(_sessions_root(args), config, name=args.name or "lr-find")
    code = _watch(args, paths)
    if not args.detach and not (sys.stdout.isatty() and sys.stdin.isatty()):
        from engine.client import EventFollower
        from engine.protocol import JobFinished

        follower = EventFollower(paths)
        try:
            ends = [e.body for e in follower.poll(timeout=0) if isinstance(e.body, JobFinished)]
        finally:
            follower.close()
        rate = ends[-1].summary.suggested_learning_rate if ends else None
        if rate is not None:
            print(f"suggested learning rate: {rate:.2g} (set [train] learning_rate = {rate:.2g})", flush=True)
    return code


def cmd_inspect(args: argparse.Namespace) -> int:
    from tui.app import FtcApp

    path = Path(args.data)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the path of a CSV, TSV, JSONL, Parquet or HDF5 file")
    dataset = {
        "path": str(path.resolve()),
        "text_col": args.text_col,
        "label_col": args.label_col,
        "encoding": args.encoding,
    }
    from tui.hangup import run_app

    run_app(FtcApp(sessions_root=_sessions_root(args), dataset=dataset))
    return ExitCode.OK


def cmd_demo(args: argparse.Namespace) -> int:
    from tui.demo import run_demo

    return run_demo(args, _sessions_root(args))


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftc",
        description="ftc, the fine-tuning console: prepare and test text data, fine-tune transformers "
        "classifiers on TensorFlow with live loss and learning rate, detach and reattach, resume exactly, "
        "and stream predictions to HDF5. Without a command it opens the console on the sessions screen.",
    )
    parser.add_argument(
        "--sessions-dir",
        metavar="DIR",
        help="where sessions live (default: $FTC_SESSIONS_DIR or ./sessions)",
    )
    parser.add_argument(
        "--no-notify",
        action="store_true",
        help="no bell or desktop notification when a session ends (as FTC_NOTIFY=0)",
    )
    parser.set_defaults(func=cmd_tui)
    # Also accepted after the command (``ftc ls --sessions-dir D``); SUPPRESS keeps the top-level value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--sessions-dir", metavar="DIR", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--no-notify", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_sub_parser(common))

    p = sub.add_parser("demo", help="the embedded default: real tweets and a real small model")
    p.add_argument(
        "--headless", action="store_true", help="print progress as plain lines instead of the console"
    )
    p.add_argument("--steps", type=int, default=None, help="training steps for the demo run")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="start a new session from a TOML run configuration; prints its id")
    p.add_argument("config", metavar="CONFIG.toml")
    p.add_argument("--name", help="a short name for the session id")
    p.add_argument("--detach", action="store_true", help="start the engine and return at once")
    p.add_argument(
        "--allow-failing-checks",
        action="store_true",
        help='train even when a data test fails (as [data] on_fail = "warn"); failures are still shown',
    )
    p.add_argument(
        "--workers",
        type=_worker_count,
        metavar="N",
        help="train on N worker processes on this host (MultiWorkerMirroredStrategy; same global batch)",
    )
    p.add_argument(
        "--cluster",
        metavar="CLUSTER.toml",
        help='train on several hosts: hosts = ["h1:port", ...] and this host\'s index; run on every host',
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "lr-find",
        help="a learning-rate range test of a run config (short sweep, loss against LR, a suggested rate)",
    )
    p.add_argument("config", metavar="CONFIG.toml")
    p.add_argument("--name", help="a short name for the session id (default: lr-find)")
    p.add_argument("--detach", action="store_true", help="start the engine and return at once")
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser(
        "resume", help="restart a crashed or stopped session from its last complete checkpoint"
    )
    p.add_argument("session", metavar="SESSION")
    p.add_argument("--detach", action="store_true", help="start the engine and return at once")
    p.add_argument(
        "--checkpoint",
        metavar="NAME",
        help="resume from this checkpoint (e.g. ckpt-1200) instead of the newest intact one",
    )
    p.add_argument(
        "--force", action="store_true", help="run a finished session again from its last checkpoint"
    )
    p.add_argument(
        "--workers",
        type=_worker_count,
        metavar="N",
        help="resume on N local worker processes instead of the session's number (same global batch)",
    )
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("attach", help="open the console on a session's monitor (plain lines without a TTY)")
    p.add_argument("session", metavar="SESSION")
    p.add_argument(
        "--notify",
        action="store_true",
        help="when the session ends, ring the terminal and send a desktop notification (OSC 9/777)",
    )
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("inspect", help="open the console's dataset screen on a data file (preview, tests)")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--text-col", metavar="C", help="the text column (default: guessed)")
    p.add_argument("--label-col", metavar="L", help="the label column (default: guessed)")
    p.add_argument("--encoding", metavar="E", help="text encoding, or 'auto' to detect (default: utf-8)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("ls", help="list sessions with status, step and best metric")
    p.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    p.set_defaults(func=cmd_ls)

    for name, text in (
        ("pause", "pause a running session between steps"),
        ("unpause", "continue a paused session"),
        ("checkpoint", "write a checkpoint now"),
        ("stop", "checkpoint, then stop the session's engine"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("session", metavar="SESSION")
        p.set_defaults(func=cmd_control)

    p = sub.add_parser(
        "check", help="run the data tests on a labelled text file (exit 0 pass, 1 fail, 2 bad input)"
    )
    data.add_check_arguments(p)
    p.set_defaults(func=data.check_main)
    p = sub.add_parser("prepare", help="split, shuffle and shard a labelled text file for training")
    data.add_prepare_arguments(p)
    p.set_defaults(func=data.prepare_main)

    p = sub.add_parser("predict", help="label a text file with a model, streaming results to HDF5")
    predict.add_predict_arguments(p)
    p.set_defaults(func=predict.predict_main)

    p = sub.add_parser(
        "export", help="export a session's model (hf safetensors or TF SavedModel) with a model card"
    )
    export.add_export_arguments(p)
    p.set_defaults(func=export.export_main)
    return parser


def _sub_parser(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    class SubParser(argparse.ArgumentParser):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("parents", [common])
            super().__init__(**kwargs)

    return SubParser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.no_notify:
        os.environ["FTC_NOTIFY"] = "0"  # read by the console's notifier (tui/notify.py)
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at exit
        return code
    except FtcError as exc:  # session, config, data ... errors: one sentence, the error's exit code
        print(f"ftc: {brief(exc, 1000)}", file=sys.stderr)  # one line, whatever a library put in it
        return exc.exit_code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except OSError as exc:  # permission denied, a missing folder, a full disk: the path and what to do
        print(f"ftc: {os_error_text(exc)}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except Exception as exc:  # a bug: one line for the person, the traceback in a file for the report
        print(f"ftc: internal error: {one_line(exc)}; {_crash_log(exc)}", file=sys.stderr)
        return ExitCode.FAILED


def _quiet_broken_pipe() -> int:
    """``ftc ls | head``: the reader went away. Exit as quietly as a Unix tool would (128 + SIGPIPE)."""
    try:  # Python flushes stdout again at exit: point it at /dev/null so that flush cannot complain
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (tests): nothing to silence
        pass
    return ExitCode.BROKEN_PIPE


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _crash_log(exc: BaseException) -> str:
    """Write the traceback where a bug report can pick it up; say where (or that it could not)."""
    import tempfile
    import time
    import traceback

    folder = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "ftc"
    for base in (folder, Path(tempfile.gettempdir())):
        try:
            base.mkdir(parents=True, exist_ok=True)
            path = base / f"ftc-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        except OSError:
            continue
        return f"this is a bug in ftc; please report it with {path}"
    return "this is a bug in ftc; please report it with the command you ran"


if __name__ == "__main__":
    sys.exit(main())
