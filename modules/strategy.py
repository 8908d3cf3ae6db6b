"""Picks the `tf.distribute` strategy and the Keras precision policy from the configuration.

The same module trains on one CPU, several GPUs, a TPU or a multi-worker cluster: only
`training.strategy` (and TF_CONFIG, for workers) changes.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Iterator

import tensorflow as tf
from absl import logging

from pipeline.config import TrainingConfig

# `training.precision` -> Keras mixed-precision policy name.
PRECISION_POLICIES = {"fp32": "float32", "mixed_float16": "mixed_float16",
                      "mixed_bfloat16": "mixed_bfloat16"}


def create_strategy(training: TrainingConfig) -> tf.distribute.Strategy:
    """The strategy `training.strategy` names; `auto` looks at the TPU address and the GPUs, and
    on one device (a CPU, a GPU) takes TensorFlow's default strategy: no distribution at all.

    Must run before any other TensorFlow op for `multi_worker` (collectives are set up first).
    """
    name = training.strategy
    # Physical, not logical, devices: listing logical ones starts the runtime, after which
    # collectives can no longer be configured.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "tpu" if training.tpu_address else "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        # One device needs no distribution, and OneDeviceStrategy's wrapping (a distributed
        # dataset, variables and steps run through the strategy) cost 10-16 % of the steady
        # steps of MiniLM on 2 CPU cores (two runs each, 2026-12-06).
        strategy = tf.distribute.get_strategy()
    elif name == "one_device":
        strategy = tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif name == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                timeout_seconds=training.collective_timeout_seconds))
    elif name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=training.tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    else:
        raise ValueError(f"unknown training.strategy {name!r}")
    replicas = strategy.num_replicas_in_sync
    logging.info("Trainer: %s strategy (%s) with %d replica(s) in sync; global batch %d, %g per "
                 "replica", name, type(strategy).__name__, replicas, training.batch_size,
                 training.batch_size / replicas)
    return strategy


def cluster_task() -> tuple[str, int]:
    """('worker 1 of 2', 2) under a TF_CONFIG cluster, else ('', 1): for logs and step metrics."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = tf_config.get("task")
    if not task:
        return "", 1
    cluster = tf_config.get("cluster", {})
    workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    return f"{task['type']} {task['index']} of {len(cluster.get(task['type'], []))}", workers


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the export and summaries (worker 0 when there is no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Sets the Keras mixed-precision policy while the model is built, then restores it.

    The policy is process-global and the local runner trains in the same process as the
    Evaluator, so it must not outlive the Trainer.
    """
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(PRECISION_POLICIES[precision])
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
