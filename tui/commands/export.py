"""``ftc export SESSION --format hf|savedmodel --out DIR``: a session's model for the wider ecosystem.

Imported when the ``ftc`` parser is built, so nothing heavy at module level: the work is in
engine/export/run.py, imported when the command runs (its checks need no TensorFlow; loading
and writing the model do).
"""

from __future__ import annotations

import argparse
import sys

from engine.errors import ExitCode, FtcError, brief, os_error_text


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ftc export SESSION [--checkpoint NAME] --format F --out DIR [--overwrite]``."""
    parser.add_argument("session", metavar="SESSION", help="session id, unique prefix or folder")
    parser.add_argument(
        "--checkpoint",
        metavar="NAME",
        help="best (the best evaluation's checkpoint), last (the newest intact one), or ckpt-<step> / a step "
        "(default: the session's model/ once training has finished, else best, else last)",
    )
    # Not argparse choices: a wrong value is refused in one line like every other bad input.
    parser.add_argument(
        "--format",
        required=True,
        metavar="FORMAT",
        help="hf: model.safetensors with PyTorch names, config.json and tokenizer (transformers v5, "
        "PyTorch); savedmodel: a TensorFlow SavedModel (serving_default: input_ids, attention_mask -> "
        "probabilities, label_id)",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder to create (outside the session); must not exist"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace DIR if it is an earlier export (swapped only once the new one is complete)",
    )


def export_main(args: argparse.Namespace) -> int:
    from engine.export.run import export
    from engine.session import sessions_dir

    root = sessions_dir(getattr(args, "sessions_dir", None))
    try:
        export(
            args.session,
            root,
            fmt=args.format,
            out=args.out,
            checkpoint=args.checkpoint,
            overwrite=args.overwrite,
            echo=lambda line: print(line, flush=True),
        )
    except FtcError as exc:
        print(f"ftc export: {brief(exc, 1000)}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"ftc export: {os_error_text(exc, 'export again')}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    return ExitCode.OK
