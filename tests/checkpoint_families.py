"""Tiny checkpoints of the SentencePiece and byte-level BPE families, made offline as a user
would download them.

Only one pretrained checkpoint exists on these machines (MiniLM, WordPiece), so the tests and
`benchmarks/tokenizer_parity.py` build the others: a SentencePiece model (the `sentencepiece`
library) or a byte-level BPE (the `tokenizers` library) trained on the default data, the family's
Hugging Face tokenizer over it, a randomly initialised TF model of the architecture (2 layers of
32), all saved with `save_pretrained`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import pathlib
from typing import Any, Callable

from tests.conftest import DEFAULT_DATA

SEQUENCE_LENGTH = 64
# Texts where tokenizers part ways: what the graph must tokenize as the reference does.
HARD_CASES = [
    "Café crème, naïve façade à l'œil",  # accents
    "東京の夜景は素晴らしい",  # CJK, not in the SentencePiece models' training text
    "Love it 🎉🎉 👍🏽",  # emoji and a skin-tone modifier
    "ctrl\x07char\u200bzero\ufeffwidth",  # control and format characters
    "runs   of\t\tspaces\n\nand lines\u00a0no-break\u3000ideographic",
    "  leading and trailing  ",
    "   ",
    "",
    "``quoted'' and \"quoted\"",
    "İstanbul ΣΑΣ straße ﬁ ① ＦＵＬＬ ｗｉｄｔｈ",  # case folding and compatibility forms
    "ΟΔΟΣ ΣΟΦΟΣ ς",  # a final capital sigma lower-cases to σ, a written ς stays
    "9, 10, 11, the end.",
    # GPT-2's pre-tokenizer: contractions after white space, runs of Unicode white space before a
    # word (its lookahead), the character keras-nlp's BPE uses as a marker.
    "\n's  'll x \tit's\u00a0\u00a0no\u2003\u2003way they're ६ 12345 3.14",
]
# Special tokens' strings in a text stay text (`pipeline.checkpoint.reference_tokenizer`).
SPECIAL_TOKEN_STRINGS = "<s> [CLS] a <mask> b [SEP] </s></s> [MASK] <unk> <pad>"


@dataclasses.dataclass(frozen=True)
class Family:
    model_type: str
    tokenizer: str  # as `Checkpoint.tokenizer`
    model_file: str  # the tokenizer file `Checkpoint.tokenizer_file` names
    # Special pieces as the family's released SentencePiece models place them.
    trainer_options: dict[str, Any]
    classes: Callable[[], tuple[Any, Any, Any]]  # (tokenizer, config, TF classifier)


def _transformers(*names: str) -> Callable[[], tuple[Any, ...]]:
    def classes():
        import transformers  # pylint: disable=import-outside-toplevel

        return tuple(getattr(transformers, name) for name in names)
    return classes


FAMILIES = {
    "xlm-roberta": Family("xlm-roberta", "sentencepiece", "sentencepiece.bpe.model", {}, _transformers(
        "XLMRobertaTokenizer", "XLMRobertaConfig", "TFXLMRobertaForSequenceClassification")),
    "albert": Family("albert", "sentencepiece", "spiece.model", dict(
        pad_id=0, unk_id=1, bos_id=2, eos_id=3, control_symbols=["[CLS]", "[SEP]", "[MASK]"]),
        _transformers("AlbertTokenizer", "AlbertConfig", "TFAlbertForSequenceClassification")),
    "deberta-v2": Family("deberta-v2", "sentencepiece", "spm.model", dict(
        pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]",
        eos_piece="[SEP]", unk_piece="[UNK]"),
        _transformers("DebertaV2Tokenizer", "DebertaV2Config",
                      "TFDebertaV2ForSequenceClassification")),
    # RoBERTa's special tokens in its ids 0-3, <mask> last (as roberta-base's vocab.json).
    "roberta": Family("roberta", "bpe", "merges.txt", dict(
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]),
        _transformers("RobertaTokenizerFast", "RobertaConfig",
                      "TFRobertaForSequenceClassification")),
}
# RoBERTa's family numbers positions after the padding id.
_OFFSET_POSITIONS = ("xlm-roberta", "roberta")


def default_texts() -> list[str]:
    with DEFAULT_DATA.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def build_checkpoint(family_name: str, folder: pathlib.Path, vocab_size: int = 1000,
                     num_labels: int = 2) -> pathlib.Path:
    """Writes a tiny `family_name` checkpoint into `folder` and returns it."""
    from transformers import AutoTokenizer  # pylint: disable=import-outside-toplevel

    family = FAMILIES[family_name]
    tokenizer_class, config_class, model_class = family.classes()
    folder.mkdir(parents=True, exist_ok=True)
    if family.tokenizer == "bpe":
        _train_byte_level_bpe(family, folder, vocab_size)
        tokenizer_class(vocab_file=str(folder / "vocab.json"),
                        merges_file=str(folder / family.model_file)).save_pretrained(folder)
    else:
        _train_sentencepiece(family, folder, vocab_size)
        tokenizer_class(vocab_file=str(folder / family.model_file)).save_pretrained(folder)
    # As downloaded from the hub: with the fast tokenizer's tokenizer.json too.
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.save_pretrained(folder)
    positions = SEQUENCE_LENGTH + (tokenizer.pad_token_id + 1
                                   if family_name in _OFFSET_POSITIONS else 0)
    config = config_class(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=positions, num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id, **({"embedding_size": 32}
                                                if family_name == "albert" else {}))
    classifier = model_class(config)
    classifier(classifier.dummy_inputs)
    classifier.save_pretrained(folder)
    return folder


def _train_sentencepiece(family: Family, folder: pathlib.Path, vocab_size: int) -> None:
    import sentencepiece  # pylint: disable=import-outside-toplevel

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(default_texts()), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", character_coverage=0.9995, hard_vocab_limit=False, minloglevel=2,
        **family.trainer_options)
    (folder / family.model_file).write_bytes(model.getvalue())


def _train_byte_level_bpe(family: Family, folder: pathlib.Path, vocab_size: int) -> None:
    """vocab.json and merges.txt, as `tokenizers` trains RoBERTa's kind of tokenizer."""
    from tokenizers import ByteLevelBPETokenizer  # pylint: disable=import-outside-toplevel

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(default_texts(), vocab_size=vocab_size, min_frequency=2,
                                  show_progress=False, **family.trainer_options)
    tokenizer.save_model(str(folder))
