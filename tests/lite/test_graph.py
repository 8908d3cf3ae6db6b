"""The raw-text TFLite graph: its tokenizer's ids against the checkpoint's own tokenizer, and the
models it refuses to convert, each with its reason."""

import dataclasses
import json
import pathlib
import shutil

import numpy as np
import pytest

from benchmarks.sst2_data import SST2_DIR
from lite.convert import convert, interpreter
from lite.graph import NotConvertible, TokenIds, read_tokenization, save_for_conversion
from modules import features
from modules.export import TOKENIZATION_FILE
from pipeline.checkpoint import reference_tokenizer


def _tokenizer_model(tokenization, folder: pathlib.Path) -> bytes:
    """The tokenizer part of the graph alone, converted as the whole model is."""
    save_for_conversion(TokenIds(tokenization), str(folder))
    return convert(str(folder), "float32", calibration_texts=[])


def test_the_tflite_tokenizer_gives_the_checkpoints_ids_on_sst2_dev(
        tiny_wordpiece_export, offline_checkpoint, tmp_path):
    """Every SST-2 dev sentence, packed to 64 as the pipeline packs it: the TFLite runtime's ids
    and mask equal the Hugging Face tokenizer's (MiniLM's, whose vocabulary the model has)."""
    tokenization = dataclasses.replace(read_tokenization(str(tiny_wordpiece_export)),
                                       max_seq_length=64)
    runner = interpreter(_tokenizer_model(tokenization, tmp_path / "tokenizer"))
    texts = [line.split("\t")[0] for line in
             (SST2_DIR / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    outputs = runner.get_signature_runner()(
        text=np.array([text.encode("utf-8") for text in texts], dtype=object))
    expected = reference_tokenizer(str(offline_checkpoint))(
        texts, max_length=64, truncation=True, padding="max_length")
    assert len(texts) == 872
    np.testing.assert_array_equal(outputs[features.INPUT_WORD_IDS], expected["input_ids"])
    np.testing.assert_array_equal(outputs[features.INPUT_MASK], expected["attention_mask"])


def test_truncation_keeps_the_separator_and_an_empty_text_is_cls_sep(tiny_wordpiece_export,
                                                                      offline_checkpoint):
    tokenization = read_tokenization(str(tiny_wordpiece_export))
    texts = ["", " ".join(["wonderful"] * 50), "Café NAÏVE résumé 中国"]
    packed = TokenIds(tokenization)(np.array(texts, dtype=object))
    expected = reference_tokenizer(str(offline_checkpoint))(
        texts, max_length=tokenization.max_seq_length, truncation=True, padding="max_length")
    np.testing.assert_array_equal(packed[features.INPUT_WORD_IDS].numpy(), expected["input_ids"])
    np.testing.assert_array_equal(packed[features.INPUT_MASK].numpy(),
                                  expected["attention_mask"])


def _with_tokenization(export_dir: pathlib.Path, target: pathlib.Path, **changes) -> str:
    """A copy of the export's tokenization record (and vocabulary) with `changes` made."""
    (target / "assets.extra").mkdir(parents=True)
    shutil.copytree(export_dir / "assets", target / "assets")
    recorded = json.loads((export_dir / TOKENIZATION_FILE).read_text(encoding="utf-8"))
    checkpoint = changes.pop("checkpoint", {})
    recorded.update(changes)
    recorded["checkpoint"] = None if checkpoint is None else {**recorded["checkpoint"],
                                                              **checkpoint}
    (target / TOKENIZATION_FILE).write_text(json.dumps(recorded), encoding="utf-8")
    return str(target)


@pytest.mark.parametrize("changes, reason", [
    ({"checkpoint": None}, "trained from scratch, and its word tokenizer"),
    ({"checkpoint": {"tokenizer": "sentencepiece"}},
     "the checkpoint's tokenizer is sentencepiece, and only WordPiece"),
    ({"checkpoint": {"tokenizer": "bpe"}}, "the checkpoint's tokenizer is bpe"),
    ({"text_columns": ["question", "answer"]}, "classifies sentence pairs"),
    ({"checkpoint": {"normalizer_steps": ["lowercase"]}},
     "normalizes with lowercase; FastBertTokenizer either lower-cases"),
])
def test_a_model_the_tflite_runtime_cannot_tokenize_for_is_refused_with_the_reason(
        tiny_wordpiece_export, tmp_path, changes, reason):
    with pytest.raises(NotConvertible, match=reason.replace("(", r"\(")):
        read_tokenization(_with_tokenization(tiny_wordpiece_export, tmp_path / "model",
                                             **changes))


def test_a_model_exported_before_tflite_exports_is_refused(tmp_path):
    with pytest.raises(NotConvertible, match="exported before TFLite exports existed"):
        read_tokenization(str(tmp_path))
