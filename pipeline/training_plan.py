"""The learning rate and training length a run uses, and the rule each one came from.

A user who names a checkpoint should get a fine-tuning recipe without knowing one: a small
learning rate and a few passes over the real training rows, as the Hugging Face examples do
(measured here: MiniLM at the from-scratch 1e-3 reached 0.82 on a three-class task, 0.85 at 5e-5
over more epochs). Training from scratch keeps its own defaults. A value the user set always
wins; the run log and the report quote which rule decided each value.
"""

from __future__ import annotations

import dataclasses
import math

from pipeline.config import PipelineConfig, TrainingConfig

FROM_SCRATCH_LEARNING_RATE = 1e-3
FINE_TUNING_LEARNING_RATE = 5e-5
FROM_SCRATCH_TRAIN_STEPS = 300


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """Resolved values with their reasons; `train_steps` 0 until the Trainer has counted the
    training rows (fine-tuning without `training.train_steps`)."""

    learning_rate: float
    learning_rate_rule: str
    train_steps: int
    train_steps_rule: str

    def over_rows(self, training_rows: int, epochs: int, batch_size: int) -> "TrainingPlan":
        """The plan with its training length counted: `epochs` passes over `training_rows`."""
        if self.train_steps:
            return self
        # Whole epochs: the Trainer validates after each, so each is a full pass.
        steps = epochs * max(1, math.ceil(training_rows / batch_size))
        return dataclasses.replace(self, train_steps=steps, train_steps_rule=(
            f"{self.train_steps_rule}: {epochs} epoch{'s' if epochs != 1 else ''} x "
            f"{training_rows} training rows / batch {batch_size}"))

    def applied_to(self, training: TrainingConfig) -> TrainingConfig:
        """`training` with the plan's learning rate and (once known) steps filled in: what the
        Trainer, and a benchmark that compiles the classifier itself, train with."""
        return dataclasses.replace(training, learning_rate=self.learning_rate,
                                   train_steps=self.train_steps or None)

    def describe(self) -> str:
        """One line for the run log."""
        return (f"learning rate {self.learning_rate:g} ({self.learning_rate_rule}); "
                f"{self.train_steps} steps ({self.train_steps_rule})")


def plan_training(training: TrainingConfig, fine_tuning: bool) -> TrainingPlan:
    """What `training` leaves unset (None), filled by the rule for `fine_tuning` or not."""
    if training.learning_rate is not None:
        learning_rate, learning_rate_rule = training.learning_rate, "set: training.learning_rate"
    elif fine_tuning:
        learning_rate, learning_rate_rule = (
            FINE_TUNING_LEARNING_RATE, "fine-tuning default: a checkpoint is named "
                                       "(model.pretrained) and training.learning_rate is unset")
    else:
        learning_rate, learning_rate_rule = (
            FROM_SCRATCH_LEARNING_RATE, "from-scratch default: training.learning_rate is unset")
    if training.train_steps is not None:
        train_steps, train_steps_rule = training.train_steps, "set: training.train_steps"
    elif fine_tuning:
        train_steps, train_steps_rule = 0, ("fine-tuning default: training.epochs passes over "
                                            "the training rows, training.train_steps is unset")
    else:
        train_steps, train_steps_rule = (
            FROM_SCRATCH_TRAIN_STEPS, "from-scratch default: training.train_steps is unset")
    return TrainingPlan(learning_rate, learning_rate_rule, train_steps, train_steps_rule)


def run_plan(config: PipelineConfig) -> TrainingPlan:
    """The plan of a run of `config`: fine-tuning when it names a checkpoint."""
    return plan_training(config.training, fine_tuning=bool(config.model.pretrained))
