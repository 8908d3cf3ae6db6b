"""Keras callbacks of the Trainer: progress lines, per-step learning rate, crash-safe backups."""

from __future__ import annotations

import time

import tensorflow as tf
from absl import logging


class StepLogger(tf.keras.callbacks.Callback):
    """Logs loss and throughput every `every` steps: an epoch can take many minutes on CPU."""

    def __init__(self, every: int, steps_per_epoch: int, batch_size: int, task: str = ""):
        super().__init__()
        self.every, self.steps_per_epoch, self.batch_size = every, steps_per_epoch, batch_size
        self.prefix = _log_prefix(task)
        self.epoch, self.started, self.first_batch = 0, time.monotonic(), 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch, self.started, self.first_batch = epoch, time.monotonic(), None

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        # A resumed epoch starts at the batch after the checkpoint, not at 0.
        if self.first_batch is None:
            self.first_batch = batch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = batch + 1
        if self.every and step % self.every == 0:
            seconds = time.monotonic() - self.started
            logging.info("%s: epoch %d step %d/%d, loss %.4f, %.1f examples/s", self.prefix,
                         self.epoch + 1, step, self.steps_per_epoch,
                         (logs or {}).get("loss", float("nan")),
                         (step - self.first_batch) * self.batch_size / seconds)


class SteadyThroughput(tf.keras.callbacks.Callback):
    """Training steps per second after the first `skip_steps`, which carry graph tracing.

    Tracing (a few times, for new sequence lengths) costs tens of seconds on a CPU; runs of
    thousands of steps barely notice it, short benchmark runs would measure little else.
    """

    def __init__(self, skip_steps: int):
        super().__init__()
        self.skip_steps, self.steps, self.seconds = skip_steps, 0, 0.0
        self.previous = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.previous = time.monotonic()  # validation, between epochs, does not count

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.monotonic()
        self.steps += 1
        if self.steps > self.skip_steps:
            self.seconds += now - self.previous
        self.previous = now

    def steps_per_second(self) -> float | None:
        """None when training ended within the skipped steps."""
        measured = self.steps - self.skip_steps
        return measured / self.seconds if measured > 0 and self.seconds else None


class BatchLogs(tf.keras.callbacks.Callback):
    """Completes every step's logs before the other callbacks read them.

    Adds the optimizer's learning rate, so TensorBoard plots it per step beside loss and accuracy
    (`batch_learning_rate`). Under MultiWorkerMirroredStrategy tf-keras sums each worker's copy
    of the (already global) step metrics across the workers; dividing by the worker count
    restores the true values for TensorBoard and StepLogger. Must come first in the list.
    """

    def __init__(self, workers: int = 1):
        super().__init__()
        self.workers = workers
        # Receive the same logs dict as TensorBoard (it takes tensors, not numpy copies).
        self._supports_tf_logs = True

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        if self.workers > 1:
            for name, value in logs.items():
                logs[name] = value / self.workers
        logs["learning_rate"] = self.model.optimizer.learning_rate


class ResumableBackup(tf.keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore (model, optimizer and step; mid-epoch resume; multi-worker aware),
    keeping the last `keep` checkpoints rather than one, and logging where training resumed.

    Backups are deleted when `fit` completes: the export is then the durable result.
    """

    def __init__(self, backup_dir: str, every_steps: int, keep: int, task: str = ""):
        super().__init__(backup_dir, save_freq=every_steps, delete_checkpoint=True)
        self.keep = keep
        # Its checkpointing is device-agnostic; tf-keras only leaves OneDevice off its list.
        self._supported_strategies += (tf.distribute.OneDeviceStrategy,)
        self.prefix = _log_prefix(task)

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        state = self._training_state
        # tf-keras hard-codes one checkpoint; a second copy survives a crash that corrupts the
        # newest. tf-keras is pinned in requirements.lock, and the resume test covers this.
        for manager in (state.read_checkpoint_manager, state.write_checkpoint_manager):
            manager._max_to_keep = self.keep  # pylint: disable=protected-access
        resumed_step = int(self.model.optimizer.iterations.numpy())
        if resumed_step:
            logging.info("%s: resumed from the checkpoint at step %d in %s", self.prefix,
                         resumed_step, self.backup_dir)
        else:
            logging.info("%s: no checkpoint in %s; starting at step 0", self.prefix,
                         self.backup_dir)


def _log_prefix(task: str) -> str:
    """'Trainer', or 'Trainer (worker 1 of 2)': the local launcher forwards the latter's lines."""
    return f"Trainer ({task})" if task else "Trainer"
