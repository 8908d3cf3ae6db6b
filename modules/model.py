"""The Trainer's `run_fn`: read transformed examples, train the BERT classifier, export it."""

from __future__ import annotations

import json
import math
import os
import sys
import time

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from modules import features
from modules.bert_classifier import build_classifier, compile_classifier
from modules.export import export_serving_model
from pipeline.config import DataConfig, ModelConfig, TrainingConfig, section_from_dict


# Written into the ModelRun artifact next to the TensorBoard logs; benchmarks read it.
TRAINING_STATS_FILE = "training_stats.json"


def input_dataset(file_pattern: list[str], data_accessor: tfx.components.DataAccessor,
                  tf_transform_output: tft.TFTransformOutput, batch_size: int,
                  training: bool, seed: int, max_seq_length: int) -> tf.data.Dataset:
    """Batches of (model inputs, label id), each batch trimmed to its longest row.

    Trimming matters: most sentences are far shorter than `max_seq_length`, and attention cost
    grows with the padded length. Training batches are also grouped by length (rows of similar
    length share a batch), which removes most of the remaining padding.
    """
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(
            batch_size=batch_size, label_key=features.LABEL_ID, shuffle=training,
            shuffle_seed=seed, num_epochs=None if training else 1),
        tf_transform_output.transformed_metadata.schema)
    if training:
        dataset = group_by_length(dataset, batch_size, max_seq_length)
    return dataset.map(trim_to_longest_row, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)


def group_by_length(batches: tf.data.Dataset, batch_size: int,
                    max_seq_length: int) -> tf.data.Dataset:
    """Re-batches rows so that each batch holds rows whose token counts fall in one 8-wide bucket."""
    boundaries = list(range(8, max_seq_length, 8))
    return batches.unbatch().bucket_by_sequence_length(
        element_length_func=lambda row, label: tf.cast(tf.reduce_sum(row[features.INPUT_MASK]),
                                                     tf.int32),
        bucket_boundaries=boundaries, bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))


def trim_to_longest_row(transformed: dict[str, tf.Tensor], label_ids: tf.Tensor
                        ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """Keeps the model inputs only, cut to the longest unpadded row of the batch."""
    longest = tf.reduce_max(tf.reduce_sum(transformed[features.INPUT_MASK], axis=1))
    return {name: transformed[name][:, :longest] for name in features.MODEL_INPUTS}, label_ids


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains for `fn_args.train_steps` steps and exports to `fn_args.serving_model_dir`."""
    data = section_from_dict(DataConfig, fn_args.custom_config["data"])
    model_config = section_from_dict(ModelConfig, fn_args.custom_config["model"])
    training = section_from_dict(TrainingConfig, fn_args.custom_config["training"])
    tf.keras.utils.set_random_seed(training.seed)
    checkpoint = fn_args.custom_config.get("checkpoint")
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    label_names = [name.decode("utf-8") for name in
                   tf_transform_output.vocabulary_by_name(features.LABEL_VOCABULARY)]
    vocab_size = (checkpoint["vocab_size"] if checkpoint else
                  tf_transform_output.vocabulary_size_by_name(features.WORD_VOCABULARY))

    datasets = {
        split: input_dataset(files, fn_args.data_accessor, tf_transform_output,
                             training.batch_size, training=split == "train", seed=training.seed,
                             max_seq_length=model_config.max_seq_length)
        for split, files in (("train", fn_args.train_files), ("eval", fn_args.eval_files))}
    total_steps = fn_args.train_steps or training.train_steps
    steps_per_epoch = math.ceil(total_steps / training.epochs)
    logging.info("Trainer: %d steps (%d epochs x %d) of batch %d; %s; vocabulary %d; labels %s",
                 steps_per_epoch * training.epochs, training.epochs, steps_per_epoch,
                 training.batch_size,
                 f"fine-tuning {checkpoint['path']}" if checkpoint else "training from scratch",
                 vocab_size, label_names)

    model = build_classifier(model_config, vocab_size=vocab_size, num_labels=len(label_names),
                             checkpoint_path=checkpoint["path"] if checkpoint else None)
    compile_classifier(model, training, total_steps=steps_per_epoch * training.epochs)
    started = time.monotonic()
    history = model.fit(
        datasets["train"],
        epochs=training.epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=datasets["eval"],
        validation_steps=training.eval_steps or None,
        callbacks=[tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir,
                                                  update_freq="epoch"),
                   StepLogger(training.log_every_steps, steps_per_epoch, training.batch_size)],
        # Progress bars on a terminal; in log files one line per epoch plus StepLogger's lines.
        verbose=1 if sys.stdout.isatty() else 2,
    )
    _write_training_stats(fn_args.model_run_dir, seconds=time.monotonic() - started,
                          examples=steps_per_epoch * training.epochs * training.batch_size,
                          history=history.history)
    export_serving_model(model, tf_transform_output, text_columns=data.text_columns,
                         label_names=label_names,
                         export_dir=fn_args.serving_model_dir)
    logging.info("Trainer: exported the serving model to %s", fn_args.serving_model_dir)


class StepLogger(tf.keras.callbacks.Callback):
    """Logs loss and throughput every `every` steps: an epoch can take many minutes on CPU."""

    def __init__(self, every: int, steps_per_epoch: int, batch_size: int):
        super().__init__()
        self.every, self.steps_per_epoch, self.batch_size = every, steps_per_epoch, batch_size
        self.started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch, self.started = epoch, time.monotonic()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = batch + 1
        if self.every and step % self.every == 0:
            logging.info("Trainer: epoch %d step %d/%d, loss %.4f, %.1f examples/s", self.epoch + 1,
                         step, self.steps_per_epoch, (logs or {}).get("loss", float("nan")),
                         step * self.batch_size / (time.monotonic() - self.started))


def _write_training_stats(model_run_dir: str, seconds: float, examples: int,
                          history: dict[str, list[float]]) -> None:
    """Logs the training throughput and keeps it, with the last epoch's metrics, in the ModelRun."""
    stats = {"fit_seconds": round(seconds, 1), "train_examples": examples,
             "examples_per_second": round(examples / seconds, 2),
             "last_epoch": {name: values[-1] for name, values in history.items()}}
    logging.info("Trainer: fit took %.1f s for %d examples (%.1f examples/s, validation included)",
                 seconds, examples, examples / seconds)
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, TRAINING_STATS_FILE), "w") as handle:
        json.dump(stats, handle, indent=2)
