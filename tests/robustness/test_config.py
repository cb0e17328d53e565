"""Bad run configurations for ``ftc train``: refused before a session or an engine exists, in one line.

Each case writes a working configuration (a model folder that passes every check without
TensorFlow, a labelled CSV, a prepared folder), breaks one thing the way a person would, and runs
``ftc train CONFIG`` in the folder holding it. It must exit 2 with one ``ftc`` line naming the
section, key or file, leave every file as it was and create no session.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.robustness.harness import Files, ftc, refused

GOOD = """\
[job]
kind = "train"

[model]
source = "model"

[data]
source = "reviews.csv"
text_col = "text"
label_col = "label"

[train]
max_steps = 2
max_length = 32
"""


def make_model(folder: Path) -> Path:
    """A model folder every check passes (config.json, a weights file, a loadable tokenizer.json), no TF."""
    from tokenizers import Tokenizer, models

    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "bert", "max_position_embeddings": 64, "vocab_size": 3, "hidden_size": 8}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tf_model.h5").write_bytes(b"weights are only looked for, not loaded, before the engine")
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "great": 1, "awful": 2}, unk_token="[UNK]"))
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 64}))
    return folder


MANIFEST = {"version": 1, "labels": ["neg", "pos"], "splits": {"train": {"rows": 0}}}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A project folder: model/, reviews.csv, prepared/ (a manifest), config.toml, and where sessions go."""
    make_model(tmp_path / "model")
    rows = ["text,label"] + [
        f"{'great' if i % 2 else 'awful'} thing {i},{'pos' if i % 2 else 'neg'}" for i in range(40)
    ]
    (tmp_path / "reviews.csv").write_text("\n".join(rows) + "\n")
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "manifest.json").write_text(json.dumps(MANIFEST))
    (tmp_path / "config.toml").write_text(GOOD)
    return tmp_path


def _edit(old: str, new: str) -> Callable[[Path], str]:
    def build(root: Path) -> str:
        assert old in GOOD, old
        (root / "config.toml").write_text(GOOD.replace(old, new, 1))
        return "config.toml"

    return build


def _model(change: Callable[[Path], None]) -> Callable[[Path], str]:
    def build(root: Path) -> str:
        change(root / "model")
        return "config.toml"

    return build


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


def _remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _no_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer_config.json").unlink()


def _raw(text: str) -> Callable[[Path], str]:
    def build(root: Path) -> str:
        (root / "config.toml").write_text(text)
        return "config.toml"

    return build


def _config_is_a_folder(root: Path) -> str:
    (root / "conf.d").mkdir()
    return "conf.d"


def _not_utf8(root: Path) -> str:
    (root / "config.toml").write_bytes(GOOD.replace('"model"', '"mod\xe8le"').encode("latin-1"))
    return "config.toml"


def _prepared_manifest(text: str) -> Callable[[Path], str]:
    def build(root: Path) -> str:
        (root / "prepared" / "manifest.json").write_text(text)
        (root / "config.toml").write_text(GOOD.replace('source = "reviews.csv"', 'dir = "prepared"'))
        return "config.toml"

    return build


DIR = 'dir = "prepared"'

