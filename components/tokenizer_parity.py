"""TokenizerParity: proves the transform graph tokenizes like the checkpoint's own tokenizer.

The served model tokenizes in the TF graph (WordPiece, SentencePiece or byte-level BPE,
`modules.checkpoint_tokenizers`), while the checkpoint was pretrained on ids from its Hugging Face
tokenizer (`pipeline.checkpoint.reference_tokenizer`, special-token strings kept as text). Any
difference (accents, punctuation, truncation of pairs) silently shifts what the model sees. This component runs both on a split of
real examples, writes the share of examples whose ids, mask and segment ids are identical plus
the first mismatches, and fails the run below a threshold, before the Trainer starts.
"""

# No `from __future__ import annotations`: the @component decorator reads the annotations.
import dataclasses
import json
import os
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx import v1 as tfx
from tfx.types import artifact, artifact_utils

from modules import features
from pipeline.checkpoint import reference_tokenizer

REPORT_FILE = "parity.json"
# Mismatches kept in the report and quoted in the error.
_MAX_LISTED = 10
_BATCH_SIZE = 256
# Transformed feature -> the Hugging Face tokenizer output it must equal.
_GRAPH_TO_REFERENCE = {
    features.INPUT_WORD_IDS: "input_ids",
    features.SEGMENT_IDS: "token_type_ids",
    features.INPUT_MASK: "attention_mask",
}


class TokenizerParityReport(artifact.Artifact):
    """The parity figure and the first mismatching examples, as `parity.json`."""

    # Kubeflow Pipelines wants `namespace.Name` for custom artifact types.
    TYPE_NAME = "textclf.TokenizerParityReport"


class TokenizerParityError(RuntimeError):
    """Too few examples get the checkpoint tokenizer's ids from the transform graph."""


@dataclasses.dataclass
class ParityResult:
    examples: int
    identical: int
    min_parity: float
    checkpoint: str
    mismatches: list[dict[str, Any]]

    @property
    def parity(self) -> float:
        return self.identical / self.examples if self.examples else 0.0

    @property
    def passed(self) -> bool:
        return self.examples > 0 and self.parity >= self.min_parity

    def summary(self) -> str:
        return (f"{self.identical}/{self.examples} examples ({100 * self.parity:.2f}%) get the same "
                f"ids from the transform graph as from the tokenizer of {self.checkpoint}; "
                f"required {100 * self.min_parity:.2f}%")

    def to_json(self) -> str:
        return json.dumps({**dataclasses.asdict(self), "parity": self.parity,
                           "passed": self.passed}, indent=2, ensure_ascii=False)


def measure_parity(example_files: Sequence[str], transform_graph_uri: str, checkpoint_path: str,
                   text_columns: Sequence[str], max_seq_length: int, sample_size: int,
                   min_parity: float) -> "ParityResult":
    """Compares transform-graph ids with Hugging Face tokenizer ids on raw tf.Examples.

    Args:
      example_files: gzipped TFRecord files of raw tf.Examples (an ExampleGen split).
      transform_graph_uri: the Transform component's output.
      checkpoint_path: the checkpoint whose `AutoTokenizer` is the reference.
      text_columns: the text column, or the two columns of a pair, in order.
      sample_size: examples to compare (the first ones of the split); 0 means all.
      min_parity: the share of identical examples the run needs.
    """
    reference = reference_tokenizer(checkpoint_path)
    tf_transform_output = tft.TFTransformOutput(transform_graph_uri)
    transform_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    examples = tf.data.TFRecordDataset(list(example_files), compression_type="GZIP")
    if sample_size:
        examples = examples.take(sample_size)

    result = ParityResult(examples=0, identical=0, min_parity=min_parity,
                          checkpoint=checkpoint_path, mismatches=[])
    for serialized in examples.batch(_BATCH_SIZE):
        raw = tf.io.parse_example(serialized, {column: raw_spec[column] for column in raw_spec})
        transformed = transform_layer(raw)
        texts = [_decode(raw[column]) for column in text_columns]
        expected = reference(*texts, truncation=True, max_length=max_seq_length,
                             padding="max_length", return_token_type_ids=True)
        same = np.ones(len(texts[0]), dtype=bool)
        for graph_name, reference_name in _GRAPH_TO_REFERENCE.items():
            same &= np.all(transformed[graph_name].numpy() == np.asarray(expected[reference_name]),
                           axis=1)
        result.examples += len(same)
        result.identical += int(same.sum())
        for row in np.flatnonzero(~same)[:_MAX_LISTED - len(result.mismatches)]:
            got = transformed[features.INPUT_WORD_IDS].numpy()[row]
            want = np.asarray(expected["input_ids"][row])
            result.mismatches.append({
                "texts": [column[row] for column in texts],
                "first_difference_at": int(np.argmax(got != want)) if np.any(got != want) else None,
                "transform_tokens": _tokens(reference, got),
                "reference_tokens": _tokens(reference, want),
            })
    return result


