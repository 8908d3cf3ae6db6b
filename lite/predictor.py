"""Classifies raw text with an exported `.tflite` on a light TFLite runtime, never importing
TensorFlow: what runs on a device.

    textclf-lite outputs/serving_models/textclf/<version>/tflite/model-int8.tflite "Great value."
    # {"text": "Great value.", "label": "positive", "probabilities": [0.02, 0.98]}

A device needs the model, the `ai-edge-litert` wheel (and numpy), and tensorflow-text's TFLite
kernels for the tokenizer: `tflite_registrar.so` from the tensorflow-text wheel, with the one
library it links, `libtensorflow_framework.so.2` from the TensorFlow wheel of the same release.
Give their folder as `ops_dir` (both files in it); without one, they are found in the installed
wheels, which are located but not imported.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.machinery
import importlib.util
import json
import os
import sys
from typing import Optional, Sequence

import numpy as np

REGISTRAR_FILE = "tflite_registrar.so"
FRAMEWORK_FILE = "libtensorflow_framework.so.2"
# tensorflow-text's TFLite kernels (the registrar's Add* functions; its Python package lists the
# same ones as SELECT_TFTEXT_OPS, but importing it imports TensorFlow).
_KERNELS = ("AddByteSplit", "AddByteSplitByOffsets", "AddFastBertNormalize",
            "AddFastSentencepieceDetokenize", "AddFastSentencepieceTokenize",
            "AddFastWordpieceDetokenize", "AddFastWordpieceTokenize", "AddNgramsStringJoin",
            "AddRaggedTensorToTensor", "AddRoundRobinGenerateMasks", "AddRoundRobinTrim",
            "AddSentenceFragmenterV2", "AddUtf8Binarize", "AddWhitespaceTokenize")
# The model's input and signature (`lite.graph`, which imports TensorFlow, defines them).
_TEXT_INPUT, _SIGNATURE = "text", "serving_default"


def ops_files(ops_dir: Optional[str] = None) -> tuple[str, str]:
    """(tflite_registrar.so, libtensorflow_framework.so.2): in `ops_dir`, or in the installed
    tensorflow-text and tensorflow wheels."""
    if ops_dir:
        return os.path.join(ops_dir, REGISTRAR_FILE), os.path.join(ops_dir, FRAMEWORK_FILE)
    text_package, framework_package = (importlib.util.find_spec(name)
                                       for name in ("tensorflow_text", "tensorflow"))
    if text_package is None or framework_package is None:
        raise FileNotFoundError(
            f"no tensorflow-text and tensorflow wheels here: pass the folder holding "
            f"{REGISTRAR_FILE} and {FRAMEWORK_FILE} (ops_dir, --ops-dir)")
    return (os.path.join(text_package.submodule_search_locations[0], "core", "pybinds",
                         REGISTRAR_FILE),
            os.path.join(framework_package.submodule_search_locations[0], FRAMEWORK_FILE))


def text_kernels(ops_dir: Optional[str] = None) -> list:
    """The tokenizer kernels' registration functions, loaded without TensorFlow's Python."""
    registrar, framework = ops_files(ops_dir)
    for path in (registrar, framework):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing: a device needs {REGISTRAR_FILE} and "
                                    f"{FRAMEWORK_FILE} from the TensorFlow release that converted "
                                    "the model")
    # Loaded first and privately, so the registrar's link to it resolves (its search path does
    # not lead to the TensorFlow wheel), and its symbols do not clash with Python's own OpenSSL.
    ctypes.CDLL(framework, mode=os.RTLD_LOCAL)
    loader = importlib.machinery.ExtensionFileLoader("tflite_registrar", registrar)
    module = importlib.util.module_from_spec(
        importlib.util.spec_from_file_location("tflite_registrar", registrar, loader=loader))
    loader.exec_module(module)
    # Each through a Python function: the interpreter calls back with the op resolver's address,
    # and handing it the extension's functions themselves crashes it.
    return [lambda resolver, register=getattr(module, name): register(resolver)
            for name in _KERNELS]


class LiteClassifier:
    """A raw-text `.tflite` classifier: texts in, labels and probabilities out."""

    def __init__(self, model_path: str, ops_dir: Optional[str] = None,
                 num_threads: Optional[int] = None):
        # Imported here: a process that only locates the kernel files (or one that runs
        # TensorFlow's own TFLite interpreter) loads no second TFLite runtime.
        from ai_edge_litert import interpreter as litert  # pylint: disable=import-outside-toplevel

        self._interpreter = litert.InterpreterWithCustomOps(
            model_path=model_path, num_threads=num_threads or os.cpu_count(),
            custom_op_registerers=text_kernels(ops_dir))
        self._run = self._interpreter.get_signature_runner(_SIGNATURE)

    def predict(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """`probabilities` [texts, classes], `label` and `class_id` per text."""
        outputs = self._run(**{_TEXT_INPUT: np.array([text.encode("utf-8") for text in texts],
                                                     dtype=object)})
        # Copies: the runner's arrays are views of the interpreter's buffers.
        return {name: np.array(value, copy=True) for name, value in outputs.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="textclf-lite", description="Classify texts with a raw-text .tflite model, "
        "without TensorFlow; one JSON line per text.")
    parser.add_argument("model", help="a model-<variant>.tflite from a version's tflite/ folder")
    parser.add_argument("texts", nargs="*", help="texts to classify (default: one per line of "
                        "standard input)")
    parser.add_argument("--ops-dir", help=f"folder holding {REGISTRAR_FILE} and {FRAMEWORK_FILE} "
                        "(default: the installed tensorflow-text and tensorflow wheels)")
    arguments = parser.parse_args(argv)
    texts = arguments.texts or [line.rstrip("\r\n") for line in sys.stdin]
    try:
        classifier = LiteClassifier(arguments.model, arguments.ops_dir)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        outputs = classifier.predict(texts)
    except (ValueError, RuntimeError) as error:  # not this project's raw-text model
        print(f"error: {arguments.model} did not classify the texts: {error}", file=sys.stderr)
        return 1
    for text, label, probabilities in zip(texts, outputs["label"], outputs["probabilities"]):
        print(json.dumps({"text": text, "label": label.decode("utf-8"),
                          "probabilities": [round(float(value), 6) for value in probabilities]},
                         ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
