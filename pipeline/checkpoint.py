"""Finds and checks a pretrained checkpoint before any component runs.

A checkpoint without `vocab.txt`, with an architecture `transformers` cannot put a TensorFlow
classification head on, or missing from an offline machine would otherwise fail deep inside
Transform or the Trainer. This check fails in seconds with one message, and hands the components
a local folder plus the tokenizer settings the in-graph WordPiece must copy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from typing import Any

VOCAB_FILE = "vocab.txt"
# Weight files `from_pretrained` can load into a TF model without PyTorch installed.
_WEIGHT_FILES = ("tf_model.h5", "model.safetensors")


class CheckpointError(ValueError):
    """The pretrained checkpoint cannot be used; the message says why and how to fix it."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A usable local checkpoint and the tokenizer settings read from its files."""

    path: str
    model_type: str
    vocab_path: str
    lower_case: bool
    strip_accents: bool
    cls_token: str
    sep_token: str
    pad_token: str
    unk_token: str
    cls_id: int
    sep_id: int
    pad_id: int
    unk_id: int
    vocab_size: int
    # The sentence pooling a sentence-transformers checkpoint declares (1_Pooling/config.json):
    # "mean" or "cls"; empty when it declares none.
    declared_pooling: str
    # SHA-256 of the files the run reads: replacing the checkpoint invalidates cached executions.
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Checkpoint":
        return cls(**values)


def resolve_checkpoint(name: str, max_seq_length: int) -> Checkpoint:
    """Resolves `name` (a folder or a hub id in the local cache) and checks it can be fine-tuned.

    Raises:
      CheckpointError: not available locally, no `vocab.txt`, no TF-loadable weights, an
        architecture without TF sequence classification, or special tokens missing from the vocab.
    """
    path = _local_folder(name)
    config = _read_json(path / "config.json", name)
    model_type = config.get("model_type", "")
    supported = _supported_model_types()
    if model_type not in supported:
        raise CheckpointError(
            f"checkpoint {name} has architecture {model_type!r}, which transformers cannot load as "
            f"a TensorFlow sequence classifier; use one of: {', '.join(sorted(supported))}")
    vocab_path = path / VOCAB_FILE
    if not vocab_path.is_file():
        found = _other_tokenizer(path)
        raise CheckpointError(
            f"checkpoint {name} has no {VOCAB_FILE}"
            + (f" but {found}, which the graph cannot reproduce yet (byte-level BPE and "
               "SentencePiece are not supported)" if found else "")
            + ": the in-graph tokenizer is WordPiece and needs it; use a BERT-family checkpoint "
            "(BERT, MiniLM, DistilBERT, ELECTRA)")
    weights = [path / file for file in _WEIGHT_FILES if (path / file).is_file()]
    if not weights:
        raise CheckpointError(
            f"checkpoint {name} has neither {' nor '.join(_WEIGHT_FILES)}: save it with "
            "save_pretrained(..., safe_serialization=True) (PyTorch .bin files need torch)")
    if config.get("max_position_embeddings", max_seq_length) < max_seq_length:
        raise CheckpointError(
            f"model.max_seq_length {max_seq_length} exceeds the checkpoint's "
            f"max_position_embeddings {config['max_position_embeddings']}: lower it")

    tokenizer_config = _read_optional_json(path / "tokenizer_config.json")
    special_tokens = {**_read_optional_json(path / "special_tokens_map.json"), **tokenizer_config}
    tokens = {role: _token_text(special_tokens.get(f"{role}_token", default))
              for role, default in (("cls", "[CLS]"), ("sep", "[SEP]"), ("pad", "[PAD]"),
                                    ("unk", "[UNK]"))}
    vocabulary = vocab_path.read_text(encoding="utf-8").splitlines()
    ids = {token: index for index, token in reversed(list(enumerate(vocabulary)))}
    missing = [token for token in tokens.values() if token not in ids]
    if missing:
        raise CheckpointError(f"{vocab_path} lacks the special token(s) {missing}: the checkpoint's "
                              "vocabulary and tokenizer_config.json do not belong together")
    # Hugging Face's BERT tokenizer strips accents whenever it lower-cases, unless told otherwise.
    lower_case = bool(tokenizer_config.get("do_lower_case", True))
    strip_accents = tokenizer_config.get("strip_accents")
    return Checkpoint(
        path=str(path), model_type=model_type, vocab_path=str(vocab_path),
        lower_case=lower_case,
        strip_accents=lower_case if strip_accents is None else bool(strip_accents),
        cls_token=tokens["cls"], sep_token=tokens["sep"], pad_token=tokens["pad"],
        unk_token=tokens["unk"], cls_id=ids[tokens["cls"]], sep_id=ids[tokens["sep"]],
        pad_id=ids[tokens["pad"]], unk_id=ids[tokens["unk"]], vocab_size=len(vocabulary),
        declared_pooling=_declared_pooling(path),
        fingerprint=_fingerprint([path / "config.json", vocab_path, *weights,
                                  path / "tokenizer_config.json"]))


