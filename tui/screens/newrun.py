"""The new-run screen: a form that writes a training run's config.toml, checked live by the CLI's own config.

Every input is a key of ``[model]``, ``[data]`` or ``[train]``; the form's config is validated on each
change with engine.train.config's pydantic models (the ones ``ftc train`` uses), and each error sits
next to its field. The important keys come first; an "advanced" section holds every other key,
generated from the models' fields, so a key added there appears here by itself. Start runs the data
tests (``ftc check``'s) in a worker, asks before going past a FAIL, then starts the run by the code
``ftc train`` runs (tui.commands.train.start_run) and the App opens its monitor.
"""

from __future__ import annotations

import tempfile
import tomllib
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Collapsible, Header, Input, Label, Select, Static

from tui import keymap
from tui.live import while_shown
from tui.messages import (
    DataFileChosen,
    DataFileWanted,
    LearningRateSuggested,
    LrFindRequested,
    SessionOpened,
)
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.footer import KeyFooter

# The keys a person sets for most runs, in the form's order; every other key is under "advanced".
MAIN_TRAIN = (
    "epochs",
    "max_steps",
    "batch_size",
    "max_length",
    "learning_rate",
    "schedule",
    "warmup_steps",
    "warmup_ratio",
    "freeze",
    "freeze_layers",
    "class_weights",
    "early_stopping.metric",
    "early_stopping.patience",
    "mixed_precision",
)
MAIN_DATA = ("format", "encoding", "text_col", "label_col")
# [data] keys the form sets itself: the data file (source, or dir for a prepared folder).
DATA_OWN = ("source", "dir")
COLUMNS = ("text_col", "label_col")
# What an unset key means, where its default (None) does not say.
PLACEHOLDERS = {"data-encoding": "utf-8", "data-format": "by extension"}
TYPING_PAUSE_S = 0.3  # the data file is opened and the model checked once typing pauses this long


@dataclass(frozen=True)
class FieldSpec:
    """One input of the form: a config key, its choices (a select) or none (a typed value)."""

    section: str  # "data" or "train"
    key: str  # "batch_size", or "early_stopping.metric" in a sub-table
    choices: tuple[Any, ...] | None
    default: Any
    text: bool  # the value is kept as typed (a string key), not read as a TOML value
    description: str

    @property
    def id(self) -> str:
        return f"{self.section}-{self.key.replace('.', '-')}"


def _flat(annotation: Any) -> list[Any]:
    """The alternatives of a type (``int | None`` -> int, NoneType), Literals expanded to their values."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return [a for arg in get_args(annotation) for a in _flat(arg)]
    if origin is Literal:
        return [("literal", v) for v in get_args(annotation)]
    return [annotation]


def _spec(section: str, key: str, info: Any) -> FieldSpec:
    alternatives = [a for a in _flat(info.annotation) if a is not type(None)]
    literals = [a[1] for a in alternatives if isinstance(a, tuple)]
    choices: tuple[Any, ...] | None = None
    if literals and len(literals) == len(alternatives):
        choices = tuple(literals)
    elif alternatives == [bool]:
        choices = (True, False)
    default = info.get_default(call_default_factory=True)
    text = str in alternatives
    return FieldSpec(section, key, choices, default, text, info.description or "")


def field_specs(model: type[BaseModel], section: str, prefix: str = "") -> list[FieldSpec]:
    """Every key of a config section (sub-tables such as early_stopping flattened), in the model's order."""
    specs = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            specs.extend(field_specs(annotation, section, f"{prefix}{name}."))
        else:
            specs.append(_spec(section, prefix + name, info))
    return specs


def all_specs() -> tuple[list[FieldSpec], list[FieldSpec]]:
    """The form's fields: (main, advanced). The format's choices are the readers' formats."""
    from engine.data.readers import FORMATS
    from engine.train.config import EVAL_METRICS, DataSection, TrainSection

    data = {s.key: s for s in field_specs(DataSection, "data") if s.key not in DATA_OWN}
    data["format"] = FieldSpec("data", "format", FORMATS, None, True, "override the file extension")
    train = {s.key: s for s in field_specs(TrainSection, "train")}
    metric = train["early_stopping.metric"]  # a string the model checks against the metrics: offer them
    train[metric.key] = FieldSpec("train", metric.key, EVAL_METRICS, metric.default, True, metric.description)
    main = [data[k] for k in MAIN_DATA] + [train[k] for k in MAIN_TRAIN]
    advanced = [s for k, s in train.items() if k not in MAIN_TRAIN]
    advanced += [s for k, s in data.items() if k not in MAIN_DATA]
    return main, advanced


