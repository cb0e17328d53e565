"""Loading tokenizers and TF sequence classifiers from a hub name or folder, PyTorch safetensors included."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, ModelError, brief

# transformers' TF classes need Keras 2; set before anything imports tensorflow.keras.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# Files worth fetching from the hub: configs, vocabularies and weights, never PyTorch pickles.
_HUB_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "*.h5", "merges.txt", "vocab.*"]


def resolve_source(source: str | os.PathLike[str]) -> Path:
    """A local folder holding the model: the folder itself, or a hub snapshot (cache first)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise ModelError(f"model source {source}: is a file; give the folder holding config.json")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(source), allow_patterns=_HUB_PATTERNS))
    except Exception as exc:
        raise ModelError(
            f"model source {str(source)!r}: not a local folder and not downloadable from the hub "
            f"({type(exc).__name__}); give a local folder or check the name and network"
        ) from None


def load_tokenizer(source: str | os.PathLike[str]) -> Any:
    """The (fast, where available) tokenizer stored with the model."""
    from transformers import AutoTokenizer

    folder = resolve_source(source)
    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:
        raise ModelError(
            f"{folder}: cannot load a tokenizer ({brief(exc) or type(exc).__name__}); "
            "the folder needs intact tokenizer files (tokenizer.json or vocab.txt): copy them again"
        ) from None


_TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
)


def tokenizer_fingerprint(source: str | os.PathLike[str]) -> str:
    """A hash of the tokenizer files, so a resume notices a changed vocabulary."""
    import hashlib

    folder = resolve_source(source)
    digest = hashlib.sha256()
    for name in _TOKENIZER_FILES:
        file = folder / name
        if file.is_file():
            digest.update(name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def tokenizer_file_hashes(source: str | os.PathLike[str]) -> dict[str, str]:
    """A hash per tokenizer file, so a refused resume can name the file that changed."""
    import hashlib

    folder = resolve_source(source)
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()[:16]
        for name in _TOKENIZER_FILES
        if (folder / name).is_file()
    }


# Models whose position ids start after the padding index: max_position_embeddings counts those too.
_OFFSET_POSITIONS = frozenset(
    {"roberta", "xlm-roberta", "camembert", "data2vec-text", "longformer", "roberta-prelayernorm", "xmod"}
)


def position_limit(config: dict[str, Any]) -> int | None:
    """The most tokens per text a model's position embeddings take, from its config (None: no limit).

    A plain dict (config.json as read from disk, or ``PretrainedConfig.to_dict()``), so the
    command line can check ``--max-length`` without importing transformers.
    """
    n = config.get("max_position_embeddings")
    if not isinstance(n, int) or n <= 0:
        return None
    if config.get("model_type") in _OFFSET_POSITIONS:
        pad = config.get("pad_token_id")
        n -= (pad if isinstance(pad, int) else 1) + 1
    return n


def max_input_length(source: str | os.PathLike[str]) -> int | None:
    """The longest input (in tokens) the model at ``source`` takes, if its config says."""
    from transformers import AutoConfig

    return position_limit(AutoConfig.from_pretrained(str(resolve_source(source))).to_dict())


def _safetensors_format(folder: Path) -> str | None:
    """'pt', 'tf' or None: which framework wrote the folder's safetensors, if it has any."""
    from safetensors import safe_open

    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    if single.is_file():
        first = single
    elif index.is_file():
        shard = next(iter(json.loads(index.read_text())["weight_map"].values()))
        first = folder / shard
    else:
        return None
    with safe_open(str(first), framework="np") as fh:
        meta = fh.metadata() or {}
    return str(meta.get("format", "pt"))


def _read_safetensors(folder: Path) -> dict[str, Any]:
    """All tensors of the folder's (possibly sharded) safetensors as numpy arrays."""
    from safetensors.numpy import load_file

    index = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").is_file():
        return load_file(str(folder / "model.safetensors"))
    tensors: dict[str, Any] = {}
    for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
        tensors.update(load_file(str(folder / shard)))
    return tensors


