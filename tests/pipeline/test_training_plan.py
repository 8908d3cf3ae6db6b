"""The learning rate and training length each run gets, and the rule it quotes for each."""

import pytest

from pipeline.config import PipelineConfig, TrainingConfig
from pipeline.training_plan import (FINE_TUNING_LEARNING_RATE, FROM_SCRATCH_LEARNING_RATE,
                                    FROM_SCRATCH_TRAIN_STEPS, plan_training, run_plan)


def test_from_scratch_keeps_todays_defaults():
    plan = plan_training(TrainingConfig(), fine_tuning=False)
    assert (plan.learning_rate, plan.train_steps) == (FROM_SCRATCH_LEARNING_RATE,
                                                     FROM_SCRATCH_TRAIN_STEPS) == (1e-3, 300)
    assert plan.learning_rate_rule.startswith("from-scratch default")
    # Already counted: the rows do not change a from-scratch length.
    assert plan.over_rows(10_000, epochs=3, batch_size=32) == plan


def test_a_named_checkpoint_gets_a_fine_tuning_recipe_over_the_real_rows():
    config = PipelineConfig.load(None, ["model.pretrained=/checkpoints/minilm",
                                        "training.epochs=2", "training.batch_size=16"])
    plan = run_plan(config)
    assert plan.learning_rate == FINE_TUNING_LEARNING_RATE == 5e-5
    assert "a checkpoint is named" in plan.learning_rate_rule
    assert plan.train_steps == 0  # the Trainer counts the rows
    counted = plan.over_rows(1_601, epochs=2, batch_size=16)
    assert counted.train_steps == 202  # 2 x ceil(1,601 / 16): whole passes
    assert "2 epochs x 1601 training rows / batch 16" in counted.train_steps_rule
    assert "202 steps" in counted.describe() and "5e-05" in counted.describe()


def test_the_applied_plan_fills_what_the_configuration_left_unset():
    """What the Trainer (and a benchmark compiling the classifier itself) trains with."""
    training = TrainingConfig(batch_size=8)
    applied = plan_training(training, fine_tuning=False).applied_to(training)
    assert (applied.learning_rate, applied.train_steps, applied.batch_size) == (1e-3, 300, 8)
    uncounted = plan_training(training, fine_tuning=True).applied_to(training)
    assert (uncounted.learning_rate, uncounted.train_steps) == (5e-5, None)  # rows not counted


@pytest.mark.parametrize("fine_tuning", [False, True])
def test_values_the_user_set_win_over_every_rule(fine_tuning):
    config = PipelineConfig.load(None, ["training.learning_rate=2e-4", "training.train_steps=70"])
    plan = plan_training(config.training, fine_tuning=fine_tuning)
    assert (plan.learning_rate, plan.train_steps) == (2e-4, 70)
    assert plan.learning_rate_rule == "set: training.learning_rate"
    assert plan.train_steps_rule == "set: training.train_steps"
    assert plan.over_rows(1_000_000, epochs=3, batch_size=32).train_steps == 70


def test_auto_unsets_a_value_a_yaml_file_set(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  learning_rate: 0.01\n  train_steps: 50\n", encoding="utf-8")
    config = PipelineConfig.load(str(path), ["training.learning_rate=auto",
                                             "training.train_steps=auto"])
    assert (config.training.learning_rate, config.training.train_steps) == (None, None)


def test_a_tiny_split_still_trains_one_step_per_epoch():
    plan = plan_training(TrainingConfig(epochs=3), fine_tuning=True)
    assert plan.over_rows(2, epochs=3, batch_size=32).train_steps == 3


def test_the_command_line_flags_set_the_plans_inputs():
    from pipeline import cli  # pylint: disable=import-outside-toplevel

    args = cli._parser().parse_args(  # pylint: disable=protected-access
        ["run", "--pretrained", "/checkpoints/minilm", "--epochs", "4",
         "--learning-rate", "3e-5", "--encoding", "cp1252"])
    config = cli.load_config(args)
    assert (config.training.epochs, config.training.learning_rate) == (4, 3e-5)
    assert config.data.encoding == "cp1252"
    assert run_plan(config).learning_rate_rule == "set: training.learning_rate"
