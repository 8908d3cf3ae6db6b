"""Fine-tuning through the whole DAG (the `pretrained_run` fixture: the offline all-MiniLM-L6-v2
checkpoint on 200 rows of the default data, real LocalDagRunner, Beam and MLMD)."""

import pathlib

import numpy as np
import tensorflow as tf
from modules import features
from modules.training import TRAINING_STATS_FILE
from pipeline.local_runner import newest_artifact, newest_executions

SENTENCES = ["The battery lasts all day. Great value.", "Avoid. The zipper jammed on day one."]


def test_parity_is_checked_before_training_starts(pretrained_run):
    config, _ = pretrained_run
    executions = newest_executions(config)
    parity, trainer = executions["TokenizerParity"], executions["Trainer"]
    assert parity.last_known_state == trainer.last_known_state == 3  # COMPLETE
    assert trainer.create_time_since_epoch >= parity.last_update_time_since_epoch


def test_the_pushed_model_is_the_fine_tuned_checkpoint_and_serves_raw_text(pretrained_run,
                                                                         offline_checkpoint):
    config, outcome = pretrained_run
    assert outcome.blessed and outcome.pushed_model_dir
    pushed = pathlib.Path(outcome.pushed_model_dir)
    assert (pushed / "assets" / "vocab.txt").read_bytes() == (
        offline_checkpoint / "vocab.txt").read_bytes()
    loaded = tf.saved_model.load(str(pushed))  # keeps the variables alive
    predict_text = loaded.signatures[features.TEXT_SIGNATURE]
    # MiniLM's word embeddings: 30,522 word pieces x 384.
    assert any(variable.shape == (30522, 384) for variable in predict_text.variables)
    output = predict_text(text=tf.constant(SENTENCES))
    np.testing.assert_allclose(output[features.PROBABILITIES].numpy().sum(axis=1), 1.0, rtol=1e-5)
    assert set(output[features.PREDICTED_LABEL].numpy()) <= {b"negative", b"positive"}


def test_the_trainer_records_its_throughput(pretrained_run):
    config, _ = pretrained_run
    model_run = newest_artifact(config, "ModelRun")
    stats = tf.io.gfile.GFile(str(pathlib.Path(model_run.uri, TRAINING_STATS_FILE))).read()
    assert '"train_examples": 128' in stats  # 8 steps x 16
