"""The raw-text graph a TFLite model is converted from: tokenizer, packing, encoder and head.

The pushed SavedModel tokenizes with ops TFLite has no kernels for (regular expressions, Unicode
normalization, hash tables), so its `predict_text` cannot be converted. Its `predict_ids`
signature is the same encoder and head on token ids; here tensorflow-text's FastBertTokenizer,
which has TFLite kernels, goes before it, built from the checkpoint's vocabulary and
normalization as the export recorded them (`modules.export.TOKENIZATION_FILE`), and the ids are
packed into [CLS] text [SEP] rows with builtin ops only (ragged slicing and `combine_segments`
would leave ops no TFLite runtime has).
"""

from __future__ import annotations

import dataclasses
import json
import os

import tensorflow as tf
import tensorflow_text as tf_text

from modules import features
from modules.export import TOKENIZATION_FILE

# The input and signature names of every exported TFLite model.
TEXT_INPUT = features.TEXT_INPUT_NAMES[0]
SIGNATURE = "serving_default"
# The only normalizations FastBertTokenizer makes: none, or lower-casing, NFD and accent
# stripping together (`lower_case_nfd_strip_accents`).
_UNCASED_STEPS = ("lowercase", "nfd", "strip_accents")


class NotConvertible(ValueError):
    """The model cannot become a raw-text TFLite model; the message says why."""


@dataclasses.dataclass(frozen=True)
class Tokenization:
    """What FastBertTokenizer and the packing need of a WordPiece checkpoint."""

    vocabulary: list[str]
    # Lower-case, NFD and strip accents (uncased BERTs), or leave the text as it is (cased).
    lower_case: bool
    unk_token: str
    cls_id: int
    sep_id: int
    pad_id: int
    max_seq_length: int


def read_tokenization(saved_model_dir: str) -> Tokenization:
    """The tokenization `saved_model_dir` was exported with, or NotConvertible saying why the
    TFLite runtime cannot reproduce it."""
    path = os.path.join(saved_model_dir, TOKENIZATION_FILE)
    if not tf.io.gfile.exists(path):
        raise NotConvertible(f"the model has no {TOKENIZATION_FILE} (it was exported before "
                             "TFLite exports existed): train it again to export it")
    with tf.io.gfile.GFile(path) as handle:
        text = handle.read()
    try:
        return _tokenization(saved_model_dir, json.loads(text))
    except NotConvertible:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:  # JSON, or its shape
        raise NotConvertible(f"the model's {TOKENIZATION_FILE} is not what the export writes "
                             f"({type(error).__name__}: {error})") from error


def _tokenization(saved_model_dir: str, recorded: dict) -> Tokenization:
    checkpoint = recorded["checkpoint"]
    if not checkpoint:
        raise NotConvertible(
            "the model was trained from scratch, and its word tokenizer (regular expressions and "
            "a TFT vocabulary) has no TFLite kernels: fine-tune a WordPiece checkpoint "
            "(model.pretrained) to export to TFLite")
    if checkpoint["tokenizer"] != "wordpiece":
        raise NotConvertible(
            f"the checkpoint's tokenizer is {checkpoint['tokenizer']}, and only WordPiece "
            "(BERT, MiniLM, DistilBERT, ELECTRA) has a TFLite tokenizer here "
            "(tensorflow-text's FastBertTokenizer)")
    if len(recorded["text_columns"]) != 1:
        raise NotConvertible("the model classifies sentence pairs, and the TFLite export takes "
                             "one text")
    steps = tuple(checkpoint["normalizer_steps"])
    if steps not in ((), _UNCASED_STEPS):
        raise NotConvertible(
            f"the checkpoint's tokenizer normalizes with {', '.join(steps)}; FastBertTokenizer "
            "either lower-cases, decomposes and strips accents together or does none of them")
    vocabulary_file = os.path.join(saved_model_dir, "assets",
                                   os.path.basename(checkpoint["tokenizer_file"]))
    with tf.io.gfile.GFile(vocabulary_file) as handle:
        # One token a line, lines ended by \n only, as the SavedModel's own lookup table reads
        # them (splitlines would also split inside a token holding \x1c, \x85 or \u2028).
        vocabulary = handle.read().rstrip("\n").split("\n")
    return Tokenization(vocabulary=vocabulary, lower_case=steps == _UNCASED_STEPS,
                        unk_token=checkpoint["unk_token"], cls_id=checkpoint["cls_id"],
                        sep_id=checkpoint["sep_id"], pad_id=checkpoint["pad_id"],
                        max_seq_length=recorded["max_seq_length"])


class TokenIds(tf.Module):
    """Raw strings -> the packed ids and mask the encoder reads, in TFLite-convertible ops."""

    def __init__(self, tokenization: Tokenization):
        super().__init__()
        self.tokenization = tokenization
        # Hugging Face's WordPiece gives up on words over 100 characters; FastBertTokenizer
        # counts bytes, so its limit is in bytes (a longer accented word becomes [UNK] sooner).
        self.tokenizer = tf_text.FastBertTokenizer(
            vocab=tokenization.vocabulary, token_out_type=tf.int64,
            lower_case_nfd_strip_accents=tokenization.lower_case,
            unknown_token=tokenization.unk_token, support_detokenization=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)])
    def __call__(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        """[CLS] text [SEP] rows of `max_seq_length`, cut to fit, padded, with their mask."""
        tokenization = self.tokenization
        length = tokenization.max_seq_length
        pieces = self.tokenizer.tokenize(text)  # [batch, pieces], ragged
        body = pieces.to_tensor(default_value=tokenization.pad_id, shape=[None, length - 2])
        kept = tf.minimum(pieces.row_lengths(), length - 2)
        rows = tf.shape(body)[0]
        ids = tf.concat([tf.fill([rows, 1], tf.constant(tokenization.cls_id, tf.int64)), body,
                         tf.fill([rows, 1], tf.constant(tokenization.pad_id, tf.int64))], axis=1)
        position = tf.range(length, dtype=tf.int64)[tf.newaxis, :]
        separator = (kept + 1)[:, tf.newaxis]
        ids = tf.where(position == separator, tf.constant(tokenization.sep_id, tf.int64), ids)
        return {features.INPUT_WORD_IDS: ids,
                features.INPUT_MASK: tf.cast(position <= separator, tf.int64)}


class RawTextClassifier(tf.Module):
    """`TokenIds` before the pushed model's `predict_ids`: raw strings -> probabilities, label
    and class id, as `predict_text` answers."""

    def __init__(self, saved_model_dir: str):
        super().__init__()
        self.token_ids = TokenIds(read_tokenization(saved_model_dir))
        self.model = tf.saved_model.load(saved_model_dir)
        if features.IDS_SIGNATURE not in self.model.signatures:
            raise NotConvertible(f"the model has no {features.IDS_SIGNATURE} signature (it was "
                                 "exported before TFLite exports existed): train it again")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)])
    def __call__(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        packed = self.token_ids(text)
        ids = packed[features.INPUT_WORD_IDS]
        return self.model.signatures[features.IDS_SIGNATURE](
            input_word_ids=ids, input_mask=packed[features.INPUT_MASK],
            segment_ids=tf.zeros_like(ids))


def save_for_conversion(module: tf.Module, folder: str) -> None:
    """Writes `module`'s call as the SavedModel signature the TFLite converter reads (converting
    a concrete function directly leaves the .tflite without a signature to run by name)."""
    tf.saved_model.save(module, folder, signatures={SIGNATURE: module.__call__})
