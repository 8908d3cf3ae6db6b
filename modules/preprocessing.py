"""The Transform `preprocessing_fn`: tokenization and label ids, in the TF graph.

Everything here becomes part of the transform graph that the Trainer embeds in the exported
model, so serving applies exactly these steps to raw text: no Python tokenizer exists at serving.
Two tokenizers share one packing step:
  * pretrained: the checkpoint's own (`modules.checkpoint_tokenizers`: WordPiece over its
    `vocab.txt`, an asset of the graph, or SentencePiece over its `.model`);
  * from scratch: lower-cased words and a TFT vocabulary computed on the training split.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import tensorflow as tf
import tensorflow_text as tf_text
import tensorflow_transform as tft

from modules import features
from modules.checkpoint_tokenizers import checkpoint_tokenizer
from pipeline.checkpoint import Checkpoint
from pipeline.config import DataConfig, ModelConfig, section_from_dict

# Punctuation becomes its own token, as in BERT's basic tokenizer ("isn't" -> "isn ' t").
_PUNCTUATION = r"([\pP\pS])"


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    """Maps raw columns to token ids, mask, segment ids and the label id; passes slices through.

    Args:
      inputs: raw features parsed by TFT from ExampleGen's tf.Examples (dense or sparse).
      custom_config: the `data` and `model` config sections, the `label_values` in id order and
        the resolved `checkpoint` (None when training from scratch).
    Returns:
      The transformed features (`modules.features` names plus the slice columns).
    """
    data = section_from_dict(DataConfig, custom_config["data"])
    model = section_from_dict(ModelConfig, custom_config["model"])
    texts = [_as_string_vector(inputs[column]) for column in data.text_columns]
    if custom_config.get("checkpoint"):
        checkpoint = Checkpoint.from_dict(custom_config["checkpoint"])
        # Created outside the traced function and tracked, so its tables are initialised once
        # per loaded graph, not on every batch, and `vocab.txt` becomes an asset of the
        # transform graph (the served model carries it).
        tokenizer = tft.make_and_track_object(lambda: checkpoint_tokenizer(checkpoint),
                                              name=f"{checkpoint.tokenizer}_tokenizer")
        segments = tokenizer.ids(texts)
    else:
        checkpoint = None
        segments = word_ids(texts, model.max_vocab_size, model.min_word_frequency)
    outputs = pack_segments(segments, model.max_seq_length, Packing.of(checkpoint))

    labels = tf.strings.strip(_as_string_vector(inputs[data.label_column]))
    # The label values are reserved tokens, so ids follow their configured order and stay stable
    # across retrains even when the class balance shifts.
    outputs[features.LABEL_ID] = tft.compute_and_apply_vocabulary(
        labels, vocab_filename=features.LABEL_VOCABULARY,
        reserved_tokens=custom_config["label_values"], default_value=-1)
    for column in data.slice_columns:
        outputs[column] = _as_string_vector(inputs[column])
    return outputs


class Packing(NamedTuple):
    """How a row is packed: its special ids, the separators between a pair's texts (2 in
    RoBERTa's <s> a </s></s> b </s>) and the token type of the second text."""

    cls_id: int
    sep_id: int
    pad_id: int
    pair_separators: int = 1
    pair_token_type: int = 1

    @classmethod
    def of(cls, checkpoint: Optional[Checkpoint]) -> "Packing":
        """The checkpoint's packing, or the from-scratch vocabulary's (None)."""
        if checkpoint is None:
            return cls(features.CLS_ID, features.SEP_ID, features.PAD_ID)
        return cls(checkpoint.cls_id, checkpoint.sep_id, checkpoint.pad_id,
                   checkpoint.pair_separators, checkpoint.pair_token_type)

    def special_tokens(self, segment_count: int) -> int:
        """The tokens a row holds besides its texts' own: [CLS], then the separators."""
        return 1 + 1 + (segment_count - 1) * self.pair_separators


