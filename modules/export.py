"""Exports the trained classifier with the transform graph inside, as one SavedModel.

Three signatures share one TFT layer, so training, evaluation and serving see identical features:
  serving_default     serialized tf.Example -> probabilities, label, class_id
  predict_text        raw strings           -> probabilities, label, class_id
                      (`text`, plus `text_pair` for sentence-pair tasks)
  transform_features  serialized tf.Example -> transformed features (for TFMA)
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tensorflow_transform as tft

from modules import features

def export_serving_model(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput,
                         text_columns: Sequence[str], label_names: Sequence[str],
                         export_dir: str) -> None:
    """Writes `model` with its three signatures to `export_dir` as a TF SavedModel.

    Args:
      text_columns: the raw text column, or the two columns of a sentence pair, in order.
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

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized_examples: tf.Tensor) -> dict[str, tf.Tensor]:
        raw_features = tf.io.parse_example(serialized_examples, raw_feature_spec)
        return model.tft_layer(raw_features)

    signatures = {
        features.SERVING_SIGNATURE: serve_examples.get_concrete_function(),
        features.TEXT_SIGNATURE: predict_text.get_concrete_function(),
        features.TRANSFORM_SIGNATURE: transform_features.get_concrete_function(),
    }
    # Without per-layer call traces: nothing reloads this as Keras, and tracing every layer of a
    # pretrained encoder would take minutes.
    model.save(export_dir, save_format="tf", signatures=signatures, save_traces=False)


def _as_raw_feature(text: tf.Tensor, spec: tf.io.FixedLenFeature | tf.io.VarLenFeature
                    ) -> tf.Tensor | tf.SparseTensor:
    """Shapes a [batch] string vector as the raw feature spec the transform graph was traced with."""
    if isinstance(spec, tf.io.FixedLenFeature):
        return tf.reshape(text, [-1, *spec.shape])
    batch_size = tf.shape(text, out_type=tf.int64)[0]
    indices = tf.stack([tf.range(batch_size), tf.zeros([batch_size], tf.int64)], axis=1)
    return tf.SparseTensor(indices, text, dense_shape=[batch_size, 1])
