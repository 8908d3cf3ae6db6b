"""The training job's callbacks, its stable backup location and its float32 export copy."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from modules import features
from modules.bert_classifier import build_classifier, compile_classifier
from modules.callbacks import BatchLogs, ResumableBackup, SteadyThroughput
from modules.strategy import precision_policy
from modules.training import TrainingJob, float32_copy, training_callbacks
from pipeline.config import ModelConfig, TrainingConfig


def _job(tmp_path, **changes) -> TrainingJob:
    values = dict(train_files=["train/*"], eval_files=["eval/*"], transform_output="graph",
                  serving_model_dir=str(tmp_path / "serving"),
                  model_run_dir=str(tmp_path / "run-1"), train_steps=100,
                  custom_config={"backup_root": str(tmp_path / "backups"), "training": {}})
    values.update(changes)
    return TrainingJob(**values)


def test_a_rerun_of_the_same_job_finds_the_same_backups_and_a_changed_job_does_not(tmp_path):
    first = _job(tmp_path)
    rerun = _job(tmp_path, model_run_dir=str(tmp_path / "run-2"),
                 serving_model_dir=str(tmp_path / "serving-2"))
    assert rerun.backup_dir == first.backup_dir
    assert first.backup_dir.startswith(str(tmp_path / "backups"))
    assert _job(tmp_path, train_steps=200).backup_dir != first.backup_dir
    assert TrainingJob.from_json(first.to_json()) == first


def test_early_stopping_watches_the_eval_loss_when_configured(tmp_path):
    stoppers = [callback for callback in training_callbacks(
        TrainingConfig(early_stopping_patience=2), _job(tmp_path), steps_per_epoch=10)
        if isinstance(callback, tf.keras.callbacks.EarlyStopping)]
    assert len(stoppers) == 1
    assert stoppers[0].monitor == "val_loss" and stoppers[0].patience == 2
    assert stoppers[0].restore_best_weights
    assert not any(isinstance(callback, tf.keras.callbacks.EarlyStopping)
                   for callback in training_callbacks(TrainingConfig(), _job(tmp_path), 10))


def test_backups_are_kept_as_configured_or_not_at_all(tmp_path):
    callbacks = training_callbacks(TrainingConfig(checkpoint_every_steps=50, keep_checkpoints=4),
                                   _job(tmp_path), steps_per_epoch=10)
    backup = next(callback for callback in callbacks if isinstance(callback, ResumableBackup))
    assert (backup.save_freq, backup.keep) == (50, 4)
    assert not any(isinstance(callback, ResumableBackup) for callback in training_callbacks(
        TrainingConfig(checkpoint_every_steps=0), _job(tmp_path), steps_per_epoch=10))


def test_step_logs_get_the_learning_rate_and_multi_worker_sums_are_undone():
    model = build_classifier(ModelConfig(num_layers=1, hidden_size=32, num_attention_heads=2,
                                         intermediate_size=64), vocab_size=20, num_labels=2)
    compile_classifier(model, TrainingConfig(learning_rate=1e-3, warmup_ratio=0.0),
                       total_steps=10)
    batch_logs = BatchLogs(workers=2)
    batch_logs.set_model(model)
    logs = {"loss": tf.constant(1.4), "accuracy": tf.constant(1.0)}
    batch_logs.on_train_batch_end(0, logs)
    assert float(logs["loss"]) == pytest.approx(0.7) and float(logs["accuracy"]) == 0.5
    assert float(logs["learning_rate"]) == pytest.approx(1e-3)


def test_steady_throughput_leaves_out_the_first_steps_and_validation(monkeypatch):
    assert SteadyThroughput(skip_steps=50).steps_per_second() is None  # nothing measured yet
    clock = iter([0.0, 0.0, 10.0, 11.0, 12.0, 100.0, 101.0])
    monkeypatch.setattr("modules.callbacks.time.monotonic", lambda: next(clock))
    meter = SteadyThroughput(skip_steps=1)  # reads the clock at 0
    meter.on_epoch_begin(0)                 # 0
    for batch in range(3):                  # 10 (tracing, left out), 11, 12
        meter.on_train_batch_end(batch)
    meter.on_epoch_begin(1)                 # 100: the 88 s of validation do not count
    meter.on_train_batch_end(0)             # 101
    assert meter.steps_per_second() == pytest.approx(1.0)  # 3 steps in 3 s


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_a_mixed_precision_model_ships_as_a_float32_copy_of_its_trained_weights(pooling):
    model_config = ModelConfig(num_layers=1, hidden_size=32, num_attention_heads=2,
                               intermediate_size=64, max_seq_length=16)
    build = functools.partial(build_classifier, model_config, vocab_size=30, num_labels=2,
                              pooling=pooling)
    rng = np.random.default_rng(0)
    inputs = {features.INPUT_WORD_IDS: rng.integers(4, 30, size=(8, 12)),
              features.INPUT_MASK: np.ones((8, 12), np.int64),
              features.SEGMENT_IDS: np.zeros((8, 12), np.int64)}
    with precision_policy("mixed_bfloat16"):
        trained = build()
        compile_classifier(trained, TrainingConfig(learning_rate=1e-2), total_steps=3)
    trained.fit(inputs, rng.integers(0, 2, size=8), epochs=3, verbose=0)

    copy = float32_copy(trained, build)

    def float_dtypes(model):
        return {layer.compute_dtype for layer in model.layers
                if tf.as_dtype(layer.compute_dtype).is_floating}

    assert float_dtypes(copy) == {"float32"}
    assert "bfloat16" in float_dtypes(trained)
    assert len(copy.weights) == len(trained.weights)
    for ours, theirs in zip(copy.weights, trained.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    # Same function, computed in float32 instead of bfloat16 (about 3 significant digits).
    np.testing.assert_allclose(copy(inputs).numpy(), trained(inputs).numpy(), atol=0.05)
    assert tf.keras.mixed_precision.global_policy().name == "float32"