def word_ids(texts: Sequence[tf.Tensor], max_vocab_size: int,
             min_word_frequency: int) -> list[tf.RaggedTensor]:
    """Word ids of each [batch] text column from a TFT vocabulary over the training split.

    The reserved tokens come first, so [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, and unseen or rare
    words map to [UNK]. Both columns of a pair share one vocabulary.
    """
    words = [split_words(text) for text in texts]
    vocabulary = tft.vocabulary(
        tf.concat(words, axis=1), top_k=max_vocab_size, frequency_threshold=min_word_frequency,
        reserved_tokens=list(features.RESERVED_TOKENS), vocab_filename=features.WORD_VOCABULARY)
    return [tft.apply_vocabulary(column, vocabulary, default_value=features.UNK_ID)
            for column in words]


def pack_segments(segments: Sequence[tf.RaggedTensor], max_seq_length: int,
                  packing: Packing) -> dict[str, tf.Tensor]:
    """Builds [CLS] a [SEP] (b [SEP]) rows of `max_seq_length` with mask and segment ids."""
    budget = max_seq_length - packing.special_tokens(len(segments))
    kept = _longest_first_lengths([segment.row_lengths() for segment in segments], budget)
    trimmed = [tf.ragged.boolean_mask(segment, tf.ragged.range(segment.row_lengths()) <
                                      tf.expand_dims(keep, 1))
               for segment, keep in zip(segments, kept)]
    if len(trimmed) == 2 and packing.pair_separators == 2:
        # RoBERTa's pair: the second text opens with one more separator.
        opening = tf.fill([trimmed[1].nrows(), 1], tf.cast(packing.sep_id, trimmed[1].dtype))
        trimmed[1] = tf.concat([tf.RaggedTensor.from_tensor(opening), trimmed[1]], axis=1)
    token_ids, segment_ids = tf_text.combine_segments(
        trimmed, start_of_sequence_id=packing.cls_id, end_of_segment_id=packing.sep_id)
    input_word_ids, input_mask = tf_text.pad_model_inputs(
        token_ids, max_seq_length=max_seq_length, pad_value=packing.pad_id)
    segment_ids, _ = tf_text.pad_model_inputs(segment_ids * packing.pair_token_type,
                                              max_seq_length=max_seq_length)
    return {
        features.INPUT_WORD_IDS: input_word_ids,
        features.INPUT_MASK: input_mask,
        features.SEGMENT_IDS: segment_ids,
    }


def _longest_first_lengths(lengths: Sequence[tf.Tensor], budget: int) -> list[tf.Tensor]:
    """Per-row lengths to keep under Hugging Face's "longest_first" truncation.

    For a pair over budget, the shorter segment keeps at most half the budget (the first one
    counts as shorter on a tie) and the longer one gets the rest, as the `tokenizers` library does.
    """
    if len(lengths) == 1:
        return [tf.minimum(lengths[0], budget)]
    first, second = lengths
    shorter_keeps = tf.minimum(tf.minimum(first, second), budget // 2)
    longer_keeps = tf.minimum(tf.maximum(first, second), budget - shorter_keeps)
    first_is_shorter = first <= second
    return [tf.where(first_is_shorter, shorter_keeps, longer_keeps),
            tf.where(first_is_shorter, longer_keeps, shorter_keeps)]


def split_words(texts: tf.Tensor) -> tf.RaggedTensor:
    """Lower-cases [batch] strings and splits them into words, punctuation as separate words."""
    return tf.strings.split(tf.strings.regex_replace(
        tf.strings.lower(texts, encoding="utf-8"), _PUNCTUATION, r" \1 "))


def _as_string_vector(feature: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """Returns a [batch] string tensor from a dense [batch, 1] or sparse column (missing -> '')."""
    if isinstance(feature, tf.SparseTensor):
        feature = tf.sparse.to_dense(tf.sparse.reset_shape(
            feature, [feature.dense_shape[0], 1]),
            default_value="" if feature.dtype == tf.string else 0)
    feature = tf.reshape(feature, [-1])
    return feature if feature.dtype == tf.string else tf.strings.as_string(feature)
