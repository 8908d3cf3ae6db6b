"""The Trainer's input: transformed examples as length-grouped batches trimmed to their longest row."""

from __future__ import annotations

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.public import tfxio

from modules import features


def input_dataset(file_pattern: list[str], schema: schema_pb2.Schema, batch_size: int,
                  training: bool, seed: int, max_seq_length: int) -> tf.data.Dataset:
    """Batches of (model inputs, label id) read from Transform's tf.Example files.

    Trimming matters: most sentences are far shorter than `max_seq_length`, and attention cost
    grows with the padded length. Training batches are also grouped by length (rows of similar
    length share a batch), which removes most of the remaining padding.

    Read with tfx_bsl directly rather than the Trainer's DataAccessor, so that worker processes
    of a local multi-worker run, which have no FnArgs, read exactly the same batches.
    """
    dataset = tfxio.TFExampleRecord(
        file_pattern=file_pattern, schema=schema, telemetry_descriptors=["textclf", "Trainer"]
    ).TensorFlowDataset(tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size, label_key=features.LABEL_ID, shuffle=training,
        shuffle_seed=seed, num_epochs=None if training else 1))
    if training:
        dataset = group_by_length(dataset, batch_size, max_seq_length)
    dataset = dataset.map(trim_to_longest_row, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)
    # Every worker reads all files with the same seed and keeps its share of each global batch:
    # Transform may write one file per split, too few to shard by file.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def count_records(file_patterns: list[str]) -> int:
    """How many examples the (GZIP'd, as Transform writes them) files under `file_patterns` hold:
    the training length in epochs is counted over the real rows."""
    files = [path for pattern in file_patterns for path in tf.io.gfile.glob(pattern)]
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return int(records.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


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
