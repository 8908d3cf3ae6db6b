"""Finds and checks a pretrained checkpoint before any component runs.

A checkpoint whose tokenizer the graph cannot reproduce, with an architecture `transformers`
cannot put a TensorFlow classification head on, or missing from an offline machine would
otherwise fail deep inside Transform or the Trainer. This check fails in seconds with one message,
and hands the components a local folder plus the tokenizer settings the in-graph tokenizer
(WordPiece over `vocab.txt`, SentencePiece over the checkpoint's `.model`, or byte-level BPE over
its vocabulary and merges) must copy.
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
    # "wordpiece" (tokenizer_file is vocab.txt), "sentencepiece" (the checkpoint's .model) or
    # "bpe", byte-level (merges.txt, or tokenizer.json where the merges are only there).
    tokenizer: str
    tokenizer_file: str
    cls_token: str
    sep_token: str
    pad_token: str
    unk_token: str
    cls_id: int
    sep_id: int
    pad_id: int
    unk_id: int
    vocab_size: int
    # Separators between the texts of a pair: 1 for [CLS] a [SEP] b [SEP], 2 for RoBERTa's
    # <s> a </s></s> b </s>; and the token type of the second text (0 where a model has none).
    pair_separators: int
    pair_token_type: int
    # The normalizer steps the graph applies before the tokenizer (`NORMALIZER_STEPS`, in order):
    # BERT's lower-casing and accent stripping, a SentencePiece checkpoint's Hugging Face
    # normalizer before the model's own, a byte-level BPE's prefix space; and, SentencePiece only,
    # whether a trailing space is a piece of its own (ALBERT's tokenizer keeps it; the others
    # strip it).
    normalizer_steps: tuple[str, ...]
    trailing_space_piece: bool
    # The sentence pooling a sentence-transformers checkpoint declares (1_Pooling/config.json):
    # "mean" or "cls"; empty when it declares none.
    declared_pooling: str
    # SHA-256 of the files the run reads: replacing the checkpoint invalidates cached executions.
    fingerprint: str

    @property
    def lower_case(self) -> bool:
        return "lowercase" in self.normalizer_steps

    @property
    def strip_accents(self) -> bool:
        return "strip_accents" in self.normalizer_steps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Checkpoint":
        return cls(**{**values, "normalizer_steps": tuple(values["normalizer_steps"])})


def resolve_checkpoint(name: str, max_seq_length: int) -> Checkpoint:
    """Resolves `name` (a folder or a hub id in the local cache) and checks it can be fine-tuned.

    Raises:
      CheckpointError: not available locally, no TF-loadable weights, an architecture without
        TF sequence classification, too few positions, or a tokenizer the graph cannot
        reproduce (not WordPiece, SentencePiece or byte-level BPE, options or special tokens
        it does not copy).
    """
    path = _local_folder(name)
    config = _read_json(path / "config.json", name)
    model_type = config.get("model_type", "")
    supported = _supported_model_types()
    if model_type not in supported:
        raise CheckpointError(
            f"checkpoint {name} has architecture {model_type!r}, which transformers cannot load as "
            f"a TensorFlow sequence classifier; use one of: {', '.join(sorted(supported))}")
    weights = [path / file for file in _WEIGHT_FILES if (path / file).is_file()]
    if not weights:
        raise CheckpointError(
            f"checkpoint {name} has neither {' nor '.join(_WEIGHT_FILES)}: save it with "
            "save_pretrained(..., safe_serialization=True) (PyTorch .bin files need torch)")
    # RoBERTa's family numbers positions from pad_token_id + 1: two fewer are usable.
    positions = config.get("max_position_embeddings", max_seq_length) - (
        config.get("pad_token_id", 1) + 1 if model_type in _OFFSET_POSITIONS else 0)
    if positions < max_seq_length:
        raise CheckpointError(
            f"model.max_seq_length {max_seq_length} exceeds the {positions} positions of the "
            "checkpoint (its max_position_embeddings): lower it")

    if (path / VOCAB_FILE).is_file():
        tokenizer = _wordpiece(path, name)
    elif sorted(path.glob("*.model")):
        tokenizer = _sentencepiece(path, name)
    elif _has_byte_level_bpe(path):
        tokenizer = _byte_level_bpe(path, name)
    else:
        found = _other_tokenizer(path)
        raise CheckpointError(
            f"checkpoint {name} has no {VOCAB_FILE}, SentencePiece .model or byte-level BPE "
            "vocabulary and merges" + (f" but {found}, which the graph cannot reproduce"
                                       if found else "")
            + ": the in-graph tokenizers are WordPiece, SentencePiece and byte-level BPE; use a "
            "BERT-family (BERT, MiniLM, DistilBERT, ELECTRA), SentencePiece (ALBERT, "
            "XLM-RoBERTa, DeBERTa-v2/v3, CamemBERT) or RoBERTa-family (RoBERTa, DistilRoBERTa) "
            "checkpoint")
    return Checkpoint(
        path=str(path), model_type=model_type, declared_pooling=_declared_pooling(path),
        fingerprint=_fingerprint([path / "config.json", pathlib.Path(tokenizer["tokenizer_file"]),
                                  *weights, path / "tokenizer_config.json",
                                  path / "tokenizer.json", path / _BPE_VOCABULARY]),
        **tokenizer)


def _wordpiece(path: pathlib.Path, name: str) -> dict[str, Any]:
    """The WordPiece settings: vocab.txt, its special ids and BERT's case and accent rules."""
    vocab_path = path / VOCAB_FILE
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
    steps = (("lowercase",) if lower_case else ()) + (
        ("nfd", "strip_accents") if (lower_case if strip_accents is None else strip_accents)
        else ())
    return dict(
        tokenizer="wordpiece", tokenizer_file=str(vocab_path), cls_token=tokens["cls"],
        sep_token=tokens["sep"], pad_token=tokens["pad"], unk_token=tokens["unk"],
        cls_id=ids[tokens["cls"]], sep_id=ids[tokens["sep"]], pad_id=ids[tokens["pad"]],
        unk_id=ids[tokens["unk"]], vocab_size=len(vocabulary),
        pair_separators=1, pair_token_type=1, normalizer_steps=steps, trailing_space_piece=False)


