"""The Trainer's `run_fn`: read transformed examples, train the BERT classifier, export it."""

from __future__ import annotations

import math
import sys

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from modules import features
from modules.bert_classifier import build_classifier, compile_classifier
from modules.export import export_serving_model
from pipeline.config import DataConfig, ModelConfig, TrainingConfig, section_from_dict


def input_dataset(file_pattern: list[str], data_accessor: tfx.components.DataAccessor,
                  tf_transform_output: tft.TFTransformOutput, batch_size: int,
                  training: bool, seed: int) -> tf.data.Dataset:
    """Batches of (model inputs, label id), each batch trimmed to its longest row.

    Trimming matters: most sentences are far shorter than `max_seq_length`, and attention cost
    grows with the padded length.
    """
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(
            batch_size=batch_size, label_key=features.LABEL_ID, shuffle=training,
            shuffle_seed=seed, num_epochs=None if training else 1),
        tf_transform_output.transformed_metadata.schema)
    return dataset.map(trim_to_longest_row, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)


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
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    label_names = [name.decode("utf-8") for name in
                   tf_transform_output.vocabulary_by_name(features.LABEL_VOCABULARY)]
    vocab_size = tf_transform_output.vocabulary_size_by_name(features.WORD_VOCABULARY)

    train_dataset = input_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                                  training.batch_size, training=True, seed=training.seed)
    eval_dataset = input_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                                 training.batch_size, training=False, seed=training.seed)
    total_steps = fn_args.train_steps or training.train_steps
    steps_per_epoch = math.ceil(total_steps / training.epochs)
    logging.info("Trainer: %d steps (%d epochs x %d) of batch %d; vocabulary %d words; labels %s",
                 steps_per_epoch * training.epochs, training.epochs, steps_per_epoch,
                 training.batch_size, vocab_size, label_names)

    model = build_classifier(model_config, vocab_size=vocab_size, num_labels=len(label_names))
    compile_classifier(model, training, total_steps=steps_per_epoch * training.epochs)
    model.fit(
        train_dataset,
        epochs=training.epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=eval_dataset,
        validation_steps=training.eval_steps or None,
        callbacks=[tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir,
                                                  update_freq="epoch")],
        # Progress bars on a terminal, one line per epoch in log files.
        verbose=1 if sys.stdout.isatty() else 2,
    )
    export_serving_model(model, tf_transform_output, text_column=data.text_column,
                         label_names=label_names,
                         export_dir=fn_args.serving_model_dir)
    logging.info("Trainer: exported the serving model to %s", fn_args.serving_model_dir)
