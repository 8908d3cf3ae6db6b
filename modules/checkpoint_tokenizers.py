"""A pretrained checkpoint's own tokenizer as TF ops: WordPiece or SentencePiece.

The Transform graph, TextChecks and the served model all tokenize through these, so the ids are
the ones the checkpoint's Hugging Face tokenizer makes (TokenizerParity measures that) and no
Python tokenizer exists at serving.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from pipeline.checkpoint import Checkpoint

# As Hugging Face's `_clean_text`: control and format characters and U+FFFD are dropped...
_CONTROL_CHARACTERS = r"[^\P{C}\t\n\r]|\x{FFFD}"


class CheckpointTokenizer(tf.Module):
    """Maps each [batch] text column to ragged ids of its tokens (no special tokens)."""

    # The tokenizer's name in reports.
    display_name = ""

    def __init__(self, checkpoint: Checkpoint):
        super().__init__(name=f"{checkpoint.tokenizer}_tokenizer")
        self.checkpoint = checkpoint

    def ids(self, texts: Sequence[tf.Tensor]) -> list[tf.RaggedTensor]:
        return [self._text_ids(text) for text in texts]

    def _text_ids(self, text: tf.Tensor) -> tf.RaggedTensor:
        raise NotImplementedError


class WordPieceTokenizer(CheckpointTokenizer):
    """The checkpoint's WordPiece over its `vocab.txt` (an asset of the graph), after BERT's
    cleaning and the lower-casing and accent stripping its tokenizer config asks for
    (`Checkpoint.normalizer_steps`).
    """

    display_name = "WordPiece"

    def __init__(self, checkpoint: Checkpoint):
        super().__init__(checkpoint)
        self.wordpiece = tf_text.BertTokenizer(
            vocab_lookup_table=checkpoint.tokenizer_file, token_out_type=tf.int64,
            unknown_token=checkpoint.unk_token, lower_case=False)

    def _text_ids(self, text: tf.Tensor) -> tf.RaggedTensor:
        text = tf.strings.regex_replace(text, _CONTROL_CHARACTERS, "")
        # ... and every space separator (U+00A0, U+3000...) is a space.
        text = tf.strings.regex_replace(text, r"\p{Zs}", " ")
        text = _normalized(text, self.checkpoint.normalizer_steps)
        # [batch, words, word pieces] -> [batch, word pieces]
        return self.wordpiece.tokenize(text).merge_dims(-2, -1)


class SentencePieceTokenizer(CheckpointTokenizer):
    """The checkpoint's SentencePiece model, then its pieces mapped to the model's ids.

    The ids come from the Hugging Face vocabulary by piece, which carries each family's offsets
    (XLM-R's and CamemBERT's fairseq ids are SentencePiece's plus one, their special tokens
    first). The normalizer steps before the model's own character map follow the checkpoint's
    Hugging Face normalizer (`Checkpoint.normalizer_steps`); where that keeps a trailing space as
    a piece (ALBERT), the model's whitespace trimming and dummy prefix are switched off and done
    here as the Hugging Face normalizer and pre-tokenizer do them.
    """

    display_name = "SentencePiece"

    def __init__(self, checkpoint: Checkpoint):
        super().__init__(checkpoint)
        model = _model_proto(checkpoint)
        self.sentencepiece = tf_text.SentencepieceTokenizer(
            model=model.SerializeToString(), out_type=tf.int32)
        vocabulary = _hugging_face_vocabulary(checkpoint)
        self._model_ids = np.array(
            [vocabulary.get(piece.piece, checkpoint.unk_id) for piece in model.pieces],
            dtype=np.int64)
        unknown = [index for index, piece in enumerate(model.pieces)
                   if piece.type == piece.UNKNOWN]
        self._model_ids[unknown] = checkpoint.unk_id

    def _text_ids(self, text: tf.Tensor) -> tf.RaggedTensor:
        text = _normalized(text, self.checkpoint.normalizer_steps)
        if self.checkpoint.trailing_space_piece:
            # Hugging Face's Metaspace: one leading "▁" unless the text already opens with one.
            text = tf.strings.regex_replace(tf.strings.regex_replace(text, r"\s+", " "),
                                            "^([^ ])", r" \1")
        pieces = self.sentencepiece.tokenize(text)
        return tf.ragged.map_flat_values(
            lambda flat: tf.gather(tf.constant(self._model_ids), flat), pieces)


def _normalized(text: tf.Tensor, steps: Sequence[str]) -> tf.Tensor:
    """`text` after the normalizer steps (`pipeline.checkpoint.NORMALIZER_STEPS`), in order."""
    for step in steps:
        if step == "quotes":
            text = tf.strings.regex_replace(text, "``|''", '"')
        elif step in ("nfd", "nfkd"):
            text = tf_text.normalize_utf8(text, step.upper())
        elif step == "strip_accents":
            text = tf.strings.regex_replace(text, r"\p{Mn}", "")
        elif step == "lowercase":
            text = _lowercase(text)
    return text


def _lowercase(text: tf.Tensor) -> tf.Tensor:
    """Lower-cases each character on its own, as the `tokenizers` library does: ICU's lower-casing
    would turn a word-final capital sigma into final ς; Hugging Face keeps σ. (Case folding would
    also apply NFKC: ß -> ss, ﬁ -> fi, which Hugging Face does not.)"""
    return tf.strings.lower(tf.strings.regex_replace(text, "Σ", "σ"), encoding="utf-8")


def checkpoint_tokenizer(checkpoint: Checkpoint) -> CheckpointTokenizer:
    """The in-graph tokenizer for `checkpoint.tokenizer`."""
    if checkpoint.tokenizer == "sentencepiece":
        return SentencePieceTokenizer(checkpoint)
    return WordPieceTokenizer(checkpoint)


def _model_proto(checkpoint: Checkpoint):
    # pylint: disable-next=import-outside-toplevel
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    with tf.io.gfile.GFile(checkpoint.tokenizer_file, "rb") as handle:
        model.ParseFromString(handle.read())
    if checkpoint.trailing_space_piece:
        # `SentencePieceTokenizer._text_ids` folds the white space and adds the prefix itself.
        model.normalizer_spec.remove_extra_whitespaces = False
        model.normalizer_spec.add_dummy_prefix = False
    return model


def _hugging_face_vocabulary(checkpoint: Checkpoint) -> dict[str, int]:
    from transformers import AutoTokenizer  # pylint: disable=import-outside-toplevel

    return AutoTokenizer.from_pretrained(checkpoint.path).get_vocab()