def _decode(column: tf.Tensor | tf.SparseTensor) -> list[str]:
    if isinstance(column, tf.SparseTensor):
        column = tf.sparse.to_dense(column, default_value=b"")
    # A schema may declare the column a scalar ([batch]) or of one value ([batch, 1], where a
    # sparse batch of empty rows has no column at all: those texts are empty).
    if column.shape.rank == 2:
        column = tf.concat([column[:, :1], tf.fill([tf.shape(column)[0], 1], b"")], axis=1)[:, 0]
    return [value.decode("utf-8") for value in column.numpy()]


def _tokens(tokenizer: Any, ids: np.ndarray) -> list[str]:
    return tokenizer.convert_ids_to_tokens(
        [int(token) for token in ids if token != tokenizer.pad_token_id])


# TFX names a function component after the function, as it names classes.
@tfx.dsl.components.component
def TokenizerParity(  # pylint: disable=invalid-name
        examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
        transform_graph: tfx.dsl.components.InputArtifact[
            tfx.types.standard_artifacts.TransformGraph],
        report: tfx.dsl.components.OutputArtifact[TokenizerParityReport],
        checkpoint_path: tfx.dsl.components.Parameter[str],
        text_columns: tfx.dsl.components.Parameter[str],
        max_seq_length: tfx.dsl.components.Parameter[int],
        min_parity: tfx.dsl.components.Parameter[float],
        sample_size: tfx.dsl.components.Parameter[int] = 0,
        split: tfx.dsl.components.Parameter[str] = "eval",
) -> None:
    """Measures tokenizer parity on `split`; raises TokenizerParityError below `min_parity`.

    `text_columns` is comma-separated: the text column, then the pair column if any.
    """
    split_uri = artifact_utils.get_split_uri([examples], split)
    result = measure_parity(
        tf.io.gfile.glob(os.path.join(split_uri, "*")), transform_graph.uri, checkpoint_path,
        text_columns.split(","), max_seq_length, sample_size, min_parity)
    with tf.io.gfile.GFile(os.path.join(report.uri, REPORT_FILE), "w") as handle:
        handle.write(result.to_json())
    report.set_float_custom_property("parity", result.parity)
    logging.info("TokenizerParity: %s", result.summary())
    if not result.passed:
        for mismatch in result.mismatches:
            logging.error("TokenizerParity mismatch: %s", json.dumps(mismatch, ensure_ascii=False))
        listed = "\n".join(
            f"  {' || '.join(mismatch['texts'])!r}\n    transform: {mismatch['transform_tokens']}"
            f"\n    reference: {mismatch['reference_tokens']}"
            for mismatch in result.mismatches[:3])
        raise TokenizerParityError(
            f"tokenizer parity too low: {result.summary()}. First mismatches:\n{listed}\n"
            "The in-graph tokenizer does not reproduce this checkpoint's tokenizer: check that "
            "the checkpoint's vocab.txt, .model or merges and its tokenizer files belong "
            f"together (the log lists up to {_MAX_LISTED} mismatches)")
