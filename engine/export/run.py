"""``ftc export``: pick a session's weights, write them in a format the ecosystem loads, with a model card.

Two halves, so every refusal comes before TensorFlow is imported:

- ``plan`` (no TensorFlow): finds the session, picks the weights and checks the output folder;
- ``run`` loads the weights (engine/predict/models.py), has the format's writer
  (engine/export/hf.py, engine/export/savedmodel.py) write them into a temp folder beside
  ``--out``, adds the model card (engine/export/card.py) and renames the folder into place only
  once it is complete. An ``--overwrite`` replaces the old export only then; on any failure
  the temp folder is removed and nothing that existed is changed.

Which weights (``--checkpoint``):

- not given: the session's ``model/`` when training finished and saved it (the best weights when
  ``restore_best`` restored them, else the final ones: the weights the test split was evaluated
  with); otherwise the best checkpoint if one is kept, otherwise the newest intact one;
- ``best``: the checkpoint at the best evaluation's step (``best_step`` in the checkpoints'
  state.json, which the early-stopping callback keeps); refused when that checkpoint was pruned;
- ``last``: the newest intact checkpoint (a damaged newer one is skipped, and said so);
- ``ckpt-<step>``, a step or a checkpoint path: that checkpoint, refused in one line if damaged.

A checkpoint is always verified against the checksums in its COMPLETE marker before it is used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import fsio
from engine.errors import CheckpointError, OutputError, SessionError, full_disk, os_error_text
from engine.export import FORMATS
from engine.export.card import Weights, gather, model_card, model_weights
from engine.session import SessionPaths, resolve

CARD = "README.md"
TOKENIZER_DIR = "tokenizer"  # savedmodel exports: the tokenizer files, beside the SavedModel's own
_TMP = ".ftc-export-"
_OLD = ".ftc-replaced-"


@dataclass
class Plan:
    """What an export will do, decided without TensorFlow."""

    session: SessionPaths
    source: Path  # the session's model/ folder or a checkpoint folder
    weights: Weights
    fmt: str
    out: Path
    replace: bool  # --out exists (an earlier export) and is replaced once the new one is complete
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    out: Path
    files: dict[str, list[str]]  # group -> file names
    info: dict[str, Any]


# ---------------------------------------------------------------- planning (no TensorFlow)


def plan(
    session: str,
    sessions_root: Path,
    *,
    fmt: str,
    out: str,
    checkpoint: str | None = None,
    overwrite: bool = False,
) -> Plan:
    """Every check that needs no model: session, weights, format and output folder; FtcError otherwise."""
    if fmt not in FORMATS:
        raise OutputError(f"--format {fmt!r} is not an export format; give {' or '.join(FORMATS)}")
    paths = resolve(sessions_root, session)
    target = _check_out(paths, out, overwrite, recover=True)
    source, weights, notes = pick_weights(paths, checkpoint)
    if fmt == "hf":
        _check_architecture(source)
    return Plan(paths, source, weights, fmt, target, target.exists(), notes)


def _check_architecture(source: Path) -> None:
    """Refuse, before loading anything, a model whose architecture the hf export does not support."""
    from engine.export.hf import architecture
    from engine.predict.models import model_config
    from engine.train import checkpoints as ck

    kind = "checkpoint" if ck.is_checkpoint(source) else "folder"
    config = model_config({"kind": kind, "path": str(source)})
    model_type = (config or {}).get("model_type")
    if isinstance(model_type, str):
        architecture(model_type)  # a one-line ModelError naming what is supported


def _check_out(paths: SessionPaths, out: str, overwrite: bool, *, recover: bool = False) -> Path:
    if not out.strip():
        raise OutputError("--out is empty; give the folder to write the export to")
    target = Path(os.path.abspath(Path(out).expanduser()))
    if recover and target.parent.is_dir():
        _recover(target)
    real = target.resolve()
    session = paths.root.resolve()
    if real == session or session in real.parents:
        raise OutputError(
            f"--out {out} is inside the session {paths.id} ({session}); ftc export never writes into a "
            "session: give a folder outside it"
        )
    if real in session.parents:
        raise OutputError(
            f"--out {out} holds the session {paths.id}; give a new folder for the export, "
            "outside the sessions"
        )
    parent = target.parent
    if not parent.is_dir():
        raise OutputError(
            f"--out {out}: its parent folder {parent} does not exist (or is not a folder); create it first"
        )
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise OutputError(f"--out {out} exists; give --overwrite to replace it, or another folder")
        if target.is_symlink() or not target.is_dir():
            raise OutputError(f"--out {out} is not a folder; ftc export writes a folder: give another path")
        if not is_export(target):
            raise OutputError(
                f"--out {out} is not an earlier ftc export (no ftc model card {CARD}) and is not empty; "
                "--overwrite replaces only ftc's own exports: give another folder"
            )
    if not os.access(parent, os.W_OK):
        raise OutputError(f"--out {out}: its folder {parent} is not writable; choose a writable location")
    return target


def _pid_of(path: Path) -> int | None:
    tail = path.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _dead(pid: int | None) -> bool:
    from engine.session import pid_alive

    return pid is not None and pid != os.getpid() and not pid_alive(pid)


def _recover(out: Path) -> None:
    """Undo what a killed export left beside ``out``: its temp folder, or the old export moved aside.

    A kill between moving the old export aside and renaming the new one into place leaves
    ``out`` missing and the old export under ``.ftc-replaced-<name>-<pid>``: it is put back.
    """
    for path in sorted(out.parent.glob(f"{_OLD}{out.name}-*")):
        if not _dead(_pid_of(path)):
            continue
        if not out.exists():
            os.rename(path, out)
            fsio.fsync(out.parent)
        else:
            shutil.rmtree(path, ignore_errors=True)
    for path in out.parent.glob(f"{_TMP}{out.name}-*"):
        if _dead(_pid_of(path)):
            shutil.rmtree(path, ignore_errors=True)


def is_export(folder: Path) -> bool:
    """An empty folder, or one an earlier ``ftc export`` wrote (its model card says so)."""
    try:
        if not any(folder.iterdir()):
            return True
        head = (folder / CARD).read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    return head.startswith("---") and '"ftc"' in head.split("\n---", 1)[0]


def _model_ready(paths: SessionPaths) -> bool:
    from engine.predict.models import WEIGHT_FILES

    model = paths.model
    return (model / "config.json").is_file() and any((model / n).is_file() for n in WEIGHT_FILES)


def pick_weights(paths: SessionPaths, checkpoint: str | None) -> tuple[Path, Weights, list[str]]:
    """The folder to export, what the card calls it, and notes for the person (a damaged one skipped)."""
    from engine.train import checkpoints as ck

    root = paths.checkpoints
    if checkpoint is None:
        if _model_ready(paths):
            return paths.model, model_weights(paths.root), []
        best = _best_step(root)
        if best is not None and ck.damage(root / f"{ck.PREFIX}{best}") is None:
            return _checkpoint(root / f"{ck.PREFIX}{best}", "the best checkpoint")
        if not ck.folders(root):
            raise CheckpointError(
                f"session {paths.id} has no trained model ({paths.model} is empty) and no checkpoint in "
                f"{root}; train it first ('ftc resume {paths.id}' continues a stopped one)"
            )
        return _last(paths, root)
    if checkpoint == "last":
        return _last(paths, root)
    if checkpoint == "best":
        best = _best_step(root)
        if best is None:
            raise CheckpointError(
                f"session {paths.id} has no best checkpoint (no validation evaluation recorded in the "
                f"checkpoints in {root}); give --checkpoint last or a checkpoint name"
            )
        path = root / f"{ck.PREFIX}{best}"
        problem = ck.damage(path)
        if problem is not None:
            why = (
                "was pruned (keep_best = false)"
                if problem == "no such checkpoint"
                else f"is damaged: {problem}"
            )
            raise CheckpointError(
                f"the best checkpoint of session {paths.id}, {path.name} ({path}), {why}; "
                f"{_intact_hint(root, path)}"
            )
        return _checkpoint(path, "the best checkpoint")
    path = ck.resolve(root, checkpoint)
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint {checkpoint!r} in session {paths.id} ({path} does not exist); "
            f"{_intact_hint(root, path)}"
        )
    if path.resolve().parent.parent != paths.root.resolve():
        raise CheckpointError(
            f"checkpoint {checkpoint} ({path}) is not one of session {paths.id}'s; give one in {root}"
        )
    problem = ck.damage(path)
    if problem is not None:
        raise CheckpointError(
            f"checkpoint {path.name} ({path}) is damaged: {problem}; {_intact_hint(root, path)}"
        )
    return _checkpoint(path, "checkpoint")


def _checkpoint(path: Path, what: str, notes: list[str] | None = None) -> tuple[Path, Weights, list[str]]:
    from engine.train import checkpoints as ck

    step = ck.step_of(path)
    reason = None
    try:
        reason = ck.read_state(path).get("reason")
    except (OSError, ValueError):
        pass
    why = f", saved as {reason}" if reason else ""
    weights = Weights(path.name, step, f"{what} at step {step}{why}", _is_final_model(path, step))
    return path, weights, notes or []


def _is_final_model(path: Path, step: int) -> bool:
    """Whether the checkpoint holds the weights training left in model/ (the test split's weights)."""
    session = path.parent.parent
    weights = model_weights(session)
    return weights.step == step and (session / "model" / "config.json").is_file()


def _last(paths: SessionPaths, root: Path) -> tuple[Path, Weights, list[str]]:
    from engine.train import checkpoints as ck

    notes: list[str] = []
    for path in reversed(ck.folders(root)):
        problem = ck.damage(path)
        if problem is None:
            return _checkpoint(path, "the newest intact checkpoint", notes)
        notes.append(f"skipped {path.name}: damaged ({problem})")
    raise CheckpointError(
        f"session {paths.id} has no intact checkpoint in {root}"
        + (f" ({'; '.join(notes)})" if notes else "")
        + "; export its model/ once training has finished"
    )


def _best_step(root: Path) -> int | None:
    """The best evaluation's step, as the newest readable checkpoint's state.json records it."""
    from engine.train import checkpoints as ck

    for path in reversed(ck.complete(root)):
        try:
            best = ck.read_state(path).get("best_step")
        except (OSError, ValueError):
            continue
        return best if isinstance(best, int) else None
    return None


def _intact_hint(root: Path, exclude: Path) -> str:
    from engine.train import checkpoints as ck

    others = [p.name for p in ck.intact_checkpoints(root) if p != exclude]
    return f"intact ones: {', '.join(others)}" if others else f"{root} holds no other intact checkpoint"


# ---------------------------------------------------------------- running (TensorFlow)


def run(p: Plan, echo: Callable[[str], object] = print) -> Result:
    """Load the weights, write the export beside --out, add the card, rename it into place."""
    from engine.predict.models import check_loadable, load, resolve_model, trained_max_length

    for note in p.notes:
        echo(f"note: {note}")
    # TensorFlow loads in this process (the engine's launcher quiets it the same way): its start-up
    # chatter and transformers' deprecation notice would bury the export's own lines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    ref = resolve_model(str(p.source), p.session.root.parent)
    check_loadable(ref)
    model, tokenizer, id2label, _info = load(ref)
    labels = [id2label[i] for i in range(len(id2label))]
    tmp = p.out.parent / f"{_TMP}{p.out.name}-{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        if p.fmt == "hf":
            from engine.export.hf import write_hf

            info = write_hf(model, tokenizer, tmp)
        else:
            from engine.export.savedmodel import write_savedmodel

            max_length = trained_max_length(ref) or 128
            info = write_savedmodel(model, labels, tmp, max_length)
            written = tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
            for name in written:
                if Path(name).is_file():
                    fsio.fsync(Path(name))
            fsio.fsync(tmp / TOKENIZER_DIR)
        text = model_card(gather(p.session.root, p.weights), export=info)
        fsio.write_synced(tmp / CARD, lambda fh: fh.write(text.encode("utf-8")))
        fsio.fsync(tmp)
        fsio.fault("export_complete")  # tests kill the export here: --out must be untouched
        _place(tmp, p.out)
    except OSError as exc:
        raise OutputError(os_error_text(exc, "export again")) from None
    except Exception as exc:
        # Libraries that write in native code (safetensors) report a full disk as their own error.
        full = full_disk(exc)
        if full is None:
            raise
        where = OSError(full.errno, full.strerror, str(p.out))
        raise OutputError(os_error_text(where, "export again")) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Result(p.out, file_groups(p.out), info)


def _place(tmp: Path, out: Path) -> None:
    """Rename the complete export into place; an old one is moved aside first and deleted only after."""
    old = None
    if out.exists():
        old = out.parent / f"{_OLD}{out.name}-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        if old is not None:
            os.rename(old, out)  # put the old export back
        raise
    fsio.fsync(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


_GROUPS = (
    ("weights", ("model.safetensors", "saved_model.pb", "fingerprint.pb", "variables/")),
    ("config", ("config.json",)),
    ("assets", ("assets/",)),
    ("card", (CARD,)),
)


def file_groups(folder: Path) -> dict[str, list[str]]:
    """The export's files by what they are: weights, config, tokenizer, assets, card."""
    groups: dict[str, list[str]] = {name: [] for name in ("weights", "config", "tokenizer", "assets", "card")}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        group = next(
            (
                g
                for g, names in _GROUPS
                if any(rel == n or (n.endswith("/") and rel.startswith(n)) for n in names)
            ),
            "tokenizer",
        )
        groups[group].append(rel)
    return {name: names for name, names in groups.items() if names}


def size_text(folder: Path, names: list[str]) -> str:
    total = sum((folder / n).stat().st_size for n in names)
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if total >= scale:
            return f"{total / scale:.1f} {unit}"
    return f"{total} B"


def export(
    session: str,
    sessions_root: Path,
    *,
    fmt: str,
    out: str,
    checkpoint: str | None = None,
    overwrite: bool = False,
    echo: Callable[[str], object] = print,
) -> Result:
    """Plan, then run: the whole ``ftc export``; prints one line per file group and the output path."""
    p = plan(session, sessions_root, fmt=fmt, out=out, checkpoint=checkpoint, overwrite=overwrite)
    echo(f"exporting {p.session.id}: {p.weights.name} ({p.weights.note}) as {p.fmt}")
    result = run(p, echo)
    for group, names in result.files.items():
        shown = names if len(names) <= 4 else [*names[:3], f"... {len(names) - 3} more"]
        echo(f"  {group}: {', '.join(shown)} ({size_text(result.out, names)})")
    echo(f"exported to {result.out}")
    return result


__all__ = ["CheckpointError", "OutputError", "Plan", "Result", "SessionError", "export", "plan", "run"]
