"""Candidates that are worse on live traffic, made from a real exported model.

Each wraps the model's own `predict_text` signature and is saved as a new SavedModel, as a
retrained model that went wrong would be published: one that fails on some inputs, one that is
slower, one whose labels are inverted. The rollout tests publish them as candidates.
"""

import pathlib
from typing import Sequence

FAILING_WORD = "zzfail"
SLOW_REPEATS = 30


def write_variant(model_dir: pathlib.Path, kind: str, export_dir: pathlib.Path,
                  label_names: Sequence[str] = ()) -> pathlib.Path:
    """`kind`: `failing` (an error on texts holding FAILING_WORD), `slow` (the model run
    `SLOW_REPEATS` times per call) or `inverted` (class i answered as the last but i, with
    `label_names` in class-id order)."""
    # pylint: disable=import-outside-toplevel
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  pylint: disable=unused-import

    loaded = tf.saved_model.load(str(model_dir))
    base = loaded.signatures["predict_text"]
    labels = tf.constant(list(label_names) or [""])

    class Variant(tf.Module):
        def __init__(self):
            super().__init__()
            self.base = loaded

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def predict_text(self, text):
            outputs = base(text=text)
            if kind == "failing":
                poisoned = tf.strings.regex_full_match(text, f".*{FAILING_WORD}.*")
                with tf.control_dependencies([tf.debugging.Assert(
                        tf.logical_not(tf.reduce_any(poisoned)), ["a poisoned text"])]):
                    return {name: tf.identity(value) for name, value in outputs.items()}
            if kind == "slow":
                for _ in tf.range(SLOW_REPEATS):
                    outputs = base(text=text)
                return outputs
            probabilities = tf.reverse(outputs["probabilities"], axis=[-1])
            class_id = tf.argmax(probabilities, axis=-1, output_type=outputs["class_id"].dtype)
            return {"probabilities": probabilities, "class_id": class_id,
                    "label": tf.gather(labels, class_id)}

    if kind not in ("failing", "slow", "inverted"):
        raise ValueError(kind)
    variant = Variant()
    tf.saved_model.save(variant, str(export_dir),
                        signatures={"predict_text": variant.predict_text.get_concrete_function()})
    return export_dir

