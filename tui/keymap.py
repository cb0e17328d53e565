"""The console's one registry of actions: it feeds the bindings, the footer, the ? help and the palette."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

# Keymap names, one per screen (a screen says which with its KEYMAP), plus the apps' own: "app" for
# keys bound everywhere in the console, "predict_app" for ftc predict's window.
APP, PREDICT_APP, SESSIONS, MONITOR, PREDICT, DATASET, HELP, OPEN_FILE, CONFIRM, DETAIL, COMPARE = (
    "app",
    "predict_app",
    "sessions",
    "monitor",
    "predict",
    "dataset",
    "help",
    "open_file",
    "confirm",
    "detail",
    "compare",
)
NEW_RUN = "new_run"
LR_FIND = "lr_find"
ERRORS = "errors"
# The help's sections: a heading for each keymap, in the order a person meets the screens.
SECTIONS = {
    SESSIONS: "Sessions screen",
    NEW_RUN: "New-run screen (a form: tab moves between fields)",
    MONITOR: "Monitor screen",
    LR_FIND: "Learning-rate range test screen",
    COMPARE: "Compare screen",
    ERRORS: "Error analysis screen (misclassified examples, likely label noise)",
    PREDICT: "Prediction screen",
    DATASET: "Data file screen",
    OPEN_FILE: "Open a data file",
    CONFIRM: "A question before a stop, a rewind or a delete",
    DETAIL: "An event in full, and the engine's log",
    HELP: "This help",
    APP: "Everywhere",
    PREDICT_APP: "ftc predict's own window",
}
CONTROL_SCREENS = (SESSIONS, MONITOR, PREDICT)
# How a key reads in the help; Textual's own footer symbols (⏎, esc) are too terse for a table.
KEY_NAMES = {"question_mark": "?", "pageup": "page up", "pagedown": "page down", "slash": "/"}
# How a key reads in a footer, where space is short.
FOOTER_KEYS = {
    "question_mark": "?",
    "escape": "esc",
    "enter": "⏎",
    "pageup": "pgup",
    "pagedown": "pgdn",
    "slash": "/",
}


@dataclass(frozen=True)
class Action:
    """One thing a person can do: its keys, what it runs, and where it is offered."""

    id: str
    keys: str  # Textual key names, comma-separated
    run: str  # a Textual action string, run on the screen the key is pressed on
    label: str  # the footer's word, and the palette's title
    description: str  # the help's line and the palette's explanation
    screens: tuple[str, ...]
    footer: bool = True
    priority: bool = False  # before the focused widget's own keys (page keys in a table)

    def binding(self) -> Binding:
        return Binding(self.keys, self.run, self.label, show=self.footer, priority=self.priority)

    def key_text(self) -> str:
        return " / ".join(KEY_NAMES.get(key, key) for key in self.keys.split(","))

    def footer_key(self) -> str:
        """The first key, as short as a footer shows it."""
        key = self.keys.split(",")[0]
        return FOOTER_KEYS.get(key, key)


ACTIONS: tuple[Action, ...] = (
    # In footer order: back (or quit) first, help last, as each screen has always shown them.
    # q and escape do the same on every screen: back to the screen before, and quit at the top.
    Action(
        "quit",
        "q,escape",
        "app.quit",
        "Quit",
        "quit the console (engines keep running); q and escape go back on every other screen",
        (SESSIONS,),
    ),
    Action(
        "back",
        "escape,q",
        "app.pop_screen",
        "Back",
        "back to the screen before",
        (MONITOR, DATASET, COMPARE, ERRORS),
    ),
    # ftc predict shows this screen alone: there escape quits rather than uncovering a blank screen.
    Action("predict_back", "escape,q", "back", "Back", "back to the sessions list (or quit)", (PREDICT,)),
    Action("open", "enter", "open", "Open", "open the selected session's monitor", (SESSIONS, COMPARE)),
    Action("pause", "p", "control('pause')", "Pause", "pause the session between steps", CONTROL_SCREENS),
    Action("unpause", "u", "control('unpause')", "Unpause", "continue a paused session", CONTROL_SCREENS),
    Action(
        "checkpoint",
        "c",
        "control('checkpoint')",
        "Checkpoint",
        "write a checkpoint now",
        (SESSIONS, MONITOR),
    ),
    Action(
        "stop",
        "s",
        "control('stop')",
        "Stop",
        "checkpoint, then end the engine (asks first)",
        CONTROL_SCREENS,
    ),
    Action(
        "resume",
        "r",
        "control('resume')",
        "Resume",
        "resume a crashed or stopped session from its last checkpoint",
        CONTROL_SCREENS,
    ),
    Action("next_tab", "t", "next_tab", "Tab", "next tab", (MONITOR, DATASET)),
    Action(
        "zoom",
        "z",
        "zoom",
        "Zoom",
        "tabs at full height, without the plots above (again: back). In the Evaluation tab up/down "
        "choose an evaluation, tab moves to its confusion matrix, enter on a cell lists its examples",
        (MONITOR,),
    ),
    Action("log_scale", "l", "log_scale", "Log y", "loss plot: logarithmic or linear scale", (MONITOR,)),
    Action("window", "w", "window", "Window", "plots: every step, or only the last steps", (MONITOR,)),
    Action(
        "filter",
        "slash",
        "filter",
        "Filter",
        "event log: show only lines containing the text typed (escape clears); enter on a line shows it "
        "in full, on its first line ('▲ N earlier lines') 200 more",
        (MONITOR,),
    ),
    Action(
        "engine_log",
        "v",
        "engine_log",
        "Engine log",
        "view the engine's log (a failed run's traceback) in a scrollable window",
        (MONITOR,),
    ),
    Action(
        "delete",
        "x",
        "delete",
        "Delete",
        "move a session that is not running to .trash/ in the sessions folder (asks first)",
        (SESSIONS,),
    ),
    Action(
        "export",
        "e",
        "export",
        "Export",
        "export the session's model with its model card as a Hugging Face folder (transformers v5, "
        "PyTorch) to exports/<session>-hf beside the sessions folder (ftc export for other formats)",
        (SESSIONS, MONITOR),
    ),
    Action(
        "open_dataset",
        "d",
        "open_dataset",
        "Data",
        "inspect and test a data file (preview, label and length histograms, data tests)",
        (SESSIONS,),
    ),
    Action(
        "new_run",
        "n",
        "new_run",
        "New run",
        "a new training run: a form for its data file, model and settings, checked as you type",
        (SESSIONS,),
    ),
    Action(
        "clone",
        "N",
        "clone",
        "Clone",
        "clone and edit: the new-run form filled from the selected session's config, to fix and retry it "
        "(a new session; the selected one is not changed)",
        (SESSIONS,),
    ),
    Action("new_run_back", "escape", "back", "Back", "back (asks first if the form was edited)", (NEW_RUN,)),
    Action(
        "start_run",
        "ctrl+s",
        "start",
        "Start",
        "run the data tests (as ftc check; a FAIL asks first), create the session and open its monitor",
        (NEW_RUN,),
        priority=True,
    ),
    Action(
        "pick_data",
        "ctrl+o",
        "pick_data",
        "Data file",
        "choose the data file; its format, encoding and columns are then offered",
        (NEW_RUN,),
        priority=True,
    ),
    Action(
        "save_config",
        "f2",
        "save_config",
        "Save",
        "save the config as a TOML file that 'ftc train FILE' runs (asks before overwriting a file)",
        (NEW_RUN,),
        priority=True,
    ),
    Action(
        "find_lr",
        "ctrl+f",
        "find_lr",
        "Find LR",
        "LR range test of this config; its suggested learning rate fills the form",
        (NEW_RUN,),
        priority=True,
    ),
    Action(
        "mark",
        "space",
        "mark",
        "Mark",
        "mark or unmark the selected session for comparing (a mark shows before its name)",
        (SESSIONS,),
    ),
    Action(
        "compare",
        "m",
        "compare",
        "Compare",
        "compare the marked sessions (2 to 8; one marked compares with the selected one): loss and metric "
        "curves overlaid, best metric, steps, time, throughput, and the config keys that differ",
        (SESSIONS,),
    ),
    Action(
        "next_metric",
        "m",
        "next_metric",
        "Metric",
        "metric plot: validation macro F1, accuracy or loss",
        (COMPARE,),
    ),
    Action("page_up", "pageup", "page(-1)", "Page up", "previous page of rows", (DATASET,), priority=True),
    Action("page_down", "pagedown", "page(1)", "Page down", "next page of rows", (DATASET,), priority=True),
    Action("first_page", "home", "first_page", "First", "first page of rows", (DATASET,), priority=True),
    Action("last_page", "end", "last_page", "Last", "last page of rows", (DATASET,), priority=True),
    Action("offending", "o", "offending", "Offending rows", "rows that fail the selected test", (DATASET,)),
    Action("run_checks", "r", "run_checks", "Re-run tests", "run the data tests again", (DATASET,)),
    Action(
        "next_encoding", "e", "next_encoding", "Encoding", "read the file with the next encoding", (DATASET,)
    ),
    Action("cancel", "escape", "cancel", "Cancel", "close without opening a file", (OPEN_FILE,)),
    Action("yes", "y,enter", "answer(True)", "Yes", "yes: do it", (CONFIRM,), priority=True),
    Action("no", "escape,n", "answer(False)", "No", "no: do nothing", (CONFIRM,), priority=True),
    Action("lr_back", "escape,q", "app.pop_screen", "Back", "back to the screen before", (LR_FIND,)),
    Action(
        "use_lr",
        "enter",
        "use",
        "Use it",
        "the suggested learning rate into the new-run form (from the form's range test), else shown to copy",
        (LR_FIND,),
    ),
    Action("lr_stop", "s", "stop", "Stop", "end the range test now (asks first)", (LR_FIND,)),
    Action(
        "errors",
        "a",
        "app.errors",
        "Errors",
        "error analysis: the latest validation evaluation's misclassified examples (n there: likely label "
        "noise)",
        (MONITOR,),
    ),
    Action("show_example", "enter", "show_example", "Full text", "the selected example in full", (ERRORS,)),
    Action(
        "toggle_sort",
        "o",
        "toggle_sort",
        "Order",
        "sort by confidence: most confident first, or least confident first",
        (ERRORS,),
    ),
    Action(
        "search",
        "slash",
        "search",
        "Search",
        "only examples whose text contains what is typed (enter searches, escape clears)",
        (ERRORS,),
    ),
    Action(
        "clear",
        "c",
        "clear",
        "All",
        "every misclassified example again: clear the confusion cell and the search",
        (ERRORS,),
    ),
    Action(
        "toggle_noise",
        "n",
        "toggle_noise",
        "Label noise",
        "switch to the likely label noise (training examples the final model disagrees with, by loss) "
        "and back",
        (ERRORS,),
    ),
    Action(
        "export_list",
        "e",
        "export",
        "Export CSV",
        "export the list shown as CSV (asks for a path and before replacing a file; never over the data)",
        (ERRORS,),
    ),
    Action("close_detail", "escape,q", "dismiss", "Close", "close this view", (DETAIL,)),
    Action("close_help", "escape,q,question_mark", "dismiss", "Close", "close this help", (HELP,)),
    Action("help", "question_mark", "app.help", "Help", "keys and concepts of ftc (this help)", (APP,)),
    Action(
        "notifications",
        "ctrl+g",
        "app.toggle_notifications",
        "Notifications",
        "the bell and desktop notification when a session ends: on or off (FTC_NOTIFY=0 starts with off)",
        (APP,),
        footer=False,
    ),
    Action(
        "quit_predict",
        "q",
        "app.quit",
        "Quit",
        "quit this window (the job keeps running)",
        (PREDICT_APP,),
        footer=False,  # the screen's own q (Back) quits there: one key in the footer
    ),
    Action(
        "interrupt", "ctrl+c", "app.quit", "Quit", "quit the console", (APP,), footer=False, priority=True
    ),
)


def actions(keymap: str) -> list[Action]:
    """The actions offered on one screen (or everywhere, for "app"), in footer order."""
    return [a for a in ACTIONS if keymap in a.screens]


def bindings(keymap: str) -> list[Binding | tuple[str, str] | tuple[str, str, str]]:
    """A screen's BINDINGS (typed as Textual declares them)."""
    return [a.binding() for a in actions(keymap)]


def help_tables() -> str:
    """Markdown: for each screen, a table of its keys and what they do."""
    parts = []
    for keymap, heading in SECTIONS.items():
        rows = [f"| {a.key_text()} | {a.description} |" for a in actions(keymap)]
        parts.append(f"## {heading}\n| key | action |\n|---|---|\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)