# Normalizer steps the graph reproduces (`modules.checkpoint_tokenizers`). Of a SentencePiece
# checkpoint's Hugging Face normalizer, "Precompiled" (the model's own character map) and the
# whitespace steps are the SentencePiece op's; the others run before it, in the normalizer's order.
# A byte-level BPE's "prefix_space" (its pre-tokenizer's add_prefix_space) is a step too: a space
# before a text that does not open with one.
NORMALIZER_STEPS = ("quotes", "nfd", "nfkd", "strip_accents", "lowercase", "prefix_space")


def _sentencepiece(path: pathlib.Path, name: str) -> dict[str, Any]:
    """The SentencePiece settings, read from the checkpoint's own Hugging Face tokenizer.

    The reference for parity is what `AutoTokenizer` loads, so its normalizer (from
    tokenizer.json, or converted from the .model file) decides the steps, and its special-token
    template decides the pair format; a step the graph does not reproduce is refused here.
    """
    tokenizer = _auto_tokenizer(path, name)
    model_file = pathlib.Path(getattr(tokenizer, "vocab_file", "") or "")
    if not model_file.is_file():
        [model_file, *_] = sorted(path.glob("*.model"))
    steps, trailing_space_piece = _normalizer_steps(tokenizer, name)
    return dict(tokenizer="sentencepiece", tokenizer_file=str(model_file),
                normalizer_steps=steps, trailing_space_piece=trailing_space_piece,
                **_special_tokens(tokenizer, name))


_BPE_VOCABULARY, _BPE_MERGES = "vocab.json", "merges.txt"
# The settings of a Hugging Face BPE model the graph's merge loop reproduces: their defaults
# (older tokenizer.json files leave them out or write null).
_BPE_MODEL_DEFAULTS = {"dropout": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                       "fuse_unk": False, "byte_fallback": False, "ignore_merges": False}


