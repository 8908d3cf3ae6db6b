"""The Trainer's input step: batches cut to their longest row."""

import numpy as np
import tensorflow as tf

from modules import features
from modules.datasets import trim_to_longest_row


def test_batches_are_cut_to_the_longest_row_and_keep_model_inputs_only():
    mask = tf.constant([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]], tf.int64)
    batch = {features.INPUT_WORD_IDS: mask * 7, features.INPUT_MASK: mask,
             features.SEGMENT_IDS: tf.zeros_like(mask), "domain": tf.constant([b"a", b"b"])}
    trimmed, labels = trim_to_longest_row(batch, tf.constant([0, 1]))
    assert set(trimmed) == set(features.MODEL_INPUTS)
    np.testing.assert_array_equal(trimmed[features.INPUT_MASK], mask[:, :4])
    np.testing.assert_array_equal(trimmed[features.INPUT_WORD_IDS], mask[:, :4] * 7)
    np.testing.assert_array_equal(labels, [0, 1])
