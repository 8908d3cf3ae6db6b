"""TokenizerParity: proves the transform graph tokenizes like the checkpoint's own tokenizer.

The served model tokenizes in the TF graph (WordPiece, SentencePiece or byte-level BPE,
`modules.checkpoint_tokenizers`), while the checkpoint was pretrained on ids from its Hugging Face
tokenizer (`pipeline.checkpoint.reference_tokenizer`, special-token strings kept as text). Any
difference (accents, punctuation, truncation of pairs) silently shifts what the model sees. This
component runs both on a split of real examples, writes the share of examples whose ids, mask
and segment ids are identical plus the first mismatches, and fails the run below a threshold,
before the Trainer starts. The comparison is a Beam pipeline run with the pipeline's
`beam_pipeline_args`, so a whole split of millions of texts spreads over a cluster's workers.
"""

# No `from __future__ import annotations`: the @component decorator reads the annotations.
import dataclasses
import functools
import hashlib
import json
import os
import tempfile
from typing import Any, Iterator, Sequence

import apache_beam as beam
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

    def merge(self, other: "ParityResult") -> "ParityResult":
        """Both counts, keeping the first mismatches by text (an order no runner changes)."""
        self.examples += other.examples
        self.identical += other.identical
        self.mismatches = sorted(self.mismatches + other.mismatches,
                                 key=lambda mismatch: mismatch["texts"])[:_MAX_LISTED]
        return self

    def summary(self) -> str:
        return (f"{self.identical}/{self.examples} examples ({100 * self.parity:.2f}%) get the same "
                f"ids from the transform graph as from the tokenizer of {self.checkpoint}; "
                f"required {100 * self.min_parity:.2f}%")

    def to_json(self) -> str:
        return json.dumps({**dataclasses.asdict(self), "parity": self.parity,
                           "passed": self.passed}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "ParityResult":
        fields = json.loads(text)
        return cls(**{field.name: fields[field.name] for field in dataclasses.fields(cls)})


def measure_parity(example_files: Sequence[str], transform_graph_uri: str, checkpoint_path: str,
                   text_columns: Sequence[str], max_seq_length: int, sample_size: int,
                   min_parity: float) -> ParityResult:
    """Compares transform-graph ids with Hugging Face tokenizer ids on raw tf.Examples, through
    the component's Beam pipeline on the in-process DirectRunner."""
    with tempfile.TemporaryDirectory(prefix="tokenizer-parity-") as folder:
        path = os.path.join(folder, REPORT_FILE)
        with beam.Pipeline() as pipeline:
            _ = (pipeline | CompareTokenizers(
                example_files, transform_graph_uri, checkpoint_path, text_columns,
                max_seq_length, sample_size, min_parity)
                 | beam.io.WriteToText(path, shard_name_template=""))
        with tf.io.gfile.GFile(path) as handle:
            return ParityResult.from_json(handle.read())


class CompareTokenizers(beam.PTransform):
    """Raw tf.Example files -> one JSON text of their ParityResult.

    Args:
      example_files: gzipped TFRecord files of raw tf.Examples (an ExampleGen split).
      transform_graph_uri: the Transform component's output.
      checkpoint_path: the checkpoint whose `AutoTokenizer` is the reference.
      text_columns: the text column, or the two columns of a pair, in order.
      sample_size: examples to compare, those with the smallest hashes (the same ones on every
        runner); 0 means all.
      min_parity: the share of identical examples the run needs.
    """

    def __init__(self, example_files: Sequence[str], transform_graph_uri: str,
                 checkpoint_path: str, text_columns: Sequence[str], max_seq_length: int,
                 sample_size: int, min_parity: float):
        super().__init__()
        self._files = list(example_files)
        self._sample_size = sample_size
        self._compare = _CompareBatch(transform_graph_uri, checkpoint_path, list(text_columns),
                                      max_seq_length, min_parity)
        self._empty = ParityResult(examples=0, identical=0, min_parity=min_parity,
                                   checkpoint=checkpoint_path, mismatches=[])

    def expand(self, pipeline: beam.Pipeline) -> beam.PCollection:
        records = (pipeline
                   | "Files" >> beam.Create(self._files)
                   | "Read" >> beam.io.ReadAllFromTFRecord())
        if self._sample_size:
            records = (records
                       | "Hashed" >> beam.Map(lambda record: (
                           hashlib.sha256(record).digest(), record))
                       | "Sample" >> beam.combiners.Top.Smallest(self._sample_size)
                       | "Sampled" >> beam.FlatMap(lambda pairs: [record for _, record in pairs]))
        empty = self._empty
        return (records
                | "Batch" >> beam.BatchElements(min_batch_size=_BATCH_SIZE,
                                                max_batch_size=_BATCH_SIZE)
                | "Compare" >> beam.ParDo(self._compare)
                | "Merge" >> beam.CombineGlobally(lambda results: functools.reduce(
                    ParityResult.merge, results, dataclasses.replace(empty, mismatches=[])))
                | "ToJson" >> beam.Map(ParityResult.to_json))


class _CompareBatch(beam.DoFn):
    """A batch of serialized raw examples -> its ParityResult."""

    def __init__(self, transform_graph_uri: str, checkpoint_path: str, text_columns: list[str],
                 max_seq_length: int, min_parity: float):
        super().__init__()
        self._transform_graph_uri = transform_graph_uri
        self._checkpoint_path = checkpoint_path
        self._text_columns = text_columns
        self._max_seq_length = max_seq_length
        self._min_parity = min_parity

    def setup(self) -> None:
        # Once per worker: the Hugging Face tokenizer and the transform graph load here.
        self._reference = reference_tokenizer(self._checkpoint_path)
        tf_transform_output = tft.TFTransformOutput(self._transform_graph_uri)
        self._transform_layer = tf_transform_output.transform_features_layer()
        self._raw_spec = tf_transform_output.raw_feature_spec()

    def process(self, serialized: list[bytes]) -> Iterator[ParityResult]:
        raw = tf.io.parse_example(tf.constant(serialized), self._raw_spec)
        transformed = self._transform_layer(raw)
        texts = [_decode(raw[column]) for column in self._text_columns]
        expected = self._reference(*texts, truncation=True, max_length=self._max_seq_length,
                                   padding="max_length", return_token_type_ids=True)
        same = np.ones(len(texts[0]), dtype=bool)
        for graph_name, reference_name in _GRAPH_TO_REFERENCE.items():
            same &= np.all(transformed[graph_name].numpy() == np.asarray(expected[reference_name]),
                           axis=1)
        mismatches = []
        for row in np.flatnonzero(~same)[:_MAX_LISTED]:
            got = transformed[features.INPUT_WORD_IDS].numpy()[row]
            want = np.asarray(expected["input_ids"][row])
            mismatches.append({
                "texts": [column[row] for column in texts],
                "first_difference_at": int(np.argmax(got != want)) if np.any(got != want) else None,
                "transform_tokens": _tokens(self._reference, got),
                "reference_tokens": _tokens(self._reference, want),
            })
        yield ParityResult(examples=len(same), identical=int(same.sum()),
                           min_parity=self._min_parity, checkpoint=self._checkpoint_path,
                           mismatches=mismatches)


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
@tfx.dsl.components.component(use_beam=True)
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
        beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Measures tokenizer parity on `split`, on Beam with the pipeline's `beam_pipeline_args`;
    raises TokenizerParityError below `min_parity`.

    `text_columns` is comma-separated: the text column, then the pair column if any.
    """
    split_uri = artifact_utils.get_split_uri([examples], split)
    path = os.path.join(report.uri, REPORT_FILE)
    with beam_pipeline as pipeline:
        _ = (pipeline | CompareTokenizers(
            tf.io.gfile.glob(os.path.join(split_uri, "*")), transform_graph.uri,
            checkpoint_path, text_columns.split(","), max_seq_length, sample_size, min_parity)
             | beam.io.WriteToText(path, shard_name_template=""))
    with tf.io.gfile.GFile(path) as handle:
        result = ParityResult.from_json(handle.read())
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
