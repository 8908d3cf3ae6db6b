"""The whole DAG on tiny checkpoints of the two tokenizer kinds besides WordPiece: SentencePiece
(XLM-RoBERTa) and byte-level BPE (RoBERTa), built offline by `tests.checkpoint_families`.

Each family's fixture is one fine-tuning run (~90 s: real LocalDagRunner, Beam and MLMD on 200
rows of the default data, the fine-tuning defaults for one epoch). ALBERT and DeBERTa-v2 take
XLM-R's SentencePiece path through the same components; their graphs, exports and parity are
tested in tests/modules/test_checkpoint_tokenizers.py without a DAG run each.
"""

import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components.tokenizer_parity import REPORT_FILE, TokenizerParityReport
from modules import features
from modules.bert_classifier import build_classifier
from modules.training import TRAINING_STATS_FILE
from pipeline.checkpoint import reference_tokenizer
from pipeline.config import PipelineConfig
from pipeline.local_runner import newest_artifact, run_local
from tests.checkpoint_families import HARD_CASES, build_checkpoint
from tests.conftest import write_sample
from tests.serving.server_process import assert_served_like_saved_model

TEXTS = ["The battery lasts all day. Great value.", "Avoid. The zipper jammed on day one.",
         *HARD_CASES]


@pytest.fixture(scope="module", params=["xlm-roberta", "roberta"])
def family_run(request, tmp_path_factory):
    """(checkpoint folder, config, outcome) of one run of `textclf run --pretrained <tiny>`."""
    root = tmp_path_factory.mktemp(request.param)
    checkpoint = build_checkpoint(request.param, root / "checkpoint")
    write_sample(root / "data", rows=200)
    config = PipelineConfig.load(None, [
        f"data.path={root / 'data'}", f"output_dir={root / 'outputs'}",
        f"model.pretrained={checkpoint}", "training.epochs=1", "training.batch_size=16",
        "evaluation.min_accuracy=0"])
    return checkpoint, config, run_local(config)


def test_the_tiny_checkpoint_passes_parity_trains_with_the_defaults_and_is_pushed(family_run):
    _, config, outcome = family_run
    assert outcome.blessed and outcome.pushed_model_dir
    parity = json.loads(pathlib.Path(newest_artifact(config, TokenizerParityReport.TYPE_NAME).uri,
                                     REPORT_FILE).read_text())
    assert parity["passed"] and parity["parity"] == 1.0 and parity["examples"] > 20
    stats = json.loads(pathlib.Path(newest_artifact(config, "ModelRun").uri,
                                    TRAINING_STATS_FILE).read_text())
    assert stats["plan"]["learning_rate"] == 5e-5 and stats["train_steps"] > 0


def test_the_pushed_model_answers_raw_text_as_the_trained_keras_model(family_run):
    """The served graph tokenizes as the checkpoint's Hugging Face tokenizer, and its
    probabilities are those of the classifier rebuilt in memory with the pushed weights."""
    checkpoint, config, outcome = family_run
    transform_output = tft.TFTransformOutput(newest_artifact(config, "TransformGraph").uri)
    # The raw text as ExampleGen's schema declares it: one value per example.
    text_shape = transform_output.raw_feature_spec()["text"].shape
    transformed = transform_output.transform_features_layer()(
        {"text": tf.reshape(tf.constant(TEXTS), [-1, *text_shape])})
    expected = reference_tokenizer(str(checkpoint))(
        TEXTS, truncation=True, max_length=config.model.max_seq_length, padding="max_length")
    np.testing.assert_array_equal(transformed[features.INPUT_WORD_IDS].numpy(),
                                  np.array(expected["input_ids"]))

    model = build_classifier(config.model, vocab_size=0, num_labels=2,
                             checkpoint_path=str(checkpoint))
    model.load_weights(os.path.join(outcome.pushed_model_dir, "variables", "variables")
                       ).expect_partial().assert_existing_objects_matched()
    logits = model({name: transformed[name] for name in features.MODEL_INPUTS}, training=False)
    loaded = tf.saved_model.load(outcome.pushed_model_dir)
    served = loaded.signatures[features.TEXT_SIGNATURE](text=tf.constant(TEXTS))
    np.testing.assert_allclose(served[features.PROBABILITIES].numpy(),
                               tf.nn.softmax(logits, axis=-1).numpy(), atol=1e-5)


def test_textclf_serve_answers_as_the_pushed_saved_model(family_run):
    _, config, outcome = family_run
    assert_served_like_saved_model(pathlib.Path(config.output_dir), config.model_name,
                                   outcome.pushed_model_dir, TEXTS)
