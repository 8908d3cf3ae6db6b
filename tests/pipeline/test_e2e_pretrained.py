"""Fine-tuning through the whole DAG (the `pretrained_run` fixture: the offline all-MiniLM-L6-v2
checkpoint on 200 rows of the default data, real LocalDagRunner, Beam and MLMD)."""

import glob
import json
import math
import pathlib
import re
import subprocess
import sys

import numpy as np
import tensorflow as tf
from modules import features
from modules.training import TRAINING_STATS_FILE
from pipeline.local_runner import newest_artifact, newest_executions
from pipeline.metadata import metadata_store_of
from tests.conftest import REPO_ROOT

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


def _training_rows(config) -> int:
    [examples] = [artifact for artifact in metadata_store_of(config).get_artifacts_by_type(
        "Examples") if "/CsvExampleGen/" in artifact.uri]
    files = glob.glob(f"{examples.uri}/Split-train/*.gz")
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def test_the_fine_tuning_defaults_train_one_epoch_of_the_real_rows_at_5e_5(pretrained_run):
    """No learning rate or steps given: the plan's rules decide, and the stats say which."""
    config, _ = pretrained_run
    model_run = newest_artifact(config, "ModelRun")
    stats = json.loads(tf.io.gfile.GFile(
        str(pathlib.Path(model_run.uri, TRAINING_STATS_FILE))).read())
    steps = math.ceil(_training_rows(config) / 16)
    assert 6 <= steps <= 14  # about 160 of the 200 rows
    assert stats["train_steps"] == stats["plan"]["train_steps"] == steps
    assert stats["train_examples"] == steps * 16  # the throughput counts every step
    assert stats["plan"]["learning_rate"] == 5e-5
    assert "a checkpoint is named" in stats["plan"]["learning_rate_rule"]
    assert f"1 epoch x {_training_rows(config)} training rows" in stats["plan"]["train_steps_rule"]


def test_the_readmes_loading_snippet_works_for_a_fine_tuned_model_as_written(pretrained_run):
    """In a fresh interpreter, as a user would paste it: the graph's text ops must be registered
    by the snippet itself (without `import tensorflow_text`, 'Op type not registered')."""
    _, outcome = pretrained_run
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(import tensorflow as tf\n.*?)```", readme, re.S).group(1)
    assert "<version>" in snippet
    script = snippet.replace("outputs/serving_models/textclf/<version>", outcome.pushed_model_dir)
    script += ("print('LABELS', model.signatures['predict_text'](text=tf.constant(['Great "
               "value.']))['label'].numpy())\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, check=False, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"LABELS \[b'(positive|negative)'\]", result.stdout)
