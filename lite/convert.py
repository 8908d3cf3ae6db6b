"""SavedModel (from `lite.graph`) -> one `.tflite` per variant, each loaded and run before it
counts as converted.

Only TFLite's builtin ops and tensorflow-text's TFLite kernels are allowed (never the TF ops a
Flex delegate would need, which need the TensorFlow runtime on the device). With custom ops
allowed, the converter writes any op it cannot lower as a "custom op" and only loading the model
fails; so every variant is loaded with the text kernels and run once here.
"""

from __future__ import annotations

import os
from typing import Iterator, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow.lite.python import convert as lite_convert
from tensorflow.lite.python.interpreter import InterpreterWithCustomOps

from lite.graph import SIGNATURE, TEXT_INPUT, NotConvertible

# Ops the selective int8 variant keeps in float: LayerNorm (MEAN, SQUARED_DIFFERENCE, RSQRT and
# its arithmetic), softmax, GELU, tanh and the residual adds, whose int8 error moves labels; the
# matrix products and the embeddings, nearly all of the size, are int8.
SELECTIVE_FLOAT_OPS = ("ADD", "SUB", "MUL", "MEAN", "SQUARED_DIFFERENCE", "RSQRT", "SOFTMAX",
                       "GELU", "TANH")
# Texts every converted model must answer before it counts as converted.
_SMOKE_TEXTS = ("", "A first sentence to classify.")


def convert(saved_model_dir: str, variant: str, calibration_texts: Sequence[str]) -> bytes:
    """The `variant` (`pipeline.config.TFLITE_VARIANTS`) of the raw-text model at
    `saved_model_dir`, as .tflite bytes that load and answer; NotConvertible if they do not."""
    converter = _converter(saved_model_dir)
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant in ("int8", "int8_full"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _calibration_inputs(calibration_texts)
    elif variant != "float32":
        raise ValueError(f"unknown TFLite variant {variant!r}")
    try:
        if variant == "int8":
            # Calibrated like the full int8 conversion, then quantized leaving the listed ops in
            # float: what tf.lite.experimental.QuantizationDebugger's denylist does, without
            # the debugger's second, instrumented quantization.
            converter.experimental_mlir_quantizer = True
            converter._experimental_calibrate_only = True  # pylint: disable=protected-access
            model = lite_convert.mlir_quantize(converter.convert(), fully_quantize=False,
                                               denylisted_ops=list(SELECTIVE_FLOAT_OPS))
        else:
            model = converter.convert()
    except Exception as error:  # the converter raises ConverterError, RuntimeError, ValueError...
        raise NotConvertible(f"the TFLite converter failed on the {variant} variant: "
                             f"{_first_line(error)}") from error
    try:
        predict(interpreter(model), list(_SMOKE_TEXTS))
    except Exception as error:  # an unresolved custom op surfaces only here
        raise NotConvertible(f"the {variant} variant converts but does not run: "
                             f"{_first_line(error)}") from error
    return model


def interpreter(model: bytes, num_threads: Optional[int] = None) -> InterpreterWithCustomOps:
    """A TFLite interpreter (TensorFlow's own) with tensorflow-text's kernels registered."""
    return InterpreterWithCustomOps(
        model_content=model, num_threads=num_threads or os.cpu_count(),
        custom_op_registerers=list(tf_text.tflite_registrar.SELECT_TFTEXT_OPS))


def predict(model: InterpreterWithCustomOps, texts: list[str]) -> dict[str, np.ndarray]:
    """The model's outputs for `texts` (any number: the string input is resized per call)."""
    outputs = model.get_signature_runner(SIGNATURE)(
        **{TEXT_INPUT: np.array([text.encode("utf-8") for text in texts], dtype=object)})
    # Copies: the runner's arrays are views of the interpreter's buffers.
    return {name: np.array(value, copy=True) for name, value in outputs.items()}


def _converter(saved_model_dir: str) -> tf.lite.TFLiteConverter:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                         signature_keys=[SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = True
    # The calibrator runs the model on raw strings, through the tokenizer's kernels.
    # pylint: disable-next=protected-access
    converter.target_spec._experimental_custom_op_registerers = list(
        tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
    return converter


def _calibration_inputs(texts: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
    for text in texts:
        yield {TEXT_INPUT: np.array([text.encode("utf-8")], dtype=object)}


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__
