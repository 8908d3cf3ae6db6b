"""One training job: build the classifier under the configured strategy and precision, fit it
with crash-safe backups, export it. Run in the Trainer's process, or in each worker process of
a multi-worker cluster (which is why it takes plain values, not TFX's FnArgs).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from typing import Any, Callable, Optional

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging

from modules import features
from modules.bert_classifier import (TextClassifier, build_classifier, compile_classifier,
                                     resolve_pooling)
from modules.callbacks import BatchLogs, ResumableBackup, SteadyThroughput, StepLogger
from modules.datasets import input_dataset
from modules.export import export_serving_model
from modules.strategy import cluster_task, create_strategy, is_chief, precision_policy
from pipeline.config import DataConfig, ModelConfig, TrainingConfig, section_from_dict

# Written into the ModelRun artifact next to the TensorBoard logs; benchmarks read it.
TRAINING_STATS_FILE = "training_stats.json"
# training_stats.json's steady throughput leaves out this many first steps (graph tracing).
THROUGHPUT_SKIP_STEPS = 50


class WarmStartError(RuntimeError):
    """The blessed model to warm-start from does not fit the model being trained."""


@dataclasses.dataclass
class TrainingJob:
    """What a training run reads and writes: the JSON-able part of TFX's FnArgs."""

    train_files: list[str]
    eval_files: list[str]
    transform_output: str
    serving_model_dir: str
    model_run_dir: str
    train_steps: int
    custom_config: dict[str, Any]
    # The last blessed model's export, for `training.warm_start`.
    base_model: Optional[str] = None

    @property
    def backup_dir(self) -> str:
        """Where crash-safe backups go: stable across reruns of the same inputs and settings.

        A rerun after a crash gets a new model_run_dir, so backups live under the pipeline root,
        keyed by everything that defines the training (data, transform graph, configuration).
        """
        identity = json.dumps([self.train_files, self.eval_files, self.transform_output,
                               self.train_steps, self.custom_config,
                               self.base_model], sort_keys=True)
        key = hashlib.sha256(identity.encode()).hexdigest()[:16]
        return os.path.join(self.custom_config["backup_root"], key)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "TrainingJob":
        return cls(**json.loads(text))


def train(job: TrainingJob) -> None:
    """Trains for `job.train_steps` steps and exports to `job.serving_model_dir` (chief only)."""
    data = section_from_dict(DataConfig, job.custom_config["data"])
    model_config = section_from_dict(ModelConfig, job.custom_config["model"])
    training = section_from_dict(TrainingConfig, job.custom_config["training"])
    # First: a multi-worker strategy must set up its collectives before any other TF op.
    strategy = create_strategy(training)
    tf.keras.utils.set_random_seed(training.seed)
    checkpoint = job.custom_config.get("checkpoint")
    tf_transform_output = tft.TFTransformOutput(job.transform_output)
    label_names = [name.decode("utf-8") for name in
                   tf_transform_output.vocabulary_by_name(features.LABEL_VOCABULARY)]
    vocab_size = (checkpoint["vocab_size"] if checkpoint else
                  tf_transform_output.vocabulary_size_by_name(features.WORD_VOCABULARY))
    schema = tf_transform_output.transformed_metadata.schema
    datasets = {
        split: input_dataset(files, schema, training.batch_size, training=split == "train",
                             seed=training.seed, max_seq_length=model_config.max_seq_length)
        for split, files in (("train", job.train_files), ("eval", job.eval_files))}
    steps_per_epoch = math.ceil(job.train_steps / training.epochs)
    total_steps = steps_per_epoch * training.epochs
    pooling = resolve_pooling(model_config, checkpoint)
    logging.info("Trainer: %d steps (%d epochs x %d) of batch %d; %s, %s pooling; vocabulary %d; "
                 "labels %s", total_steps, training.epochs, steps_per_epoch, training.batch_size,
                 f"fine-tuning {checkpoint['path']}" if checkpoint else "training from scratch",
                 pooling, vocab_size, label_names)

    build = functools.partial(build_classifier, model_config, vocab_size=vocab_size,
                              num_labels=len(label_names),
                              checkpoint_path=checkpoint["path"] if checkpoint else None,
                              pooling=pooling)
    logging.info("Trainer: precision %s%s", training.precision,
                 "" if training.precision == "fp32" else " (the export computes in float32)")
    with precision_policy(training.precision), strategy.scope():
        model = build()
        if training.warm_start:
            _warm_start(model, job.base_model)
        compile_classifier(model, training, total_steps=total_steps)
    # Counts the steps this process trains (after a resume, only the missing ones).
    throughput = SteadyThroughput(THROUGHPUT_SKIP_STEPS)
    callbacks = [*training_callbacks(training, job, steps_per_epoch), throughput]
    started = time.monotonic()
    history = model.fit(
        datasets["train"],
        epochs=training.epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=datasets["eval"],
        validation_steps=training.eval_steps or None,
        callbacks=callbacks,
        # Progress bars on a terminal; in log files one line per epoch plus StepLogger's lines.
        verbose=1 if sys.stdout.isatty() else 2,
    )
    chief = is_chief(strategy)
    if chief:
        _write_training_stats(job.model_run_dir, seconds=time.monotonic() - started,
                              throughput=throughput, batch_size=training.batch_size,
                              history=history.history, plan=job.custom_config.get("plan"))
    # Every worker takes part in saving (variables may need a collective read); only the
    # chief's copy is kept.
    export_dir = job.serving_model_dir if chief else tempfile.mkdtemp(prefix="textclf-export-")
    served = model if training.precision == "fp32" else float32_copy(model, build)
    export_serving_model(served, tf_transform_output, text_columns=data.text_columns,
                         label_names=label_names, export_dir=export_dir,
                         max_seq_length=model_config.max_seq_length, checkpoint=checkpoint)
    if chief:
        logging.info("Trainer: exported the serving model to %s", export_dir)
    else:
        tf.io.gfile.rmtree(export_dir)