def _set_aside_mismatched(model: Any, state: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Remove arrays whose shape differs from the model's weight of that name (e.g. a head for
    another number of labels); returns (name, shape in the file, shape in the model).

    transformers' converter would try to reshape them and fail (or, with equal sizes, scramble them).
    """
    from transformers.modeling_tf_pytorch_utils import TransposeType, convert_tf_weight_name_to_pt_weight_name

    # Base-model checkpoints name weights without the stem ("encoder..." not "bert.encoder...").
    stem = model.base_model_prefix
    strip = "" if any(k.startswith(stem) for k in state) else stem + "."
    mismatched = []
    for var in model.trainable_weights + model.non_trainable_weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(
            var.name, start_prefix_to_remove=strip, tf_weight_shape=var.shape
        )
        if name not in state:
            continue
        saved = tuple(state[name].shape)
        wanted = tuple(var.shape)
        if transpose is TransposeType.SIMPLE:
            wanted = wanted[::-1]
        elif transpose is not TransposeType.NO:
            wanted = tuple(sorted(wanted))  # convolutions: compare sizes, not layout
            saved = tuple(sorted(saved))
        # The converter squeezes and expands unit axes itself.
        if tuple(d for d in saved if d != 1) != tuple(d for d in wanted if d != 1):
            mismatched.append((name, tuple(state.pop(name).shape), tuple(var.shape)))
    return mismatched


def load_pt_safetensors(model: Any, folder: Path) -> dict[str, list[str]]:
    """Copy PyTorch-layout safetensors into a built TF model without torch; returns the loading info.

    transformers' TF from_pretrained opens these through a torch-only path; its name and
    layout mapping (load_pytorch_state_dict_in_tf2_model) works on plain numpy arrays.
    Weights whose shape differs (a head for another number of labels) keep their new initial values.
    """
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    state = _read_safetensors(folder)
    # Buffers, not weights: TF recomputes them.
    state = {k: v for k, v in state.items() if not k.endswith(("position_ids", "num_batches_tracked"))}
    model(model.dummy_inputs, training=False)  # build the variables, to compare shapes
    mismatched = _set_aside_mismatched(model, state)
    _, info = load_pytorch_state_dict_in_tf2_model(
        model,
        state,
        allow_missing_keys=True,
        output_loading_info=True,
        skip_logger_warnings=True,
        ignore_mismatched_sizes=True,
    )
    skipped = {name for name, _, _ in mismatched}
    info["missing_keys"] = [k for k in info["missing_keys"] if k not in skipped]
    info["mismatched_keys"] = mismatched + list(info.get("mismatched_keys", []))
    return _loading_info(info)


# Bump when what a converted-weights entry holds, or how it is read, changes.
_WEIGHTS_FORMAT = 1


def _weights_key(model: Any, folder: Path, num_labels: int) -> str:
    """The converted-weights entry's key: the checkpoint's and config's content, the labels, the versions.

    A content hash of the safetensors (not size and mtime): a checkpoint copied over another keeps
    neither reliably, and hashing ~100 MB costs ~0.1 s against a conversion of ~1 s.
    """
    import tensorflow as tf
    import transformers

    from engine import cache

    files = sorted(p.name for p in folder.glob("*.safetensors"))
    return cache.digest(
        _WEIGHTS_FORMAT,
        type(model).__name__,
        {name: cache.file_sha256(folder / name) for name in files},
        cache.file_sha256(folder / "config.json"),
        num_labels,
        transformers.__version__,
        tf.__version__,
    )


def _local_name(name: str) -> str:
    """A weight's name without the model's own scope, which Keras numbers per process (``..._1/``)."""
    return name.split("/", 1)[-1]


def _weight_digests(model: Any) -> list[bytes]:
    import hashlib

    return [hashlib.sha1(v.numpy().tobytes()).digest() for v in model.weights]


def _load_pt_cached(model: Any, folder: Path, num_labels: int) -> dict[str, list[str]]:
    """load_pt_safetensors, with the converted weights kept in the user cache (engine.cache ``weights/``).

    The entry holds the weights the conversion set (those it left at their initial values are not
    stored: a hit builds the model the same way, with the same seed, so they come out equal) and the
    loading info. A hit is bit-identical to a conversion; an unreadable entry is dropped and rebuilt.
    """
    import numpy as np

    from engine import cache

    key = _weights_key(model, folder, num_labels)
    base = cache.folder("weights")
    entry = None if base is None else base / f"{key}.npz"
    if entry is not None and entry.is_file():
        try:
            with np.load(entry, allow_pickle=False) as saved:
                info = json.loads(str(saved["__info__"]))
                arrays = {name: saved[name] for name in saved.files if name != "__info__"}
            model(model.dummy_inputs, training=False)  # build the variables, as a conversion does
            by_name = {_local_name(v.name): v for v in model.weights}
            if not set(arrays) <= set(by_name):
                raise ValueError("it names weights this model does not have")
            for name, value in arrays.items():
                if tuple(by_name[name].shape) != value.shape:
                    raise ValueError(f"{name} {value.shape}, model {tuple(by_name[name].shape)}")
            for name, value in arrays.items():
                by_name[name].assign(value)
            return {k: [str(x) for x in v] for k, v in info.items()}
        except Exception as exc:
            cache.drop(entry, f"unreadable converted weights ({brief(exc) or type(exc).__name__})")
    model(model.dummy_inputs, training=False)
    before = _weight_digests(model) if entry is not None else []
    info = load_pt_safetensors(model, folder)
    if entry is not None:
        after = _weight_digests(model)
        changed = {
            _local_name(v.name): v.numpy()
            for v, b, a in zip(model.weights, before, after, strict=True)
            if a != b
        }

        def write(path: Path) -> None:
            with open(path, "wb") as fh:
                np.savez(fh, __info__=np.array(json.dumps(info)), **changed)

        cache.store_file("weights", entry.name, write)
    return info


def _loading_info(info: dict[str, Any]) -> dict[str, list[str]]:
    """Loading info as text: key names, and 'name (file shape) -> (model shape)' for mismatches."""
    out = {k: [str(x) for x in v] for k, v in info.items() if k != "mismatched_keys"}
    out["mismatched_keys"] = [
        f"{name} {tuple(saved)} -> {tuple(now)}" for name, saved, now in info.get("mismatched_keys", [])
    ]
    return out


# [train] dropout keys -> the config attribute that holds them, first one the model's config has
# (BERT, RoBERTa, ELECTRA and kin; DistilBERT; ALBERT's classifier).
DROPOUT_ATTRIBUTES = {
    "dropout": ("hidden_dropout_prob", "dropout"),
    "attention_dropout": ("attention_probs_dropout_prob", "attention_dropout"),
    "classifier_dropout": ("classifier_dropout", "seq_classif_dropout", "classifier_dropout_prob"),
}


def set_dropout(config: Any, settings: dict[str, float | None]) -> None:
    """Override the config's dropout rates with the settings that are not None (keys of DROPOUT_ATTRIBUTES).

    A model type without such a rate is refused in one line naming the key and the type.
    """
    for key, value in settings.items():
        if value is None:
            continue
        attr = next((a for a in DROPOUT_ATTRIBUTES[key] if hasattr(config, a)), None)
        if attr is None:
            raise ConfigError(
                f"[train] {key}: {config.model_type} models have no such dropout setting; remove the key"
            )
        setattr(config, attr, float(value))


def load_model(
    source: str | os.PathLike[str],
    num_labels: int,
    id2label: dict[int, str] | None = None,
    label2id: dict[str, int] | None = None,
    *,
    seed: int | None = None,
    dropout: float | None = None,
    attention_dropout: float | None = None,
    classifier_dropout: float | None = None,
) -> Any:
    """A TFAutoModelForSequenceClassification; a missing or differently sized head is newly initialised.

    With ``seed`` the new head (and dropout seeds) are reproducible. Loading info
    (missing, unexpected and mismatched keys) is left on ``model.ftc_loading_info``.
    The dropout rates, where given, replace the pretrained config's (set_dropout); a BERT-like
    model whose classifier_dropout is unset uses its hidden dropout before the classifier too.
    """
    import tensorflow as tf
    from transformers import AutoConfig, TFAutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    # Its loading report goes to model.ftc_loading_info (the job logs it as an event), not to stderr.
    hf_logging.set_verbosity_error()
    from engine.cache import enable_xla_cache

    enable_xla_cache()  # before the first XLA compile (the optimizer's, at the first step)

    folder = resolve_source(source)
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder}: no config.json; give a transformers model folder or hub name")
    if id2label is None:
        id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
    if label2id is None:
        label2id = {name: i for i, name in id2label.items()}
    config = AutoConfig.from_pretrained(
        str(folder), num_labels=num_labels, id2label=id2label, label2id=label2id
    )
    set_dropout(
        config,
        {
            "dropout": dropout,
            "attention_dropout": attention_dropout,
            "classifier_dropout": classifier_dropout,
        },
    )
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    _enable_checkpointable_dropout()
    info: dict[str, list[str]] = {}
    has_tf_h5 = (folder / "tf_model.h5").is_file() or (folder / "tf_model.h5.index.json").is_file()
    st_format = _safetensors_format(folder)
    try:
        if has_tf_h5 or st_format == "tf":
            model, info = TFAutoModelForSequenceClassification.from_pretrained(
                str(folder), config=config, ignore_mismatched_sizes=True, output_loading_info=True
            )
            info = _loading_info(info)
        elif st_format is not None:
            model = TFAutoModelForSequenceClassification.from_config(config)
            info = _load_pt_cached(model, folder, num_labels)
        elif (folder / "pytorch_model.bin").is_file():
            raise ModelError(
                f"{folder}: only pytorch_model.bin (a torch pickle); convert it to safetensors "
                "or give a folder with model.safetensors or tf_model.h5"
            )
        else:
            raise ModelError(f"{folder}: no weights (model.safetensors or tf_model.h5)")
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"{folder}: cannot load the model ({brief(exc) or type(exc).__name__}); "
            "check that its weights and config.json belong together, or copy the folder again"
        ) from None
    model.ftc_loading_info = info
    init_dropout_generators(model)
    _align_function_uids()
    return model


_UID_STRIDE = 1 << 17


def _align_function_uids() -> None:
    """Move TensorFlow's uid counter on to the next multiple of _UID_STRIDE.

    Functions traced after this (the training step, the optimizer's XLA update) are named with
    that counter, and the name is part of the key of XLA's persistent compile cache: without this,
    a start that converted the weights (thousands of uids) and one that read them from the cache
    (half as many) trace under other names, and the second start compiles everything again.
    """
    from tensorflow.python.framework import ops

    uid = ops.uid()
    for _ in range(_UID_STRIDE - uid % _UID_STRIDE):
        ops.uid()


def _enable_checkpointable_dropout() -> None:
    """Dropout draws from tf.random.Generator variables whose state a checkpoint can hold.

    Legacy stateful random ops keep their position inside the kernel, where no
    checkpoint can reach it, and an exact resume needs the same dropout masks.
    """
    import tf_keras

    tf_keras.backend.experimental.enable_tf_random_generator()


def dropout_generators(model: Any) -> list[Any]:
    """The random generators of every dropout layer, in a stable order."""
    gens = []
    for layer in model.submodules:
        rg = getattr(layer, "_random_generator", None)
        if rg is not None and getattr(rg, "_generator", None) is not None:
            gens.append(rg._generator)
    return gens


def init_dropout_generators(model: Any) -> None:
    """Create the dropout generators now (they are otherwise made at the first training call)."""
    for layer in model.submodules:
        rg = getattr(layer, "_random_generator", None)
        if rg is not None:
            rg._maybe_init()


def load_for_prediction(model_dir: str | os.PathLike[str]) -> tuple[Any, Any, dict[int, str]]:
    """Tokenizer, model and id->label of a trained model folder (e.g. a session's model/)."""
    from transformers import AutoConfig

    folder = resolve_source(model_dir)
    config = AutoConfig.from_pretrained(str(folder))
    id2label = {int(k): str(v) for k, v in config.id2label.items()}
    label2id = {v: k for k, v in id2label.items()}
    model = load_model(folder, len(id2label), id2label, label2id)
    return load_tokenizer(folder), model, id2label