def toml_value(value: Any) -> str:
    """A value as it is typed into the form (and written in TOML): 5e-05, "x", [0.8, 0.2], {a = 1.0}."""
    import json
    import re

    import tomli_w

    if isinstance(value, dict):
        keys = [k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k) for k in value]
        return (
            "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in zip(keys, value.values(), strict=True)) + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def parse_value(text: str) -> Any:
    """What a person typed, read as a TOML value (2, 3e-5, true, [0.8, 0.2], {neg = 2.0}); else as text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _display(value: Any) -> str:
    return value if isinstance(value, str) else toml_value(value)


def _option(value: Any) -> str:
    return toml_value(value) if isinstance(value, bool) else str(value)


def error_lines(exc: ValidationError) -> list[tuple[tuple[str, ...], str]]:
    """Each pydantic error as (its location, the CLI's one line for it: validation_message)."""
    from engine.train.config import validation_message

    found = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        try:
            line = validation_message(ValidationError.from_exception_data(exc.title, [err]))  # type: ignore[list-item]
        except Exception:  # an error kind pydantic cannot rebuild: its own words
            line = f"{' '.join(err['msg'].split())}; fix the value"
        found.append((loc, line))
    return found


def _local(value: str) -> Path | None:
    """The absolute path a form value names on this machine, or None when nothing is there."""
    path = Path(value).expanduser()
    return path.resolve() if path.exists() else None


# ---------------------------------------------------------------- worker messages


@dataclass
class DataOpened(Message):
    run: int
    source: Any  # engine.data.readers.Source


@dataclass
class DataUnreadable(Message):
    run: int
    error: str


@dataclass
class ModelChecked(Message):
    value: str
    error: str | None
    note: str
    limit: int | None = None  # a local model's most tokens per text (max_position_embeddings)


@dataclass
class DataChecked(Message):
    """The data tests before a start: the config as checked (absolute paths) and the report (or None)."""

    config: dict[str, Any]
    report: dict[str, Any] | None


@dataclass
class StartRefused(Message):
    error: str


@dataclass
class RunStarted(Message):
    session: str


class NewRunScreen(Screen[None]):
    """A form for a new training run, or one prefilled from a session's config.toml (clone and edit)."""

    KEYMAP = keymap.NEW_RUN
    BINDINGS = keymap.bindings(KEYMAP)
    DEFAULT_CSS = """
    NewRunScreen #nr-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    NewRunScreen #nr-notice { height: auto; padding: 0 1; }
    NewRunScreen #nr-notice.error, NewRunScreen #nr-general { color: $error; }
    NewRunScreen #nr-general { height: auto; padding: 0 1; }
    NewRunScreen #nr-form { height: 1fr; }
    NewRunScreen .nr-row { height: auto; }
    NewRunScreen .nr-key { width: 26; padding: 0 1; }
    NewRunScreen .nr-row Input, NewRunScreen .nr-row Select { width: 16; }
    NewRunScreen .nr-row.wide Input { width: 1fr; margin-right: 1; }
    NewRunScreen .nr-err { width: 1fr; padding: 0 1; color: $error; }
    NewRunScreen .nr-err.note { color: $text-muted; }
    NewRunScreen .nr-err.below { padding: 0 1 0 26; height: auto; }
    NewRunScreen .nr-heading { height: 1; padding: 0 1; text-style: bold; color: $accent; }
    NewRunScreen Collapsible { padding: 0; border: none; }
    NewRunScreen #nr-checks { height: auto; max-height: 7; padding: 0 1; }
    NewRunScreen #nr-save { height: auto; display: none; background: $boost; }
    NewRunScreen #nr-save.shown { display: block; }
    NewRunScreen #nr-save Input { width: 1fr; }
    """

    def __init__(self, root: Path, prefill: dict[str, Any] | None = None, origin: str | None = None) -> None:
        super().__init__()
        self.root = root
        self.prefill = prefill or {}
        self.origin = origin
        self.main_specs, self.advanced_specs = all_specs()
        self.specs = {s.id: s for s in self.main_specs + self.advanced_specs}
        self.errors: dict[str, str] = {}  # field id -> the one line shown next to it
        self.model_error: str | None = None
        self.model_note = ""
        self.model_limit: int | None = None
        self.data_error: str | None = None
        self.source: Any = None  # the opened data file (engine.data.readers.Source)
        self.data_run = 0  # the newest opening of the data file; older answers are dropped
        self.starting = False
        self.initial: dict[str, Any] = {}  # the config as the form opened, to ask before dropping edits
        self.timers: dict[str, Timer] = {}
        prefill_data = self.prefill.get("data", {})
        self.data_path = prefill_data.get("source") or prefill_data.get("dir") or ""
        self.wanted_columns = {c: prefill_data.get(c) for c in COLUMNS}

    # ------------------------------------------------------------ layout

    def _row(self, key: str, widget: Any, field_id: str) -> Horizontal:
        """A key, its input, and its error (or a note) beside it."""
        return Horizontal(
            Label(key, classes="nr-key"),
            widget,
            Static("", id=f"e-{field_id}", classes="nr-err"),
            classes="nr-row",
        )

    def _wide_row(self, key: str, widget: Input, field_id: str) -> ComposeResult:
        """A path's key and input across the width, its error (or a note) on the line below."""
        yield Horizontal(Label(key, classes="nr-key"), widget, classes="nr-row wide")
        yield Static("", id=f"e-{field_id}", classes="nr-err below")

    def _widget(self, spec: FieldSpec) -> Input | Select[Any]:
        value = self._prefilled(spec)
        if spec.choices is not None or spec.key in COLUMNS:
            options = [(_option(c), c) for c in spec.choices or ()]
            default = PLACEHOLDERS.get(spec.id, "not set" if spec.default is None else _option(spec.default))
            if spec.key in COLUMNS:
                default = "(data file)"
            select: Select[Any] = Select(options, prompt=default, compact=True, id=f"f-{spec.id}")
            if value is not None and value in (spec.choices or ()):
                select.value = value
            return select
        placeholder = PLACEHOLDERS.get(spec.id, "not set" if spec.default is None else _display(spec.default))
        text = "" if value is None else _display(value)
        return Input(text, placeholder=placeholder, compact=True, id=f"f-{spec.id}", tooltip=spec.description)

    def _prefilled(self, spec: FieldSpec) -> Any:
        node: Any = self.prefill.get(spec.section, {})
        for part in spec.key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def compose(self) -> ComposeResult:
        yield Header()
        title = (
            f"New run from {self.origin} (a new session; {self.origin} is not changed)"
            if self.origin
            else "New run"
        )
        yield Static(title, id="nr-title")
        yield Static("", id="nr-notice")
        yield Static("", id="nr-general")  # errors of the config as a whole (two keys that conflict)
        data = self.prefill.get("data", {})
        with VerticalScroll(id="nr-form"):
            yield Static("Data and model", classes="nr-heading")
            path = data.get("source") or data.get("dir") or ""
            yield from self._wide_row(
                "data file",
                Input(
                    path, placeholder="path/to/data.csv (ctrl+o picks one)", compact=True, id="f-data-path"
                ),
                "data-path",
            )
            model = self.prefill.get("model", {}).get("source", "")
            yield from self._wide_row(
                "model",
                Input(model, placeholder="hub name or local folder", compact=True, id="f-model-source"),
                "model-source",
            )
            yield self._row("session name", Input("", placeholder="train", compact=True, id="f-name"), "name")
            for spec in self.main_specs[: len(MAIN_DATA)]:
                yield self._row(spec.key, self._widget(spec), spec.id)
            yield Static("Training", classes="nr-heading")
            for spec in self.main_specs[len(MAIN_DATA) :]:
                yield self._row(spec.key, self._widget(spec), spec.id)
            with Collapsible(title="Advanced: every other train and data key", id="nr-advanced"):
                for spec in self.advanced_specs:
                    yield self._row(
                        f"{spec.section}.{spec.key}" if spec.section == "data" else spec.key,
                        self._widget(spec),
                        spec.id,
                    )
        yield Static("", id="nr-checks")
        with Horizontal(id="nr-save"):
            yield Label("save the config to: ", classes="nr-key")
            yield Input(placeholder="path/to/run.toml", compact=True, id="nr-save-path")
        yield KeyFooter(self.KEYMAP)

    def on_mount(self) -> None:
        self.query_one("#f-data-path", Input).focus()
        self._show("#nr-notice", "")
        self._show("#nr-checks", "")
        self.initial = self.config()
        if dropped := self._unknown_prefill():
            self._notice(f"not in this form (left out): {', '.join(dropped)}", error=True)
        self.validate_form()
        self._open_data()
        self._check_model()

    def _unknown_prefill(self) -> list[str]:
        """The prefilled config's keys no field holds (another ftc's), so a clone says what it leaves out."""
        known = {(s.section, *s.key.split(".")) for s in self.specs.values()}
        known |= {("model", "source"), ("data", "source"), ("data", "dir"), ("job", "kind")}
        dropped = []

        def walk(node: Any, path: tuple[str, ...]) -> None:
            if path in known:
                return
            if isinstance(node, dict) and any(k[: len(path)] == path for k in known):
                for key, value in node.items():
                    walk(value, (*path, str(key)))
                return
            dropped.append(f"[{path[0]}] {'.'.join(path[1:])}".strip() if len(path) > 1 else f"[{path[0]}]")

        for section, value in self.prefill.items():
            walk(value, (str(section),))
        return dropped

    # ------------------------------------------------------------ the form's config

    def value(self, spec: FieldSpec) -> Any:
        """A field's value, or None when it is not set (the default applies)."""
        widget = self.query_one(f"#f-{spec.id}")
        if isinstance(widget, Select):
            return None if widget.is_blank() else widget.value
        assert isinstance(widget, Input)
        text = widget.value.strip()
        if not text:
            return None
        return text if spec.text else parse_value(text)

    def text_of(self, field_id: str) -> str:
        return self.query_one(f"#f-{field_id}", Input).value.strip()

    def config(self) -> dict[str, Any]:
        """The run's configuration as ``ftc train`` reads it; keys not set are left out (their defaults)."""
        config: dict[str, Any] = {"job": {"kind": "train"}, "model": {}, "data": {}, "train": {}}
        if model := self.text_of("model-source"):
            config["model"]["source"] = model
        if path := self.text_of("data-path"):
            found = _local(path)
            config["data"]["dir" if found is not None and found.is_dir() else "source"] = path
        for spec in self.specs.values():
            value = self.value(spec)
            if value is None:
                continue
            node = config[spec.section]
            *parents, last = spec.key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        return config

    def config_for_file(self) -> dict[str, Any]:
        """The config with the local model and data made absolute, so the file works from any folder."""
        config = self.config()
        for section, key in (("model", "source"), ("data", "source"), ("data", "dir")):
            value = config[section].get(key)
            if value and (found := _local(value)) is not None:
                config[section][key] = str(found)
        return config

    # ------------------------------------------------------------ live validation

    def validate_form(self) -> None:
        from engine.train.config import TrainConfig

        config = self.config()
        errors: dict[str, str] = {}
        general: list[str] = []
        try:
            TrainConfig.model_validate({k: config[k] for k in ("model", "data", "train")})
        except ValidationError as exc:
            for loc, line in error_lines(exc):
                field = self._field_of(loc, line)
                if field is None:
                    general.append(line)
                else:
                    errors.setdefault(field, line.split(": ", 1)[1] if ": " in line else line)
        if not self.text_of("data-path"):
            errors["data-path"] = "give a data file (ctrl+o picks one)"
        elif self.data_error:
            errors["data-path"] = self.data_error
        if self.model_error and "model-source" not in errors:
            errors["model-source"] = self.model_error
        max_length = self.value(self.specs["train-max_length"])
        if isinstance(max_length, int) or max_length is None:
            max_length = self.specs["train-max_length"].default if max_length is None else max_length
            if (
                self.model_limit is not None
                and max_length > self.model_limit
                and "train-max_length" not in errors
            ):
                errors["train-max_length"] = (
                    f"{max_length} is more than the model takes ({self.model_limit} tokens, its "
                    f"max_position_embeddings); set it to {self.model_limit} or less"
                )
        self.errors = errors
        for field_id in ["data-path", "model-source", *self.specs]:
            label = self.query_one(f"#e-{field_id}", Static)
            if field_id in errors:
                label.update(Text(errors[field_id]))
                label.set_class(False, "note")
            else:
                label.update(Text(self._note(field_id)))
                label.set_class(True, "note")
        self._show("#nr-general", " · ".join(general))

    def _note(self, field_id: str) -> str:
        if field_id == "model-source":
            return self.model_note
        if field_id == "data-path" and self.source is not None:
            src = self.source
            detected = src.encoding_note and src.encoding != "utf-8"  # utf-8 is what an unset field reads
            encoding = (src.encoding or "binary") + (" (detected)" if detected else "")
            return f"{src.format} · {encoding} · {len(src.columns)} columns"
        return ""

    def _field_of(self, loc: tuple[str, ...], line: str) -> str | None:
        """The field an error belongs to: its location, else the first field its text names."""
        if loc[:2] == ("model", "source"):
            return "model-source"
        if loc[:1] == ("data",) and len(loc) >= 2 and loc[1] in DATA_OWN:
            return "data-path"
        for end in range(len(loc), 1, -1):
            field_id = "-".join(loc[:end])
            if field_id in self.specs:
                return field_id
        section = loc[0] if loc else ""
        for spec in self.specs.values():
            if spec.section == section and spec.key.rsplit(".", 1)[-1] in line.split(": ", 1)[-1]:
                return spec.id
        return None

    def _notice(self, text: str, error: bool = False) -> None:
        self._show("#nr-notice", text).set_class(error, "error")

    def _show(self, selector: str, text: str) -> Static:
        """A line's text; an empty line takes no room."""
        line = self.query_one(selector, Static)
        line.update(Text(text))  # not markup: "[train] x" is text
        line.display = bool(text)
        return line

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        field = (event.input.id or "").removeprefix("f-")
        if field == "data-path" and event.value != self.data_path:
            self.data_path = event.value
            self.source = None
            self.wanted_columns = {c: None for c in COLUMNS}
            self._soon("data", self._open_data)
        elif field == "data-encoding":
            self._soon("data", self._open_data)
        elif field == "model-source":
            self._soon("model", self._check_model)
        if event.input.id != "nr-save-path":
            self.validate_form()

    def _soon(self, name: str, then: Callable[[], None]) -> None:
        """Run ``then`` once typing pauses (a file or a model is opened once, not at every key)."""
        if name in self.timers:
            self.timers[name].stop()
        self.timers[name] = self.set_timer(TYPING_PAUSE_S, then)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        field = (event.select.id or "").removeprefix("f-")
        if field == "data-format":
            self._open_data()
        elif field in ("data-text_col", "data-label_col") and self.source is not None:
            column = field.removeprefix("data-")
            if not event.select.is_blank() and event.value != getattr(self.source, column):
                self._open_data()
        self.validate_form()

    # ------------------------------------------------------------ workers: the data file and the model

    def _open_data(self) -> None:
        self.data_run += 1
        self.data_error = None
        path = self.text_of("data-path")
        found = _local(path) if path else None
        if found is None or found.is_dir():
            if path and found is None:
                self.data_error = f"{path}: no such file; type the path of a data file (ctrl+o picks one)"
            self._clear_columns()
            return
        options: dict[str, Any] = {
            "fmt": self.value(self.specs["data-format"]),
            # Unset: detected (as --encoding auto), and the detected codec is then written into the field.
            "encoding": self.value(self.specs["data-encoding"]) or "auto",
            "hdf_key": self.value(self.specs["data-key"]),
        }
        for column in COLUMNS:
            chosen = self.wanted_columns.get(column) or self.value(self.specs[f"data-{column}"])
            options[column] = chosen if self.source is not None or self.wanted_columns.get(column) else None
        self._open_worker(self.data_run, str(found), options)

    def _clear_columns(self) -> None:
        for column in COLUMNS:
            select = self.query_one(f"#f-data-{column}", Select)
            if not self.wanted_columns.get(column):
                select.set_options([])

    @work(thread=True, exclusive=True, group="open")
    def _open_worker(self, run: int, path: str, options: dict[str, Any]) -> None:
        from engine.data.readers import open_source
        from engine.errors import FtcError

        try:
            source = open_source(path, **options)
        except (FtcError, OSError, ValueError) as exc:
            self.post_message(DataUnreadable(run, " ".join(str(exc).split())))
            return
        self.post_message(DataOpened(run, source))

    @on(DataOpened)
    @while_shown
    def _data_opened(self, message: DataOpened) -> None:
        if message.run != self.data_run:
            return
        self.source = src = message.source
        encoding = self.query_one("#f-data-encoding", Input)
        if src.encoding_note and src.encoding not in (None, "utf-8") and not encoding.value.strip():
            # Written into the config, so the run reads the file as it was detected (a latin-1 file
            # would otherwise be read as utf-8 by the engine and refused at its first odd byte).
            with encoding.prevent(Input.Changed):
                encoding.value = src.encoding
        for column in COLUMNS:
            select = self.query_one(f"#f-data-{column}", Select)
            wanted = self.wanted_columns.get(column) or getattr(src, column)
            with select.prevent(Select.Changed):
                select.set_options([(c, c) for c in src.columns])
                if wanted in src.columns:
                    select.value = wanted
        self.wanted_columns = {c: None for c in COLUMNS}
        self.validate_form()

    @on(DataUnreadable)
    @while_shown
    def _data_unreadable(self, message: DataUnreadable) -> None:
        if message.run != self.data_run:
            return
        self.source = None
        self.data_error = message.error
        self.validate_form()

    def _check_model(self) -> None:
        value = self.text_of("model-source")
        if not value:
            self.model_error, self.model_note, self.model_limit = None, "", None
            return
        self._model_worker(value)

    @work(thread=True, exclusive=True, group="model")
    def _model_worker(self, value: str) -> None:
        import json

        from engine.errors import FtcError
        from engine.model import position_limit
        from engine.train.precheck import model_source

        try:
            found = model_source(value)
            limit = position_limit(json.loads((Path(found) / "config.json").read_text(encoding="utf-8")))
        except FtcError as exc:
            self.post_message(ModelChecked(value, " ".join(str(exc).split()), ""))
            return
        except (OSError, ValueError, AttributeError):  # a hub name: its limit is known once it loads
            limit = None
        note = (
            "local folder: config.json, weights and tokenizer found"
            if Path(found).is_dir()
            else ("a hub name: fetched at the start unless in the hub cache")
        )
        self.post_message(ModelChecked(value, None, note, limit))

    @on(ModelChecked)
    @while_shown
    def _model_checked(self, message: ModelChecked) -> None:
        if message.value != self.text_of("model-source"):
            return  # typed on since: a newer check is coming
        self.model_error, self.model_note, self.model_limit = message.error, message.note, message.limit
        self.validate_form()

    # ------------------------------------------------------------ start: data tests, then the run

    def action_start(self) -> None:
        if self.starting:
            return
        self.validate_form()
        if self.errors:
            first = next(iter(self.errors))
            self._notice(f"not started: fix the {len(self.errors)} field(s) marked in red first", error=True)
            self._focus_field(first)
            return
        self.starting = True
        self._notice("checking the config, the model and the data (the tests ftc check runs)…")
        self._show("#nr-checks", "")
        self._check_worker(self.config())

    def _focus_field(self, field_id: str) -> None:
        widget = self.query_one(f"#f-{field_id}")
        if not widget.display or not widget.is_on_screen:
            advanced = self.query_one("#nr-advanced", Collapsible)
            if any(s.id == field_id for s in self.advanced_specs):
                advanced.collapsed = False
        self.call_after_refresh(widget.focus)

    @work(thread=True, exclusive=True, group="start")
    def _check_worker(self, config: dict[str, Any]) -> None:
        import copy

        from engine.jobs import validate

        checked = copy.deepcopy(config)
        try:
            validate("train", checked)  # ftc train's own checks; local paths become absolute
            self.post_message(DataChecked(checked, self._data_report(checked)))
        except Exception as exc:  # FtcError or ValueError from the checks, OSError from the file
            self.post_message(StartRefused(" ".join(str(exc).split()) or type(exc).__name__))

    def _data_report(self, config: dict[str, Any]) -> dict[str, Any] | None:
        from engine.data.readers import open_source
        from engine.data.scan import report, scan
        from engine.train.gate import read_report

        data, train = config["data"], config["train"]
        if data.get("dir"):
            return read_report(Path(data["dir"]))
        source = open_source(
            data["source"],
            fmt=data.get("format"),
            encoding=data.get("encoding"),
            text_col=data.get("text_col"),
            label_col=data.get("label_col"),
            hdf_key=data.get("key"),
        )
        model = Path(config["model"]["source"])
        tokenizer = data.get("tokenizer") or (str(model) if model.is_dir() else None)
        with tempfile.TemporaryDirectory(prefix="ftc-newrun-") as scratch:
            result = scan(
                source,
                rejects_path=None,
                tokenizer=tokenizer,
                max_length=int(train.get("max_length", 128)),
                workdir=scratch,
            )
        return report(result)

    @on(StartRefused)
    @while_shown
    def _start_refused(self, message: StartRefused) -> None:
        self.starting = False
        self._refuse("not started", message.error)

    def _refuse(self, what: str, line: str) -> None:
        """A checker's one line in the notice, and beside the field it names."""
        field = self._field_named(line)
        if field is not None:
            label = self.query_one(f"#e-{field}", Static)
            label.update(Text(line.split(": ", 1)[1] if line.startswith("[") and ": " in line else line))
            label.set_class(False, "note")
        self._notice(f"{what}: {line}", error=True)

    def _field_named(self, line: str) -> str | None:
        """The field a checker's line begins with ('[train] max_length: ...', '[model] source ...')."""
        if line.startswith("[model] source"):
            return "model-source"
        if line.startswith(("[data] source", "[data] dir", "[data]:")):
            return "data-path"
        for spec in self.specs.values():
            if line.startswith((f"[{spec.section}] {spec.key}:", f"[{spec.section}] {spec.key} ")):
                return spec.id
        return None

    @on(DataChecked)
    @while_shown
    def _data_checked(self, message: DataChecked) -> None:
        report = message.report
        self._show("#nr-checks", self._verdicts(report))
        failed = report is not None and report.get("status") == "fail"
        if failed and message.config["data"].get("on_fail") != "warn":
            names = (
                ", ".join(t["name"] for t in report["tests"] if t.get("status") == "fail") if report else ""
            )
            question = f'Data test failed ({names}). Start anyway, with [data] on_fail = "warn"?'

            def answered(yes: bool | None) -> None:
                if yes:
                    self._launch(message.config, allow=True)
                else:
                    self.starting = False
                    self._notice("not started: a data test failed; fix the data or its columns", error=True)

            self.app.push_screen(ConfirmScreen(question), answered)
            return
        self._launch(message.config, allow=False)

    @staticmethod
    def _verdicts(report: dict[str, Any] | None) -> str:
        if report is None:
            return "data tests: the prepared folder has no report; the engine tests the data before step 1"
        tests = report.get("tests", [])
        counts = {s: sum(t.get("status") == s for t in tests) for s in ("pass", "warn", "fail")}
        lines = [f"data tests: {counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail"]
        for test in tests:
            if test.get("status") in ("fail", "warn"):
                figure = " ".join(str(test.get("figure", "")).split())
                lines.append(
                    f"{test['status'].upper()} {test.get('name')}: {figure}; {test.get('advice', '')}"
                )
        return "\n".join(lines)

    def _launch(self, config: dict[str, Any], allow: bool) -> None:
        self._notice("starting the engine…")
        self._launch_worker(config, self.text_of("name") or None, allow)

    @work(thread=True, exclusive=True, group="start")
    def _launch_worker(self, config: dict[str, Any], name: str | None, allow: bool) -> None:
        from tui.commands.train import start_run

        try:
            paths = start_run(self.root, config, name=name, allow_failing_checks=allow)
        except Exception as exc:  # the checks again, the sessions folder, the engine's start
            self.post_message(StartRefused(" ".join(str(exc).split()) or type(exc).__name__))
            return
        self.post_message(RunStarted(paths.id))

    @on(RunStarted)
    @while_shown
    def _run_started(self, message: RunStarted) -> None:
        app = self.app
        self.dismiss()
        app.post_message(SessionOpened(message.session, "train"))

    # ------------------------------------------------------------ the other keys

    def action_pick_data(self) -> None:
        self.post_message(DataFileWanted())

    @on(DataFileChosen)
    def _data_file_chosen(self, message: DataFileChosen) -> None:
        self.query_one("#f-data-path", Input).value = message.path

    def action_find_lr(self) -> None:
        self.validate_form()
        if self.errors:
            self._notice("fix the fields marked in red first; the LR range test runs this config", error=True)
            return
        self.post_message(LrFindRequested(self.config_for_file()))

    @on(LearningRateSuggested)
    def _learning_rate_suggested(self, message: LearningRateSuggested) -> None:
        self.query_one("#f-train-learning_rate", Input).value = f"{message.learning_rate:.3g}"
        self._notice(f"learning_rate set to {message.learning_rate:.3g}, the range test's suggestion")

    def action_save_config(self) -> None:
        row = self.query_one("#nr-save")
        row.add_class("shown")
        self.query_one("#nr-save-path", Input).focus()

    @on(Input.Submitted, "#nr-save-path")
    def _save_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.save(event.value.strip())

    def save(self, text: str, overwrite: bool = False) -> None:
        """Write the config as TOML: never over the data or the model, over an existing file if confirmed."""
        from engine.config import dump_toml
        from engine.errors import FtcError
        from engine.fsio import atomic_write_text
        from engine.jobs import validate

        self.validate_form()
        if self.errors:
            self._notice("not saved: fix the fields marked in red first", error=True)
            return
        config = self.config_for_file()
        path = Path(text).expanduser().absolute()
        for section, key in (("data", "source"), ("data", "dir"), ("model", "source")):
            named = config[section].get(key)
            found = _local(named) if named else None
            if found is not None and (path.resolve() == found or found in path.resolve().parents):
                self._notice(
                    f"not saved: {path} is (or is in) the run's {section} {key}; choose another path",
                    error=True,
                )
                return
        if path.is_dir():
            self._notice(f"not saved: {path} is a folder; give a file name such as run.toml", error=True)
            return
        if not path.parent.is_dir():
            self._notice(
                f"not saved: {path.parent}: no such folder; create it or choose another path", error=True
            )
            return
        try:
            validate("train", config)  # ftc train's own checks: the file is one it runs
        except (FtcError, ValueError, OSError) as exc:
            self._refuse("not saved", " ".join(str(exc).split()))
            return
        if path.exists() and not overwrite:

            def answered(yes: bool | None) -> None:
                if yes:
                    self.save(text, overwrite=True)

            self.app.push_screen(ConfirmScreen(f"{path} exists. Overwrite it?"), answered)
            return
        try:
            atomic_write_text(path, dump_toml(config), mode=0o644)
        except OSError as exc:
            self._notice(f"not saved: {path}: {exc.strerror}; choose another path", error=True)
            return
        self.query_one("#nr-save").remove_class("shown")
        self.initial = self.config()
        self._notice(f"saved {path}; 'ftc train {path}' runs it")

    def action_back(self) -> None:
        row = self.query_one("#nr-save")
        if row.has_class("shown"):
            row.remove_class("shown")
            self.query_one("#f-data-path", Input).focus()
            return
        if not self.edited():
            self.dismiss()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss()

        self.app.push_screen(ConfirmScreen("Drop this form (nothing was started or saved since)?"), answered)

    def edited(self) -> bool:
        """Whether the form says something its opening did not (detected columns aside)."""
        now = self.config()
        for column in COLUMNS:
            if column not in self.initial["data"]:
                now["data"].pop(column, None)
        return now != self.initial
