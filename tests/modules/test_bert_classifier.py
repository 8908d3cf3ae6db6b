"""The Hugging Face BERT classifier builds from the config and learns."""

import numpy as np
import tensorflow as tf

from modules import features
from modules.bert_classifier import build_classifier, compile_classifier
from pipeline.config import ModelConfig, TrainingConfig


def _batch(batch_size: int, seq_length: int, vocab_size: int):
    rng = np.random.default_rng(0)
    word_ids = rng.integers(4, vocab_size, size=(batch_size, seq_length))
    word_ids[:, 0] = features.CLS_ID
    word_ids[:, -1] = features.SEP_ID
    inputs = {features.INPUT_WORD_IDS: word_ids,
              features.INPUT_MASK: np.ones_like(word_ids),
              features.SEGMENT_IDS: np.zeros_like(word_ids)}
    # The label is readable from the first word, so a few steps must fit it.
    labels = (word_ids[:, 1] % 3).astype(np.int64)
    return inputs, labels


def test_builds_with_the_configured_shape_and_any_sequence_length():
    model_config = ModelConfig(num_layers=1, hidden_size=32, num_attention_heads=2,
                               intermediate_size=64, max_seq_length=16)
    model = build_classifier(model_config, vocab_size=50, num_labels=3)
    bert = model.get_layer("bert_classifier")
    assert bert.config.num_hidden_layers == 1 and bert.config.hidden_size == 32
    for seq_length in (16, 7):  # batches are trimmed to their longest row
        inputs, _ = _batch(4, seq_length, 50)
        assert model(inputs).shape == (4, 3)


def test_training_steps_lower_the_loss():
    tf.keras.utils.set_random_seed(0)
    model_config = ModelConfig(num_layers=1, hidden_size=32, num_attention_heads=2,
                               intermediate_size=64, max_seq_length=8, dropout=0.0)
    model = build_classifier(model_config, vocab_size=20, num_labels=3)
    compile_classifier(model, TrainingConfig(learning_rate=5e-3), total_steps=40)
    inputs, labels = _batch(32, 8, 20)
    first_loss = model.train_on_batch(inputs, labels)[0]
    for _ in range(39):
        last_loss = model.train_on_batch(inputs, labels)[0]
    assert np.isfinite(first_loss) and np.isfinite(last_loss)
    assert last_loss < 0.5 * first_loss
