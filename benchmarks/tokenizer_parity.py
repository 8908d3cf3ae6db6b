"""Parity and speed of the in-graph tokenizers against each checkpoint's Hugging Face tokenizer.

Usage:
  python benchmarks/tokenizer_parity.py        # about two minutes

For the offline MiniLM (WordPiece) and tiny XLM-RoBERTa, ALBERT, DeBERTa-v2 (SentencePiece) and
RoBERTa (byte-level BPE) checkpoints built offline (`tests.checkpoint_families`; their tokenizers
are trained on the default data only, so SST-2 also exercises pieces, merges and characters they
never saw): the share of
texts whose ids are identical, on the default data, SST-2 dev and train, the hard cases, and
SST-2 dev sentence pairs truncated at 64 (ids, token types and mask); and texts per second of
the graph (a tf.function, as Transform and the served model run it, in batches of 1,024 and of
32) against the Hugging Face fast tokenizer on SST-2 train, in the same run.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.machine import result_header, write_result  # noqa: E402
from benchmarks.sst2_data import SST2_DIR  # noqa: E402
from modules import features  # noqa: E402
from modules.checkpoint_tokenizers import checkpoint_tokenizer  # noqa: E402
from modules.preprocessing import Packing, pack_segments  # noqa: E402
from pipeline.checkpoint import reference_tokenizer, resolve_checkpoint  # noqa: E402
from pipeline.offline_checkpoint import install_offline_checkpoint  # noqa: E402
from tests.checkpoint_families import (FAMILIES, HARD_CASES, build_checkpoint,  # noqa: E402
                                       default_texts)

MAX_SEQ_LENGTH = 64
# Batches of Transform's size, and of the server's (`serving.batching`'s default).
_BATCH, _SERVING_BATCH = 1024, 32


def _sst2(split: str) -> list[str]:
    lines = (SST2_DIR / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines]


def _traced(tokenizer) -> tf.types.experimental.GenericFunction:
    """The tokenizer as a graph function, as Transform and the served model run it."""
    return tf.function(lambda text: tokenizer.ids([text])[0],
                       input_signature=[tf.TensorSpec([None], tf.string)])


def _graph_ids(tokenizer, texts: list[str], batch: int = _BATCH) -> list[list[int]]:
    ids = []
    for start in range(0, len(texts), batch):
        ids += tokenizer(tf.constant(texts[start:start + batch])).to_list()
    return ids


def _parity(tokenizer, reference, texts: list[str]) -> dict:
    got = _graph_ids(tokenizer, texts)
    want = reference(texts, add_special_tokens=False)["input_ids"]
    mismatches = [(text, reference.convert_ids_to_tokens(g), reference.convert_ids_to_tokens(w))
                  for text, g, w in zip(texts, got, want) if g != w]
    return {"texts": len(texts), "identical": len(texts) - len(mismatches),
            "parity": (len(texts) - len(mismatches)) / len(texts),
            "first_mismatches": [{"text": text, "graph": g[:20], "reference": w[:20]}
                                 for text, g, w in mismatches[:3]]}


def _pair_parity(tokenizer, reference, checkpoint, first: list[str], second: list[str]) -> dict:
    packed = pack_segments(tokenizer.ids([tf.constant(first), tf.constant(second)]),
                           MAX_SEQ_LENGTH, Packing.of(checkpoint))
    expected = reference(first, second, truncation=True, max_length=MAX_SEQ_LENGTH,
                         padding="max_length", return_token_type_ids=True)
    same = np.ones(len(first), dtype=bool)
    for graph_name, reference_name in ((features.INPUT_WORD_IDS, "input_ids"),
                                       (features.SEGMENT_IDS, "token_type_ids"),
                                       (features.INPUT_MASK, "attention_mask")):
        same &= np.all(packed[graph_name].numpy() == np.array(expected[reference_name]), axis=1)
    truncated = int(sum(len(ids) == MAX_SEQ_LENGTH and ids[-1] != reference.pad_token_id
                        for ids in expected["input_ids"]))
    return {"pairs": len(first), "identical": int(same.sum()), "parity": float(same.mean()),
            "truncated_pairs": truncated}


def _speed(tokenizer, reference, texts: list[str], batch: int) -> dict:
    _graph_ids(tokenizer, texts[:batch], batch)  # traces and warms the ops
    started = time.perf_counter()
    _graph_ids(tokenizer, texts, batch)
    graph_seconds = time.perf_counter() - started
    started = time.perf_counter()
    reference(texts, add_special_tokens=False)
    reference_seconds = time.perf_counter() - started
    return {"texts": len(texts), "graph_batch": batch,
            "graph_texts_per_second": round(len(texts) / graph_seconds),
            "hugging_face_texts_per_second": round(len(texts) / reference_seconds),
            "graph_vs_hugging_face": round(reference_seconds / graph_seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--result", default=str(REPO_ROOT / "benchmarks" / "results" /
                                                "tokenizer_parity.json"))
    args = parser.parse_args()
    data = {"default data": default_texts(), "SST-2 dev": _sst2("dev"),
            "SST-2 train": _sst2("train"), "hard cases": HARD_CASES}
    dev = data["SST-2 dev"]
    result = {**result_header("in-graph tokenizers vs each checkpoint's Hugging Face tokenizer"),
              "max_seq_length": MAX_SEQ_LENGTH, "checkpoints": {}}
    with tempfile.TemporaryDirectory() as scratch:
        folders = {"minilm (WordPiece)": install_offline_checkpoint()}
        for name in sorted(FAMILIES):
            kind = "byte-level BPE" if FAMILIES[name].tokenizer == "bpe" else "SentencePiece"
            folders[f"{name} (tiny, {kind})"] = build_checkpoint(
                name, pathlib.Path(scratch) / name)
        for label, folder in folders.items():
            checkpoint = resolve_checkpoint(str(folder), MAX_SEQ_LENGTH)
            tokenizer = checkpoint_tokenizer(checkpoint)
            reference = reference_tokenizer(str(folder))
            traced = _traced(tokenizer)
            figures = {name: _parity(traced, reference, texts) for name, texts in data.items()}
            figures["SST-2 dev pairs"] = _pair_parity(tokenizer, reference, checkpoint, dev,
                                                      dev[1:] + dev[:1])
            for batch in (_BATCH, _SERVING_BATCH):
                figures[f"speed on SST-2 train, batches of {batch}"] = _speed(
                    traced, reference, data["SST-2 train"], batch)
            result["checkpoints"][label] = figures
            print(label, {name: figure.get("parity", figure.get("graph_vs_hugging_face"))
                          for name, figure in figures.items()}, flush=True)
    write_result(result, args.result)
    print(f"wrote {args.result}")


if __name__ == "__main__":
    main()
