"""Strategy and precision choice from the configuration, on this CPU-only machine."""

import json

import tensorflow as tf

from modules.strategy import cluster_task, create_strategy, is_chief, precision_policy
from pipeline.config import TrainingConfig


def test_auto_on_a_machine_without_accelerators_is_the_default_strategy():
    """No distribution on one device: OneDeviceStrategy cost 10-16 % of the steps here."""
    strategy = create_strategy(TrainingConfig())
    assert strategy is tf.distribute.get_strategy()
    assert not isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert strategy.num_replicas_in_sync == 1 and is_chief(strategy)


def test_one_device_by_name_is_the_cpu():
    strategy = create_strategy(TrainingConfig(strategy="one_device"))
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert "CPU" in strategy.extended.worker_devices[0] and is_chief(strategy)


def test_mirrored_by_name():
    assert isinstance(create_strategy(TrainingConfig(strategy="mirrored")),
                      tf.distribute.MirroredStrategy)


def test_cluster_task_reads_tf_config(monkeypatch):
    assert cluster_task() == ("", 1)
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]},
        "task": {"type": "worker", "index": 2}}))
    assert cluster_task() == ("worker 2 of 3", 3)


def test_precision_policy_is_restored_even_when_building_fails():
    try:
        with precision_policy("mixed_bfloat16"):
            assert tf.keras.mixed_precision.global_policy().name == "mixed_bfloat16"
            raise RuntimeError("build failed")
    except RuntimeError:
        pass
    assert tf.keras.mixed_precision.global_policy().name == "float32"
