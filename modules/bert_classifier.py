"""The Keras classifier: a Hugging Face TF encoder with a classification head over the TFT features.

Either a pretrained checkpoint with a new head, or a small BERT from scratch. The head reads the
pooled [CLS] state (Hugging Face's ...ForSequenceClassification) or the mean of the token states:
sentence-transformers checkpoints (all-MiniLM-*) were trained to embed a sentence as that mean,
and their [CLS] pooler was never trained.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import tensorflow as tf
from transformers import (BertConfig, TFAutoModel, TFAutoModelForSequenceClassification,
                          TFBertForSequenceClassification, TFBertModel)

from modules import features
from pipeline.config import ModelConfig, TrainingConfig


def resolve_pooling(model_config: ModelConfig, checkpoint: Optional[dict[str, Any]]) -> str:
    """cls or mean: `model.pooling`, or with auto what the checkpoint declares (else cls)."""
    if model_config.pooling != "auto":
        return model_config.pooling
    return (checkpoint or {}).get("declared_pooling") or "cls"


def build_classifier(model_config: ModelConfig, vocab_size: int, num_labels: int,
                     checkpoint_path: Optional[str] = None,
                     pooling: str = "cls") -> "TextClassifier":
    """Returns a Keras model mapping the three transformed int features to class logits.

    Args:
      model_config: encoder sizes for a model trained from scratch.
      vocab_size: size of the TFT word vocabulary (from scratch only).
      num_labels: classes in the label vocabulary; the head gets this many outputs.
      checkpoint_path: a local pretrained checkpoint; `safetensors` weights written by PyTorch
        load into the TF model without torch.
      pooling: cls (Hugging Face's sequence classifier) or mean (`resolve_pooling`).
    The sequence axis is left unknown so batches can be trimmed to their longest row.
    """
    inputs = {name: tf.keras.Input(shape=(None,), dtype=tf.int64, name=name)
              for name in features.MODEL_INPUTS}
    encoder_inputs = {
        "input_ids": tf.cast(inputs[features.INPUT_WORD_IDS], tf.int32),
        "attention_mask": tf.cast(inputs[features.INPUT_MASK], tf.int32),
    }
    if pooling == "cls":
        encoder = (TFAutoModelForSequenceClassification.from_pretrained(
                       checkpoint_path, num_labels=num_labels, name="pretrained_classifier")
                   if checkpoint_path else TFBertForSequenceClassification(
                       _scratch_config(model_config, vocab_size, num_labels),
                       name="bert_classifier"))
        scores = encoder(**_with_segments(encoder, encoder_inputs, inputs)).logits
    else:
        encoder = (TFAutoModel.from_pretrained(checkpoint_path, name="pretrained_encoder")
                   if checkpoint_path else TFBertModel(
                       _scratch_config(model_config, vocab_size, num_labels),
                       name="bert_encoder"))
        # The encoder's own [CLS] pooler is unused here: frozen, it stays out of the optimizer.
        pooler = getattr(getattr(encoder, encoder.base_model_prefix, None), "pooler", None)
        if pooler is not None:
            pooler.trainable = False
        states = encoder(**_with_segments(encoder, encoder_inputs, inputs)).last_hidden_state
        pooled = MaskedMeanPooling(name="mean_pooling")(states, inputs[features.INPUT_MASK])
        pooled = tf.keras.layers.Dropout(encoder.config.hidden_dropout_prob)(pooled)
        scores = tf.keras.layers.Dense(
            num_labels, name="classifier",
            kernel_initializer=tf.keras.initializers.TruncatedNormal(
                stddev=encoder.config.initializer_range))(pooled)
    # Under a mixed-precision policy the encoder computes in 16 bits; the logits (and so the loss
    # and the exported probabilities) are cast back to float32.
    logits = tf.keras.layers.Activation("linear", dtype="float32", name="logits")(scores)
    return TextClassifier(inputs=inputs, outputs=logits, name="text_classifier")


@tf.keras.utils.register_keras_serializable(package="textclf")
class MaskedMeanPooling(tf.keras.layers.Layer):
    """The mean of the token states where the mask is 1: padding does not dilute it."""

    def call(self, states: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        weights = tf.cast(mask, states.dtype)[:, :, tf.newaxis]
        counts = tf.maximum(tf.reduce_sum(weights, axis=1), tf.cast(1.0, states.dtype))
        return tf.reduce_sum(states * weights, axis=1) / counts


def _scratch_config(model_config: ModelConfig, vocab_size: int, num_labels: int) -> BertConfig:
    return BertConfig(
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


def _with_segments(encoder: tf.keras.Model, encoder_inputs: dict[str, tf.Tensor],
                   inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Adds token_type_ids, except for DistilBERT and the few others without segment embeddings."""
    if "token_type_ids" not in inspect.signature(encoder.call).parameters:
        return encoder_inputs
    return {**encoder_inputs,
            "token_type_ids": tf.cast(inputs[features.SEGMENT_IDS], tf.int32)}


class TextClassifier(tf.keras.Model):
    """The functional classifier, with a train step that can accumulate gradients.

    With `accumulation_steps` k > 1 each batch is cut into k micro-batches; their gradients,
    weighted by micro-batch size, are summed and applied once. The update equals the whole
    batch's while activations are held for one micro-batch at a time.
    """

    accumulation_steps = 1

    def train_step(self, data):
        if self.accumulation_steps == 1:
            return super().train_step(data)
        inputs, labels = data
        rows = tf.shape(labels)[0]
        micro_rows = (rows + self.accumulation_steps - 1) // self.accumulation_steps
        variables = self.trainable_variables
        gradients = [tf.zeros_like(variable) for variable in variables]
        predictions = []
        for index in range(self.accumulation_steps):
            start = tf.minimum(index * micro_rows, rows)
            end = tf.minimum(start + micro_rows, rows)
            micro_inputs = {name: tensor[start:end] for name, tensor in inputs.items()}
            with tf.GradientTape() as tape:
                micro_predictions = self(micro_inputs, training=True)
                loss = self.compute_loss(micro_inputs, labels[start:end], micro_predictions)
            share = tf.cast(end - start, tf.float32) / tf.cast(rows, tf.float32)
            # compute_gradients undoes the loss scaling of a mixed_float16 optimizer.
            for position, (gradient, _) in enumerate(
                    self.optimizer.compute_gradients(loss, variables, tape)):
                gradients[position] += share * tf.convert_to_tensor(gradient)
            predictions.append(micro_predictions)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self.compute_metrics(inputs, labels, tf.concat(predictions, axis=0), None)


@tf.keras.utils.register_keras_serializable(package="textclf")
class WarmupLinearDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then linear decay to 0 at `total_steps`.

    The warm-up keeps the first updates from wrecking pretrained weights while the new head is
    still random.
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        warmup = (step + 1.0) / max(self.warmup_steps, 1)
        decay = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        return self.peak * tf.maximum(0.0, tf.minimum(warmup, decay))

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps}


def compile_classifier(model: TextClassifier, training: TrainingConfig,
                       total_steps: int) -> None:
    """AdamW with warm-up, linear decay and global-norm gradient clipping: the BERT recipe.

    `training.learning_rate` is the resolved one (`pipeline.training_plan`), never unset."""
    if training.learning_rate is None:
        raise ValueError("training.learning_rate is unset: resolve it with "
                         "pipeline.training_plan.plan_training first")
    learning_rate = WarmupLinearDecay(peak=training.learning_rate,
                                      warmup_steps=int(training.warmup_ratio * total_steps),
                                      total_steps=total_steps)
    optimizer = tf.keras.optimizers.AdamW(
        learning_rate=learning_rate, weight_decay=training.weight_decay,
        global_clipnorm=training.gradient_clip_norm or None)
    # As in BERT, biases and layer norms are not decayed.
    optimizer.exclude_from_weight_decay(var_names=["bias", "LayerNorm", "layer_norm"])
    model.accumulation_steps = training.gradient_accumulation_steps
    # Under mixed_float16, compile wraps the optimizer in a LossScaleOptimizer.
    model.compile(
        optimizer=optimizer,
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=training.jit_compile,
    )
