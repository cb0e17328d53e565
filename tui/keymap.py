"""The console's one registry of actions: it feeds the bindings, the footer, the ? help and the palette."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

# Keymap names, one per screen (a screen says which with its KEYMAP), plus the apps' own: "app" for
# keys bound everywhere in the console, "predict_app" for ftc predict's window.
APP, PREDICT_APP, SESSIONS, MONITOR, PREDICT, DATASET, HELP, OPEN_FILE = (
    "app",
    "predict_app",
    "sessions",
    "monitor",
    "predict",
    "dataset",
    "help",
    "open_file",
)
# The help's sections: a heading for each keymap, in the order a person meets the screens.
SECTIONS = {
    SESSIONS: "Sessions screen",
    MONITOR: "Monitor screen",
    PREDICT: "Prediction screen",
    DATASET: "Data file screen",
    OPEN_FILE: "Open a data file",
    HELP: "This help",
    APP: "Everywhere",
    PREDICT_APP: "ftc predict's own window",
}
CONTROL_SCREENS = (SESSIONS, MONITOR, PREDICT)
# How a key reads in the help; Textual's own footer symbols (⏎, esc) are too terse for a table.
KEY_NAMES = {"question_mark": "?", "pageup": "page up", "pagedown": "page down"}


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


ACTIONS: tuple[Action, ...] = (
    # In footer order: back first, tab last, as each screen has always shown them.
    Action("back", "escape", "app.pop_screen", "Back", "back to the screen before", (MONITOR, DATASET)),
    # ftc predict shows this screen alone: there escape quits rather than uncovering a blank screen.
    Action("predict_back", "escape", "back", "Back", "back to the sessions list (or quit)", (PREDICT,)),
    Action("open", "enter", "open", "Open", "open the selected session's monitor", (SESSIONS,)),
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
    Action("stop", "s", "control('stop')", "Stop", "checkpoint, then end the engine", CONTROL_SCREENS),
    Action(
        "resume",
        "r",
        "control('resume')",
        "Resume",
        "resume a crashed or stopped session from its last checkpoint",
        CONTROL_SCREENS,
    ),
    Action(
        "export",
        "e",
        "export",
        "Export",
        "export the session's model with its model card as a Hugging Face folder (transformers v5, "
        "PyTorch) to exports/<session>-hf beside the sessions folder (ftc export for other formats)",
        (SESSIONS, MONITOR),
        footer=False,  # the footers are full at 80 columns: the help and the palette offer it
    ),
    Action(
        "open_dataset",
        "d",
        "open_dataset",
        "Data",
        "inspect and test a data file (preview, label and length histograms, data tests)",
        (SESSIONS,),
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
    Action("next_tab", "t", "next_tab", "Tab", "next tab", (MONITOR, DATASET)),
    Action("cancel", "escape", "cancel", "Cancel", "close without opening a file", (OPEN_FILE,)),
    Action("close_help", "escape,q,question_mark", "dismiss", "Close", "close this help", (HELP,)),
    Action("help", "question_mark", "app.help", "Help", "keys and concepts of ftc (this help)", (APP,)),
    Action("quit", "q", "app.quit", "Quit", "quit the console (engines keep running)", (SESSIONS,)),
    Action(
        "quit_predict", "q", "app.quit", "Quit", "quit this window (the job keeps running)", (PREDICT_APP,)
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