# case id -> (build the bad input in the work folder, returning the CONFIG argument; fragments the line names)
CASES: dict[str, tuple[Callable[[Path], str], tuple[str, ...]]] = {
    "misspelt-section-train": (_edit("[train]", "[trian]"), ("[trian]", "[train]")),
    "misspelt-section-model": (_edit("[model]", "[modle]"), ("[modle]", "[model]")),
    "misspelt-key-train": (_edit("max_steps", "max_step"), ("[train] max_step", "spelling")),
    "misspelt-key-data": (_edit("text_col", "text_column"), ("[data] text_column",)),
    "wrong-type": (_edit("max_steps = 2", 'max_steps = "two"'), ("[train] max_steps",)),
    "setting-outside-any-section": (_raw("epochs = 3\n" + GOOD), ("epochs", "outside any section")),
    "section-not-a-table": (
        _raw("train = 5\n" + GOOD.replace("[train]\n", "[train_]\n")),
        ("[train]", "table"),
    ),
    "unknown-job-key": (_edit('kind = "train"', 'kind = "train"\nname = "x"'), ("[job] name",)),
    "unknown-job-kind": (_edit('kind = "train"', 'kind = "teleport"'), ("[job] kind", "teleport")),
    "no-model-section": (_edit('[model]\nsource = "model"\n', ""), ("[model]", "add it")),
    "model-folder-missing": (
        _edit('source = "model"', 'source = "./models/bert"'),
        ("models/bert", "no such folder"),
    ),
    "model-path-under-existing-folder": (_edit('source = "model"', 'source = "model/bert"'), ("model/bert",)),
    "model-not-a-hub-name": (
        _edit('source = "model"', 'source = "bert base uncased"'),
        ("[model] source", "hub name"),
    ),
    "model-source-is-a-file": (
        _edit('source = "model"', 'source = "reviews.csv"'),
        ("reviews.csv", "is a file"),
    ),
    "model-without-config-json": (_model(_remove("config.json")), ("config.json",)),
    "config-json-not-json": (
        _model(_write("config.json", b'{"model_type": "bert",')),
        ("config.json", "JSON"),
    ),
    "config-json-without-model-type": (
        _model(_write("config.json", b'{"hidden_size": 8}')),
        ("config.json", "model_type"),
    ),
    "corrupt-tokenizer-json": (
        _model(_write("tokenizer.json", b'{"version": "1.0", "model": {')),
        ("tokenizer.json",),
    ),
    "tokenizer-config-not-json": (
        _model(_write("tokenizer_config.json", b"\x00\x01garbage")),
        ("tokenizer_config.json",),
    ),
    "no-tokenizer-files": (_model(_no_tokenizer), ("model", "no tokenizer")),
    "no-weights": (_model(_remove("tf_model.h5")), ("model", "no weights")),
    "only-torch-pickle": (
        _model(lambda f: (f / "tf_model.h5").rename(f / "pytorch_model.bin")),
        ("pytorch_model.bin", "safetensors"),
    ),
    "max-length-past-the-model": (_edit("max_length = 32", "max_length = 512"), ("[train] max_length", "64")),
    "data-source-missing": (_edit('"reviews.csv"', '"reveiws.csv"'), ("[data] source", "reveiws.csv")),
    "data-source-a-directory": (_edit('"reviews.csv"', '"prepared"'), ("[data] source", "directory")),
    "data-text-column-missing": (
        _edit('text_col = "text"', 'text_col = "review"'),
        ("[data] text_col", "review"),
    ),
    "data-dir-without-manifest": (_edit('source = "reviews.csv"', 'dir = "model"'), ("manifest.json",)),
    "data-dir-missing": (_edit('source = "reviews.csv"', 'dir = "prepped"'), ("[data] dir", "prepped")),
    "data-dir-is-a-file": (
        _edit('source = "reviews.csv"', 'dir = "reviews.csv"'),
        ("[data] dir", "is a file"),
    ),
    "data-manifest-not-json": (_prepared_manifest('{"version": 1,'), ("manifest.json", "JSON")),
    "dir-and-source-both": (
        _edit('source = "reviews.csv"', 'source = "reviews.csv"\n' + DIR),
        ("[data]", "dir and source"),
    ),
    "no-data-at-all": (_edit('source = "reviews.csv"\n', ""), ("[data]", "source")),
    "on-fail-unknown": (
        _edit('label_col = "label"', 'label_col = "label"\non_fail = "ignore"'),
        ("[data] on_fail",),
    ),
    "data-tokenizer-missing": (
        _edit('label_col = "label"', 'label_col = "label"\ntokenizer = "./tok"'),
        ("[data] tokenizer",),
    ),
    "toml-syntax-error": (_edit("[train]", "[train"), ("config.toml", "not valid TOML")),
    "config-not-utf8": (_not_utf8, ("config.toml", "UTF-8")),
    "config-is-a-directory": (_config_is_a_folder, ("conf.d", "directory")),
    "config-missing": (lambda root: "confg.toml", ("confg.toml", "no such file")),
    "selftest-misspelt-key": (
        _raw('[job]\nkind = "selftest"\n[selftest]\nstpes = 3\n'),
        ("[selftest] stpes",),
    ),
    "prepare-without-source": (
        _raw('[job]\nkind = "prepare"\n[data]\ntext_col = "text"\n'),
        ("[data] source",),
    ),
    "predict-misspelt-section": (
        _raw('[job]\nkind = "predict"\n[prediction]\nmodel = "m"\n'),
        ("[prediction]", "[predict]"),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_configuration_is_refused_before_a_session_exists(case: str, workdir: Path) -> None:
    build, names = CASES[case]
    config = build(workdir)
    sessions = workdir / "sessions"
    before = Files(workdir)
    out = ftc("--sessions-dir", str(sessions), "train", config, "--detach", cwd=workdir)
    refused(out, *names, case=f"config:{case}")
    before.assert_unchanged(no_new_files=True)
    assert not sessions.exists() or not any(sessions.iterdir()), "a refused configuration made a session"


def test_the_unbroken_configuration_passes_every_check(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The baseline the cases break is itself good: what is refused is the one thing each case changes."""
    import tomllib

    from engine.jobs import validate

    monkeypatch.chdir(workdir)
    for variant in (GOOD, GOOD.replace('source = "reviews.csv"', DIR)):
        validate("train", tomllib.loads(variant))
    config = tomllib.loads(GOOD)
    validate("train", config)
    assert config["model"]["source"] == str(workdir / "model")  # made absolute: the engine runs elsewhere
    assert config["data"]["source"] == str(workdir / "reviews.csv")