def _has_byte_level_bpe(path: pathlib.Path) -> bool:
    if (path / _BPE_VOCABULARY).is_file() and (path / _BPE_MERGES).is_file():
        return True
    tokenizer = _read_optional_json(path / "tokenizer.json")
    return (tokenizer.get("model") or {}).get("type") == "BPE" and "ByteLevel" in json.dumps(
        tokenizer.get("pre_tokenizer"))


def _byte_level_bpe(path: pathlib.Path, name: str) -> dict[str, Any]:
    """The byte-level BPE settings (RoBERTa, DistilRoBERTa), read from the checkpoint's own fast
    tokenizer: every option the graph's merge loop does not copy is refused by name."""
    tokenizer = _auto_tokenizer(path, name)
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model = backend.get("model") or {}
    pre_tokenizer = backend.get("pre_tokenizer") or {}
    if pre_tokenizer.get("type") == "Sequence" and len(pre_tokenizer["pretokenizers"]) == 1:
        [pre_tokenizer] = pre_tokenizer["pretokenizers"]
    problems = [f"its normalizer {json.dumps(backend['normalizer'])[:120]}"
                ] if backend.get("normalizer") else []
    if pre_tokenizer.get("type") != "ByteLevel" or not pre_tokenizer.get("use_regex", True):
        problems.append(f"its pre-tokenizer {json.dumps(pre_tokenizer)[:120]} (the graph splits "
                        "as ByteLevel with GPT-2's pattern)")
    problems += [f"the BPE option {option}={model.get(option)!r}"
                 for option, default in _BPE_MODEL_DEFAULTS.items()
                 if model.get(option) not in (None, default)]
    from transformers.models.gpt2.tokenization_gpt2 import (  # pylint: disable=import-outside-toplevel
        bytes_to_unicode)

    vocabulary = model.get("vocab") or {}
    missing = [character for character in bytes_to_unicode().values()
               if character not in vocabulary]
    if missing:
        problems.append(f"a vocabulary without {len(missing)} of the 256 byte symbols "
                        f"({''.join(missing[:10])}...)")
    if problems:
        raise CheckpointError(
            f"checkpoint {name}'s byte-level BPE tokenizer has " + "; ".join(problems)
            + ", which the graph does not reproduce: the in-graph BPE copies RoBERTa's (ByteLevel "
            "pre-tokenizer, no normalizer, plain merges over all 256 bytes)")
    merges_file = path / _BPE_MERGES
    return dict(tokenizer="bpe", tokenizer_file=str(
        merges_file if merges_file.is_file() else path / "tokenizer.json"),
        normalizer_steps=("prefix_space",) if pre_tokenizer.get("add_prefix_space") else (),
        trailing_space_piece=False, **_special_tokens(tokenizer, name))


def _special_tokens(tokenizer: Any, name: str) -> dict[str, Any]:
    """Special tokens, vocabulary size and pair format of a fast tokenizer, from its own template
    (what `AutoTokenizer` makes is the reference for parity)."""
    template = tokenizer.build_inputs_with_special_tokens([-1], [-2])
    types = tokenizer.create_token_type_ids_from_sequences([-1], [-2])
    ids = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
           tokenizer.unk_token_id)
    if None in ids:
        raise CheckpointError(f"checkpoint {name}'s tokenizer lacks a [CLS], [SEP], [PAD] or [UNK] "
                              "token (its tokenizer files are incomplete)")
    cls_id, sep_id, _, _ = ids
    separators = template.index(-2) - template.index(-1) - 1
    if (template[:2] != [cls_id, -1] or template[-1] != sep_id or separators not in (1, 2)
            or template[2:2 + separators] != [sep_id] * separators):
        raise CheckpointError(
            f"checkpoint {name}'s tokenizer packs a pair as {template} (-1, -2: the texts), "
            "which the graph does not reproduce: [CLS] a [SEP] b [SEP] or <s> a </s></s> b </s>")
    return dict(
        cls_token=tokenizer.cls_token, sep_token=tokenizer.sep_token,
        pad_token=tokenizer.pad_token, unk_token=tokenizer.unk_token,
        cls_id=cls_id, sep_id=sep_id, pad_id=ids[2], unk_id=ids[3], vocab_size=len(tokenizer),
        pair_separators=separators, pair_token_type=types[-1])


