"""Every TFLite variant of the tiny WordPiece classifier: builtin and text ops only, answering raw
strings as the SavedModel's `predict_text` does (float32 within float error, the quantized
ones with valid probabilities); and a graph TFLite cannot run refused at conversion."""

import numpy as np
import pytest
import tensorflow as tf

from lite.convert import SELECTIVE_FLOAT_OPS, convert, interpreter, predict
from lite.graph import (NotConvertible, RawTextClassifier, TokenIds, read_tokenization,
                        save_for_conversion)
from modules import features
from tests.checkpoint_families import default_texts
from tests.lite.conftest import LABELS

# tensorflow-text's TFLite kernels: the only custom ops a model may hold.
_TEXT_KERNELS = {"FastBertNormalize", "FastWordpieceTokenizeWithOffsets", "RaggedTensorToTensor"}


def _ops(model: bytes) -> dict[str, set[str]]:
    """The model's operators by kind: builtin names and custom op names, and the tensor types
    the builtin ops produce."""
    from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=import-outside-toplevel

    parsed = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    builtin_names = {value: name for name, value in vars(schema.BuiltinOperator).items()
                     if not name.startswith("_")}
    type_names = {value: name for name, value in vars(schema.TensorType).items()
                  if not name.startswith("_")}
    kinds = {"builtin": set(), "custom": set(), "int8": set()}
    graph = parsed.subgraphs[0]
    for operator in graph.operators:
        code = parsed.operatorCodes[operator.opcodeIndex]
        name = builtin_names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        if name == "CUSTOM":
            kinds["custom"].add(code.customCode.decode())
            continue
        kinds["builtin"].add(name)
        if type_names[graph.tensors[operator.outputs[0]].type] == "INT8":
            kinds["int8"].add(name)
    return kinds


@pytest.fixture(scope="module")
def variants(tiny_wordpiece_export, tmp_path_factory):
    """Every variant of the tiny classifier, and its tokenizer alone: {name: .tflite bytes}."""
    folder = tmp_path_factory.mktemp("variants")
    save_for_conversion(RawTextClassifier(str(tiny_wordpiece_export)), str(folder / "graph"))
    calibration = default_texts()[40:80]
    models = {variant: convert(str(folder / "graph"), variant, calibration)
              for variant in ("float32", "float16", "dynamic_range", "int8", "int8_full")}
    save_for_conversion(TokenIds(read_tokenization(str(tiny_wordpiece_export))),
                        str(folder / "tokenizer"))
    return {**models, "tokenizer": convert(str(folder / "tokenizer"), "float32", [])}


def test_every_variant_holds_only_builtin_and_text_ops(variants):
    variants = dict(variants)
    for variant, model in variants.items():
        if variant == "tokenizer":
            continue
        ops = _ops(model)
        assert ops["custom"] <= _TEXT_KERNELS, (variant, ops["custom"])
        assert not any(name.startswith("Flex") for name in ops["custom"]), variant
        assert "FULLY_CONNECTED" in ops["builtin"] and "GATHER" in ops["builtin"], variant
    assert _ops(variants["float32"])["int8"] == set()
    assert {"FULLY_CONNECTED", "BATCH_MATMUL"} <= _ops(variants["int8"])["int8"]
    # Selective: LayerNorm, softmax, GELU and the adds stay in float; full int8 has them in int8.
    assert not _ops(variants["int8"])["int8"] & set(SELECTIVE_FLOAT_OPS)
    assert {"SOFTMAX", "ADD"} <= _ops(variants["int8_full"])["int8"]
    # The tokenizer's vocabulary (~2 MB here) is not quantized; the weights are.
    tokenizer = variants.pop("tokenizer")
    weights = {variant: len(model) - len(tokenizer) for variant, model in variants.items()}
    assert weights["float16"] < 0.55 * weights["float32"]
    assert weights["dynamic_range"] < 0.35 * weights["float32"]


def test_each_variant_answers_raw_text_as_the_saved_model(variants, tiny_wordpiece_export):
    texts = default_texts()[:24] + ["", "¡Qué película tan buena!"]
    saved = tf.saved_model.load(str(tiny_wordpiece_export)).signatures[features.TEXT_SIGNATURE](
        text=tf.constant(texts))
    expected = saved[features.PROBABILITIES].numpy()
    for variant, model in variants.items():
        if variant == "tokenizer":
            continue
        answers = predict(interpreter(model), texts)
        probabilities = answers[features.PROBABILITIES]
        assert probabilities.shape == (len(texts), len(LABELS)), variant
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3, err_msg=variant)
        assert [label.decode() for label in answers[features.PREDICTED_LABEL]] == [
            LABELS[index] for index in answers[features.PREDICTED_CLASS_ID]], variant
        # Quantization moves the probabilities of this random tiny model a little.
        tolerance = 1e-5 if variant == "float32" else 0.05
        np.testing.assert_allclose(probabilities, expected, atol=tolerance, err_msg=variant)
    # Any batch size, one text or none, through the same signature.
    assert predict(interpreter(variants["int8"]), [])[features.PROBABILITIES].shape == (0, 2)


def test_a_graph_whose_ops_tflite_cannot_run_is_refused_at_conversion(tmp_path):
    """With custom ops allowed, the converter writes an op it cannot lower as a custom op and
    only loading fails: the conversion must load and run it to know."""

    class RegexCleaner(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def __call__(self, text):
            return {"cleaned": tf.strings.regex_replace(text, "[0-9]", "#")}

    save_for_conversion(RegexCleaner(), str(tmp_path / "graph"))
    with pytest.raises(NotConvertible, match="converts but does not run: .*StaticRegexReplace"):
        convert(str(tmp_path / "graph"), "float32", calibration_texts=[])
