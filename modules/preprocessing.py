"""The Transform `preprocessing_fn`: tokenization and label ids, in the TF graph.

Everything here becomes part of the transform graph that the Trainer embeds in the exported
model, so serving applies exactly these steps to raw text: no Python tokenizer exists at serving.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from modules import features
from pipeline.config import DataConfig, ModelConfig, section_from_dict

# Punctuation becomes its own token, as in BERT's basic tokenizer ("isn't" -> "isn ' t").
_PUNCTUATION = r"([\pP\pS])"


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    """Maps raw columns to word ids, mask, segment ids and the label id; passes slices through.

    Args:
      inputs: raw features parsed by TFT from ExampleGen's tf.Examples (dense or sparse).
      custom_config: the `data` and `model` config sections and the `label_values` in id order.
    Returns:
      The transformed features (`modules.features` names plus the slice columns).
    """
    data = section_from_dict(DataConfig, custom_config["data"])
    model = section_from_dict(ModelConfig, custom_config["model"])
    outputs = tokenize(_as_string_vector(inputs[data.text_column]), model.max_seq_length,
                       model.max_vocab_size, model.min_word_frequency)
    labels = tf.strings.strip(_as_string_vector(inputs[data.label_column]))
    # The label values are reserved tokens, so ids follow their configured order and stay stable
    # across retrains even when the class balance shifts.
    outputs[features.LABEL_ID] = tft.compute_and_apply_vocabulary(
        labels, vocab_filename=features.LABEL_VOCABULARY,
        reserved_tokens=custom_config["label_values"], default_value=-1)
    for column in data.slice_columns:
        outputs[column] = _as_string_vector(inputs[column])
    return outputs


def tokenize(texts: tf.Tensor, max_seq_length: int, max_vocab_size: int,
             min_word_frequency: int) -> dict[str, tf.Tensor]:
    """Lower-cases and splits `texts` into words, maps them to ids, adds [CLS]/[SEP] and pads.

    The word vocabulary is a TFT analyzer over the training split with the reserved tokens first,
    so [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3 and unseen or rare words map to [UNK].
    """
    words = split_words(texts)
    vocabulary = tft.vocabulary(
        words, top_k=max_vocab_size, frequency_threshold=min_word_frequency,
        reserved_tokens=list(features.RESERVED_TOKENS), vocab_filename=features.WORD_VOCABULARY)
    word_ids = tft.apply_vocabulary(words, vocabulary, default_value=features.UNK_ID)
    word_ids = word_ids[:, :max_seq_length - 2]
    batch_size = tf.shape(texts, out_type=tf.int64)[0]
    cls_column = tf.fill([batch_size, 1], tf.constant(features.CLS_ID, tf.int64))
    sep_column = tf.fill([batch_size, 1], tf.constant(features.SEP_ID, tf.int64))
    token_ids = tf.concat([tf.RaggedTensor.from_tensor(cls_column), word_ids,
                           tf.RaggedTensor.from_tensor(sep_column)], axis=1)
    input_word_ids = token_ids.to_tensor(default_value=features.PAD_ID,
                                         shape=[None, max_seq_length])
    return {
        features.INPUT_WORD_IDS: input_word_ids,
        features.INPUT_MASK: tf.cast(input_word_ids != features.PAD_ID, tf.int64),
        features.SEGMENT_IDS: tf.zeros_like(input_word_ids),
    }


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
