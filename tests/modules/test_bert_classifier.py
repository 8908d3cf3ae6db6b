"""The Hugging Face classifier: from the config or from the offline pretrained checkpoint.

The pretrained tests load the all-MiniLM-L6-v2 checkpoint of the `offline_checkpoint` fixture.
"""

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file

from modules import features
from modules.bert_classifier import (MaskedMeanPooling, WarmupLinearDecay, build_classifier,
                                     compile_classifier, resolve_pooling)
from modules.strategy import precision_policy
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


def test_pretrained_weights_load_from_safetensors_without_torch(offline_checkpoint):
    model = build_classifier(ModelConfig(), vocab_size=0, num_labels=3,
                             checkpoint_path=str(offline_checkpoint))
    encoder = model.get_layer("pretrained_classifier")
    weights = {variable.name: variable.numpy() for variable in encoder.weights}
    embeddings = next(value for name, value in weights.items() if "word_embeddings" in name)
    stored = load_file(str(offline_checkpoint / "model.safetensors"))
    np.testing.assert_array_equal(embeddings, stored["embeddings.word_embeddings.weight"])
    assert encoder.config.hidden_size == 384 and encoder.config.num_hidden_layers == 6
    inputs, _ = _batch(2, 9, 30522)
    assert model(inputs).shape == (2, 3)  # a new head with one output per label


def test_the_mean_pooled_head_loads_the_checkpoint_and_padding_does_not_move_it(
        offline_checkpoint):
    model = build_classifier(ModelConfig(), vocab_size=0, num_labels=3,
                             checkpoint_path=str(offline_checkpoint), pooling="mean")
    encoder = model.get_layer("pretrained_encoder")
    embeddings = next(variable.numpy() for variable in encoder.weights
                      if "word_embeddings" in variable.name)
    stored = load_file(str(offline_checkpoint / "model.safetensors"))
    np.testing.assert_array_equal(embeddings, stored["embeddings.word_embeddings.weight"])
    # Only what the output depends on is trained: not the unused [CLS] pooler.
    assert not [variable.name for variable in model.trainable_variables if "pooler" in variable.name]

    inputs, _ = _batch(2, 9, 30522)
    padded = {name: np.pad(values, ((0, 0), (0, 5))) for name, values in inputs.items()}
    padded[features.INPUT_WORD_IDS][:, 9:] = features.PAD_ID  # mask 0 over the padding
    logits = model(inputs, training=False).numpy()
    assert logits.shape == (2, 3)
    np.testing.assert_allclose(model(padded, training=False).numpy(), logits, atol=1e-5)


def test_masked_mean_pooling_averages_only_the_unmasked_tokens():
    states = tf.constant([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    pooled = MaskedMeanPooling()(states, tf.constant([[1, 1, 0]]))
    np.testing.assert_allclose(pooled.numpy(), [[2.0, 3.0]])


@pytest.mark.parametrize("configured, declared, expected", [
    ("auto", "mean", "mean"), ("auto", "", "cls"), ("cls", "mean", "cls"), ("mean", "", "mean"),
])
def test_auto_pooling_follows_what_the_checkpoint_declares(configured, declared, expected):
    checkpoint = {"declared_pooling": declared}
    assert resolve_pooling(ModelConfig(pooling=configured), checkpoint) == expected
    assert resolve_pooling(ModelConfig(pooling="auto"), None) == "cls"  # from scratch


def test_learning_rate_warms_up_then_decays_linearly_to_zero():
    schedule = WarmupLinearDecay(peak=1e-4, warmup_steps=10, total_steps=110)
    rates = [float(schedule(step)) for step in (0, 4, 9, 10, 60, 109, 110, 200)]
    assert rates == pytest.approx([1e-5, 5e-5, 1e-4, 1e-4, 5e-5, 1e-6, 0.0, 0.0], rel=1e-5)


def test_gradients_are_clipped_to_the_configured_global_norm():
    model = build_classifier(ModelConfig(num_layers=1, hidden_size=32, num_attention_heads=2,
                                         intermediate_size=64, max_seq_length=8),
                             vocab_size=20, num_labels=2)
    compile_classifier(model, TrainingConfig(learning_rate=1e-3, gradient_clip_norm=0.5), total_steps=10)
    assert model.optimizer.global_clipnorm == 0.5
    compile_classifier(model, TrainingConfig(learning_rate=1e-3, gradient_clip_norm=0.0), total_steps=10)
    assert model.optimizer.global_clipnorm is None


TINY = ModelConfig(num_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                   max_seq_length=8, dropout=0.0)


def _weights_after_one_sgd_step(accumulation_steps: int, inputs, labels) -> list[np.ndarray]:
    tf.keras.utils.set_random_seed(0)
    model = build_classifier(TINY, vocab_size=20, num_labels=3)
    model.accumulation_steps = accumulation_steps
    model.compile(optimizer=tf.keras.optimizers.SGD(0.5),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(inputs, labels)
    return [variable.numpy() for variable in model.trainable_variables]


@pytest.mark.parametrize("accumulation_steps", [2, 4])
def test_accumulated_micro_batches_give_the_whole_batch_update(accumulation_steps):
    # 7 rows: micro-batches of unequal size (4+3, or 2+2+2+1), weighted by their rows.
    inputs, labels = _batch(7, 8, 20)
    whole = _weights_after_one_sgd_step(1, inputs, labels)
    accumulated = _weights_after_one_sgd_step(accumulation_steps, inputs, labels)
    moved = max(float(np.abs(after - before).max()) for after, before in zip(
        whole, _initial_weights(inputs)))
    assert moved > 1e-3  # the step did change the weights
    for expected, actual in zip(whole, accumulated):
        np.testing.assert_allclose(actual, expected, atol=1e-5)


def _initial_weights(inputs) -> list[np.ndarray]:
    tf.keras.utils.set_random_seed(0)
    model = build_classifier(TINY, vocab_size=20, num_labels=3)
    model(inputs)
    return [variable.numpy() for variable in model.trainable_variables]


def test_compile_sets_gradient_accumulation_and_xla_from_the_config():
    model = build_classifier(TINY, vocab_size=20, num_labels=2)
    compile_classifier(model, TrainingConfig(learning_rate=1e-3, gradient_accumulation_steps=4,
                                                   jit_compile=True),
                       total_steps=10)
    assert model.accumulation_steps == 4 and model.jit_compile


@pytest.mark.parametrize("precision,compute_dtype", [("mixed_bfloat16", tf.bfloat16),
                                                      ("mixed_float16", tf.float16)])
def test_mixed_precision_computes_in_16_bits_and_returns_float32_logits(precision,
                                                                        compute_dtype):
    with precision_policy(precision):
        model = build_classifier(TINY, vocab_size=20, num_labels=3)
        compile_classifier(model, TrainingConfig(learning_rate=1e-3), total_steps=10)
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # restored afterwards
    encoder = model.get_layer("bert_classifier")
    assert encoder.compute_dtype == compute_dtype.name
    assert encoder.variable_dtype == "float32"
    inputs, labels = _batch(4, 8, 20)
    assert model(inputs).dtype == tf.float32
    # Loss scaling is needed (and only added) for float16.
    is_scaled = isinstance(model.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert is_scaled == (precision == "mixed_float16")
    if precision == "mixed_bfloat16":  # bfloat16 kernels exist on CPU
        assert np.isfinite(model.train_on_batch(inputs, labels)[0])