def float32_copy(model: TextClassifier, build: Callable[[], TextClassifier]) -> TextClassifier:
    """`model`'s trained weights in the same classifier built to compute in float32.

    What ships computes in float32 whatever precision trained it: a bfloat16 graph crawls on
    CPUs without bfloat16 units, and TFLite's converter rejects bfloat16 tensors. Mixed
    precision keeps the variables in float32, so the copy rounds nothing.
    """
    with precision_policy("fp32"):
        copy = build()
    copy.set_weights(model.get_weights())
    return copy


def training_callbacks(training: TrainingConfig, job: TrainingJob,
                       steps_per_epoch: int) -> list[tf.keras.callbacks.Callback]:
    """Step logs, TensorBoard, progress lines, crash-safe backups, early stopping: as configured."""
    task, workers = cluster_task()
    callbacks = [
        BatchLogs(workers),
        tf.keras.callbacks.TensorBoard(log_dir=job.model_run_dir,
                                       update_freq=training.log_every_steps or "epoch"),
        StepLogger(training.log_every_steps, steps_per_epoch, training.batch_size, task),
    ]
    if training.checkpoint_every_steps:
        callbacks.append(ResumableBackup(job.backup_dir, training.checkpoint_every_steps,
                                         training.keep_checkpoints, task))
    if training.early_stopping_patience:
        callbacks.append(tf.keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=training.early_stopping_patience,
            restore_best_weights=True, verbose=1))
    return callbacks


def _warm_start(model: TextClassifier, base_model: Optional[str]) -> None:
    """Loads the weights of the last blessed export (before compile, so not its optimizer)."""
    if not base_model:
        logging.info("Trainer: warm start asked, but there is no blessed model yet; starting "
                     "from the configured initialisation")
        return
    weights = os.path.join(base_model, "variables", "variables")
    try:
        model.load_weights(weights).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise WarmStartError(
            f"cannot warm-start from the blessed model {base_model}: its weights do not fit this "
            f"model (changed labels, encoder or checkpoint?). Set training.warm_start=false to "
            f"start from model.pretrained instead. ({error})") from error
    logging.info("Trainer: warm start from the blessed model %s", base_model)


def _write_training_stats(model_run_dir: str, seconds: float, throughput: SteadyThroughput,
                          batch_size: int, history: dict[str, list[float]],
                          plan: Optional[dict[str, Any]]) -> None:
    """Logs the throughput of this process's steps (after a resume, only the new ones) and keeps
    it in the ModelRun with every epoch's metrics (the validation curve shows where it peaked)
    and the plan's values with the rule behind each."""
    steps = throughput.steps
    examples = steps * batch_size
    steady = throughput.steps_per_second()
    by_epoch = {name: [float(value) for value in values] for name, values in history.items()}
    stats = {"fit_seconds": round(seconds, 1), "train_steps": steps, "train_examples": examples,
             "examples_per_second": round(examples / seconds, 2),
             # Training only, after the first THROUGHPUT_SKIP_STEPS steps (tracing), no validation.
             "steady_examples_per_second": round(steady * batch_size, 2) if steady else None,
             "last_epoch": {name: values[-1] for name, values in by_epoch.items()},
             "by_epoch": by_epoch, "plan": plan}
    logging.info("Trainer: fit took %.1f s for %d steps, %d examples (%.1f examples/s, "
                 "validation included)", seconds, steps, examples, examples / seconds)
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, TRAINING_STATS_FILE), "w") as handle:
        json.dump(stats, handle, indent=2)
