"""Exports the trained classifier with the transform graph inside, as one SavedModel.

Three signatures share one TFT layer, so training, evaluation and serving see identical features:
  serving_default     serialized tf.Example -> probabilities, label, class_id
  predict_text        raw strings           -> probabilities, label, class_id
                      (`text`, plus `text_pair` for sentence-pair tasks)
  transform_features  serialized tf.Example -> transformed features (for TFMA)
A fourth, `predict_ids` (token ids, mask, segment ids -> the same outputs), and
`assets.extra/tokenization.json` (the tokenizer the ids come from) let an export that cannot
run the transform graph's ops, such as TFLite's, put its own tokenizer before the same encoder.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from modules import features

# What `predict_ids` was traced with: the tokenizer and packing, read by `lite.graph`.
TOKENIZATION_FILE = os.path.join("assets.extra", "tokenization.json")

def export_serving_model(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput,
                         text_columns: Sequence[str], label_names: Sequence[str],
                         export_dir: str, max_seq_length: int,
                         checkpoint: Optional[dict[str, Any]] = None) -> None:
    """Writes `model` with its signatures to `export_dir` as a TF SavedModel.

    Args:
      text_columns: the raw text column, or the two columns of a sentence pair, in order.
      max_seq_length: the packed row length the transform graph makes.
      checkpoint: the fine-tuned checkpoint (`Checkpoint.to_dict()`); None from scratch.
    """
    model.tft_layer = tf_transform_output.transform_features_layer()
    model.label_names = tf.constant(list(label_names))
    raw_feature_spec = tf_transform_output.raw_feature_spec()
    # Predictions need only the text: a request need not carry the label or the slice columns.
    serving_feature_spec = {column: raw_feature_spec[column] for column in text_columns}

    def predict(transformed: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        logits = model({name: transformed[name] for name in features.MODEL_INPUTS})
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        class_ids = tf.argmax(probabilities, axis=-1)
        return {
            features.PROBABILITIES: probabilities,
            features.PREDICTED_CLASS_ID: class_ids,
            features.PREDICTED_LABEL: tf.gather(model.label_names, class_ids),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized_examples: tf.Tensor) -> dict[str, tf.Tensor]:
        raw_features = tf.io.parse_example(serialized_examples, serving_feature_spec)
        return predict(model.tft_layer(raw_features))

    text_inputs = [tf.TensorSpec([None], tf.string, name=name)
                   for name in features.TEXT_INPUT_NAMES[:len(text_columns)]]

    @tf.function(input_signature=text_inputs)
    def predict_text(*texts: tf.Tensor) -> dict[str, tf.Tensor]:
        return predict(model.tft_layer({
            column: _as_raw_feature(text, serving_feature_spec[column])
            for column, text in zip(text_columns, texts)}))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name=name)
                                  for name in features.MODEL_INPUTS])
    def predict_ids(*model_inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return predict(dict(zip(features.MODEL_INPUTS, model_inputs)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized_examples: tf.Tensor) -> dict[str, tf.Tensor]:
        raw_features = tf.io.parse_example(serialized_examples, raw_feature_spec)
        return model.tft_layer(raw_features)

    signatures = {
        features.SERVING_SIGNATURE: serve_examples.get_concrete_function(),
        features.TEXT_SIGNATURE: predict_text.get_concrete_function(),
        features.TRANSFORM_SIGNATURE: transform_features.get_concrete_function(),
        features.IDS_SIGNATURE: predict_ids.get_concrete_function(),
    }
    # Without per-layer call traces: nothing reloads this as Keras, and tracing every layer of a
    # pretrained encoder would take minutes. Without the optimizer's slots: serving never reads
    # them, and AdamW's two per weight made MiniLM's export 275 MB instead of 93 (a warm start
    # reads only the weights; an interrupted Trainer resumes from its own backups).
    model.save(export_dir, save_format="tf", signatures=signatures, save_traces=False,
               include_optimizer=False)
    tf.io.gfile.makedirs(os.path.dirname(os.path.join(export_dir, TOKENIZATION_FILE)))
    with tf.io.gfile.GFile(os.path.join(export_dir, TOKENIZATION_FILE), "w") as handle:
        handle.write(json.dumps({"checkpoint": checkpoint, "max_seq_length": max_seq_length,
                                 "text_columns": list(text_columns)}, indent=2, sort_keys=True))


def _as_raw_feature(text: tf.Tensor, spec: tf.io.FixedLenFeature | tf.io.VarLenFeature
                    ) -> tf.Tensor | tf.SparseTensor:
    """Shapes a [batch] string vector as the raw feature spec the transform graph was traced with."""
    if isinstance(spec, tf.io.FixedLenFeature):
        return tf.reshape(text, [-1, *spec.shape])
    batch_size = tf.shape(text, out_type=tf.int64)[0]
    indices = tf.stack([tf.range(batch_size), tf.zeros([batch_size], tf.int64)], axis=1)
    return tf.SparseTensor(indices, text, dense_shape=[batch_size, 1])