def _declared_pooling(path: pathlib.Path) -> str:
    """mean or cls, as a sentence-transformers checkpoint's pooling module says; else empty."""
    pooling = _read_optional_json(path / "1_Pooling" / "config.json")
    if pooling.get("pooling_mode_mean_tokens"):
        return "mean"
    return "cls" if pooling.get("pooling_mode_cls_token") else ""


def _local_folder(name: str) -> pathlib.Path:
    """A folder as given, or a hub id's snapshot in the Hugging Face cache (downloaded if online)."""
    folder = pathlib.Path(name).expanduser()
    if folder.is_dir():
        return folder.resolve()
    if folder.is_absolute() or name.startswith(".") or name.count("/") > 1:
        raise CheckpointError(f"checkpoint folder {name} does not exist: set model.pretrained to "
                              "a folder written by save_pretrained, or to a hub id")
    from huggingface_hub import snapshot_download  # pylint: disable=import-outside-toplevel
    from huggingface_hub.utils import HfHubHTTPError  # pylint: disable=import-outside-toplevel

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    try:
        return pathlib.Path(snapshot_download(name, local_files_only=True))
    except (OSError, ValueError, HfHubHTTPError) as cached_error:
        if offline:
            raise CheckpointError(_not_local_message(name)) from cached_error
    try:
        return pathlib.Path(snapshot_download(name, allow_patterns=[
            "*.json", VOCAB_FILE, *_WEIGHT_FILES]))
    except Exception as error:  # pylint: disable=broad-except
        raise CheckpointError(_not_local_message(name)) from error


# Hugging Face tokenizer classes that are WordPiece over vocab.txt (what the graph reproduces).
_WORDPIECE_CLASSES = ("BertTokenizer", "DistilBertTokenizer", "ElectraTokenizer",
                      "MobileBertTokenizer", "SqueezeBertTokenizer")


def _other_tokenizer(path: pathlib.Path) -> str:
    """What tokenizer a checkpoint without vocab.txt has, in words ('' when none is found)."""
    if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        return "a byte-level BPE tokenizer (vocab.json + merges.txt, as RoBERTa's)"
    models = sorted(model.name for model in path.glob("*.model"))
    if models:
        return (f"a SentencePiece tokenizer ({', '.join(models)}, as ALBERT's, XLM-RoBERTa's or "
                "DeBERTa-v3's)")
    if (path / "tokenizer.json").is_file():
        kind = (_read_json(path / "tokenizer.json", str(path)).get("model") or {}).get("type", "")
        if kind and kind != "WordPiece":
            return f"a {kind} tokenizer (tokenizer.json)"
    tokenizer_class = _read_optional_json(path / "tokenizer_config.json").get(
        "tokenizer_class") or ""
    if tokenizer_class and tokenizer_class.removesuffix("Fast") not in _WORDPIECE_CLASSES:
        return f"the tokenizer class {tokenizer_class}"
    return ""


def _not_local_message(name: str) -> str:
    from huggingface_hub import constants  # pylint: disable=import-outside-toplevel

    return (f"checkpoint {name!r} is not available locally (not in the Hugging Face cache "
            f"{constants.HF_HUB_CACHE}) and cannot be downloaded: on a machine with internet run "
            f"`huggingface-cli download {name}` and copy the cache, or set model.pretrained to a "
            "local folder (`make pretrained` installs an offline all-MiniLM-L6-v2)")


def _supported_model_types() -> set[str]:
    # pylint: disable-next=import-outside-toplevel
    from transformers.models.auto.modeling_tf_auto import (
        TF_MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES)

    return set(TF_MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES)


def _read_json(path: pathlib.Path, name: str) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {name} has no {path.name}: it is not a transformers "
                              "checkpoint folder (save it with save_pretrained)")
    return _read_optional_json(path)


def _read_optional_json(path: pathlib.Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON ({error})") from error


def _token_text(token: Any) -> str:
    """Special tokens are strings or, in newer files, {"content": ...} objects."""
    return token["content"] if isinstance(token, dict) else str(token)


def _fingerprint(paths: list[pathlib.Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path.is_file():
            digest.update(path.name.encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()