def reference_tokenizer(path: str) -> Any:
    """The checkpoint's Hugging Face tokenizer as the in-graph tokenizers' reference.

    A special token's string inside a text ("<s>", "[SEP]", "<mask>") stays text, as the graph
    tokenizes it: Hugging Face's default would make it the special token, which would let a client
    forge a pair's separator or a mask in the text it sends.
    """
    from transformers import AutoTokenizer  # pylint: disable=import-outside-toplevel

    return AutoTokenizer.from_pretrained(path, split_special_tokens=True)


def _auto_tokenizer(path: pathlib.Path, name: str) -> Any:
    try:
        tokenizer = reference_tokenizer(str(path))
    # The `tokenizers` library panics on some inconsistent files: its PanicException derives
    # from BaseException.
    except BaseException as error:  # pylint: disable=broad-exception-caught
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        raise CheckpointError(f"checkpoint {name}'s tokenizer does not load with transformers' "
                              f"AutoTokenizer ({error})") from error
    if not tokenizer.is_fast:
        raise CheckpointError(f"checkpoint {name}'s tokenizer loads only as the slow "
                              f"{type(tokenizer).__name__}: add its tokenizer.json")
    return tokenizer


def _normalizer_steps(tokenizer: Any, name: str) -> tuple[tuple[str, ...], bool]:
    """The graph steps of a fast tokenizer's normalizer, and whether it keeps a trailing space.

    Converters write one of two shapes: [Precompiled, Strip, Replace(" {2,}")] (XLM-R,
    DeBERTa-v2, CamemBERT: the SentencePiece op's own whitespace trimming) or ALBERT's
    [Replace(``), Replace(''), NFKD, StripAccents, Lowercase, Precompiled, Replace(" {2,}")].
    """
    normalizer = json.loads(tokenizer.backend_tokenizer.to_str()).get("normalizer") or {}
    listed = normalizer.get("normalizers", [normalizer] if normalizer else [])
    steps, strips = [], False
    for step in listed:
        kind = step.get("type")
        pattern = (step.get("pattern") or {})
        if kind == "Replace" and pattern.get("String") in ("``", "''") and step["content"] == '"':
            if "quotes" not in steps:
                steps.append("quotes")
        elif kind == "NFKD":
            steps.append("nfkd")
        elif kind == "StripAccents":
            steps.append("strip_accents")
        elif kind == "Lowercase":
            steps.append("lowercase")
        elif kind == "Strip" and step.get("strip_right"):
            strips = True
        elif not (kind == "Precompiled"
                  or (kind == "Replace" and pattern.get("Regex") == " {2,}")):
            raise CheckpointError(
                f"checkpoint {name}'s tokenizer normalizes text with {json.dumps(step)[:120]}, "
                f"which the graph does not reproduce (it does {', '.join(NORMALIZER_STEPS)} "
                "and the SentencePiece model's own normalization)")
    return tuple(steps), not strips


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
            "*.json", VOCAB_FILE, "*.model", *_WEIGHT_FILES]))
    except Exception as error:  # pylint: disable=broad-except
        raise CheckpointError(_not_local_message(name)) from error


# Model types whose position ids start after pad_token_id (RoBERTa's family).
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer", "xlm-roberta-xl")
# Hugging Face tokenizer classes that are WordPiece over vocab.txt (what the graph reproduces).
_WORDPIECE_CLASSES = ("BertTokenizer", "DistilBertTokenizer", "ElectraTokenizer",
                      "MobileBertTokenizer", "SqueezeBertTokenizer")


def _other_tokenizer(path: pathlib.Path) -> str:
    """What tokenizer a checkpoint without vocab.txt or .model has, in words ('' when none)."""
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
