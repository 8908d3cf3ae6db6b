"""The Keras classifier: a Hugging Face `TFBertForSequenceClassification` over the TFT features."""

from __future__ import annotations

import tensorflow as tf
from transformers import BertConfig, TFBertForSequenceClassification

from modules import features
from pipeline.config import ModelConfig, TrainingConfig


def build_classifier(model_config: ModelConfig, vocab_size: int, num_labels: int) -> tf.keras.Model:
    """Returns a Keras model mapping the three transformed int features to class logits.

    The sequence axis is left unknown so batches can be trimmed to their longest row.
    """
    bert_config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=model_config.hidden_size,
        num_hidden_layers=model_config.num_layers,
        num_attention_heads=model_config.num_attention_heads,
        intermediate_size=model_config.intermediate_size,
        hidden_dropout_prob=model_config.dropout,
        attention_probs_dropout_prob=model_config.dropout,
        max_position_embeddings=model_config.max_seq_length,
        pad_token_id=features.PAD_ID,
        num_labels=num_labels,
    )
    bert = TFBertForSequenceClassification(bert_config, name="bert_classifier")
    inputs = {name: tf.keras.Input(shape=(None,), dtype=tf.int64, name=name)
              for name in features.MODEL_INPUTS}
    logits = bert(
        input_ids=tf.cast(inputs[features.INPUT_WORD_IDS], tf.int32),
        attention_mask=tf.cast(inputs[features.INPUT_MASK], tf.int32),
        token_type_ids=tf.cast(inputs[features.SEGMENT_IDS], tf.int32),
    ).logits
    return tf.keras.Model(inputs=inputs, outputs=logits, name="text_classifier")


def compile_classifier(model: tf.keras.Model, training: TrainingConfig,
                       total_steps: int) -> None:
    """AdamW with a linear decay to zero: the usual recipe for BERT-style encoders."""
    learning_rate = tf.keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate=training.learning_rate, decay_steps=total_steps, end_learning_rate=0.0)
    model.compile(
        optimizer=tf.keras.optimizers.AdamW(learning_rate=learning_rate,
                                            weight_decay=training.weight_decay),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
