"""TextChecks' figures as one Beam pipeline, so that no split ever sits in one process's memory.

Run with the component's `beam_pipeline_args` (DirectRunner here; Dataflow, Flink or Spark on a
cluster), it counts each example's tokens with the Transform's own tokenizer, sums them per
split with an exact histogram of token counts (so percentiles and length histograms are those a
list in memory gives), finds duplicates and train/eval leakage by grouping keyed hashes of the
normalised texts, and computes TFDV statistics of token counts and labels with
`tfdv.GenerateStatistics`. What comes out is small (per-split sums, repeat counts with a few
quoted texts, two statistics protos) and `components.text_checks` judges it.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
import json
from typing import Any, Iterable, Iterator, Optional, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2

from modules.checkpoint_tokenizers import checkpoint_tokenizer, tokenizer_class
from modules.preprocessing import Packing, split_words
from pipeline.checkpoint import Checkpoint

TRAIN_SPLIT, EVAL_SPLIT = "train", "eval"
# The per-example features of the derived statistics.
TOKEN_COUNT_FEATURE = "token_count"
LABEL_FEATURE = "label"
# Example texts quoted for a failed duplicate or leakage check, and their length.
MAX_QUOTED = 3
_QUOTED_CHARS = 80
_BATCH_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class Row:
    """One example: its split, its texts (None where the feature is missing) and its label."""

    split: str
    texts: tuple[Optional[str], ...]
    label: str


@dataclasses.dataclass(frozen=True)
class CountSettings:
    """How tokens are counted: with the checkpoint's tokenizer (`Checkpoint.to_dict()`), or from
    scratch as words against the training split's `max_vocab_size` most frequent words seen at
    least `min_word_frequency` times, as `tft.vocabulary` builds them."""

    checkpoint: Optional[dict[str, Any]]
    max_vocab_size: int
    min_word_frequency: int
    max_seq_length: int


@dataclasses.dataclass
class SplitFigures:
    """The sums of one split. `token_counts` maps a row's token count ([CLS]/[SEP] included,
    before truncation) to how many rows have it: exact, and as small as the longest row."""

    examples: int = 0
    empty_texts: int = 0
    text_tokens: int = 0
    unk_tokens: int = 0
    token_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    label_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def merge(self, other: "SplitFigures") -> "SplitFigures":
        self.examples += other.examples
        self.empty_texts += other.empty_texts
        self.text_tokens += other.text_tokens
        self.unk_tokens += other.unk_tokens
        self.token_counts.update(other.token_counts)
        self.label_counts.update(other.label_counts)
        return self

    def truncated(self, max_seq_length: int) -> int:
        return sum(count for tokens, count in self.token_counts.items() if tokens > max_seq_length)


@dataclasses.dataclass
class Repeats:
    """Training rows repeating another, eval rows found in training, and a few of each."""

    duplicates: int = 0
    leaked: int = 0
    duplicated_texts: list[str] = dataclasses.field(default_factory=list)
    leaked_texts: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Figures:
    """Everything the pipeline measured."""

    splits: dict[str, SplitFigures]
    repeats: Repeats
    statistics: statistics_pb2.DatasetFeatureStatisticsList
    vocabulary_size: int


class TokenCounter:
    """Counts each row's tokens and [UNK] tokens as the Transform's `preprocessing_fn` would.

    With a checkpoint: its own tokenizer (WordPiece, SentencePiece or byte-level BPE), through
    the same ops. From scratch: lower-cased words against `vocabulary`.
    """

    def __init__(self, checkpoint: Optional[Checkpoint], vocabulary: Iterable[bytes] = ()):
        self.checkpoint = checkpoint
        self._tokenizer = checkpoint_tokenizer(checkpoint) if checkpoint else None
        self._packing = Packing.of(checkpoint)
        self._vocabulary = frozenset(vocabulary)

    def special_tokens(self, segment_count: int) -> int:
        return self._packing.special_tokens(segment_count)

    def count(self, columns: Sequence[Sequence[Optional[str]]]) -> tuple[np.ndarray, np.ndarray]:
        """Per row of the text `columns`: all tokens of the packed row ([CLS]/[SEP] included,
        before truncation), and the [UNK] tokens among them."""
        rows = len(columns[0])
        tokens = np.full(rows, self.special_tokens(len(columns)), dtype=np.int64)
        unknown = np.zeros(rows, dtype=np.int64)
        for column in columns:
            for start in range(0, rows, _BATCH_SIZE):
                batch = [text or "" for text in column[start:start + _BATCH_SIZE]]
                batch_tokens, batch_unknown = self._count_batch(batch)
                tokens[start:start + len(batch)] += batch_tokens
                unknown[start:start + len(batch)] += batch_unknown
        return tokens, unknown

    def _count_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if self.checkpoint:
            [ids] = self._tokenizer.ids([tf.constant(texts)])
            return (ids.row_lengths().numpy(),
                    tf.reduce_sum(tf.cast(ids == self.checkpoint.unk_id, tf.int64), axis=1).numpy())
        words = split_words(tf.constant(texts)).to_list()
        return (np.array([len(row) for row in words]),
                np.array([sum(word not in self._vocabulary for word in row) for row in words]))


def describe_counting(settings: CountSettings, vocabulary_size: int) -> str:
    """The report's line on how tokens were counted."""
    if settings.checkpoint:
        checkpoint = Checkpoint.from_dict(settings.checkpoint)
        return f"the {tokenizer_class(checkpoint).display_name} of {checkpoint.path}"
    return f"words against the training split's vocabulary ({vocabulary_size} words)"


def text_key(texts: Sequence[Optional[str]]) -> str:
    """Texts compared for duplicates and leakage: lower-cased, white space collapsed."""
    return "\x1f".join(" ".join((text or "").lower().split()) for text in texts)


def is_empty(texts: Sequence[Optional[str]]) -> bool:
    return any(text is None or not text.strip() for text in texts)


def row_of_example(record: bytes, split: str, text_columns: Sequence[str],
                   label_column: str) -> Row:
    """A serialized raw tf.Example (ExampleGen's output) as a Row."""
    feature = tf.train.Example.FromString(record).features.feature
    return Row(split, tuple(example_value(feature, column) for column in text_columns),
               example_value(feature, label_column) or "")


class MeasureTexts(beam.PTransform):
    """Rows -> one JSON text of their Figures (`figures_from_json` reads it back)."""

    def __init__(self, settings: CountSettings):
        super().__init__()
        self._settings = settings

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        settings = self._settings
        vocabulary = beam.pvalue.AsSingleton(_vocabulary(rows, settings))
        counted = (rows
                   | "BatchRows" >> beam.BatchElements(max_batch_size=_BATCH_SIZE)
                   | "CountTokens" >> beam.ParDo(_CountTokens(settings), vocabulary))
        sums = (counted
                | "BySplit" >> beam.Map(lambda row: (row["split"], row))
                | "SumSplits" >> beam.CombinePerKey(_SplitSums())
                | "TagSplits" >> beam.Map(lambda item: ("split", item)))
        repeats = (counted
                   | "ByTextHash" >> beam.Map(_keyed_by_text_hash)
                   | "CountPerText" >> beam.CombinePerKey(_TextCounts())
                   | "Repeats" >> beam.CombineGlobally(_RepeatSums())
                   | "TagRepeats" >> beam.Map(lambda item: ("repeats", item)))
        statistics = [
            (counted
             | f"Only{split}" >> beam.Filter(lambda row, split=split: row["split"] == split)
             | f"Batch{split}" >> beam.BatchElements(max_batch_size=_BATCH_SIZE)
             | f"Arrow{split}" >> beam.Map(_record_batch)
             | f"Statistics{split}" >> tfdv.GenerateStatistics(tfdv.StatsOptions())
             | f"Tag{split}" >> beam.Map(lambda stats, split=split: (
                 "statistics", (split, stats.SerializeToString()))))
            for split in (TRAIN_SPLIT, EVAL_SPLIT)]
        sizes = (rows.pipeline
                 | "Once" >> beam.Create([None])
                 | "VocabularySize" >> beam.Map(lambda _, words: ("vocabulary_size", len(words)),
                                                vocabulary))
        return ((sums, repeats, sizes, *statistics)
                | "Gather" >> beam.Flatten()
                | "AsOne" >> beam.combiners.ToList()
                | "ToJson" >> beam.Map(_figures_json))


def figures_from_json(text: str) -> Figures:
    """The Figures that MeasureTexts wrote as `text`."""
    document = json.loads(text)
    splits = {split: SplitFigures(
        examples=sums["examples"], empty_texts=sums["empty_texts"],
        text_tokens=sums["text_tokens"], unk_tokens=sums["unk_tokens"],
        token_counts=collections.Counter({int(tokens): count
                                          for tokens, count in sums["token_counts"].items()}),
        label_counts=collections.Counter(sums["label_counts"]))
        for split, sums in document["splits"].items()}
    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    for split, serialized in sorted(document["statistics"].items()):
        [dataset] = statistics_pb2.DatasetFeatureStatisticsList.FromString(
            base64.b64decode(serialized)).datasets
        dataset.name = split
        statistics.datasets.append(dataset)
    return Figures(splits=splits, repeats=Repeats(**document["repeats"]), statistics=statistics,
                   vocabulary_size=document["vocabulary_size"])


def length_summary(token_counts: dict[int, int], max_seq_length: int,
                   bins: int) -> dict[str, Any]:
    """Mean, percentiles (numpy's linear interpolation), max and a histogram of token counts
    given as {token count: rows}: what `np.percentile` and `np.histogram` give on the list."""
    values = np.array(sorted(token_counts), dtype=np.int64)
    if not len(values):
        return {"mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0, "histogram": []}
    weights = np.array([token_counts[value] for value in values], dtype=np.int64)
    ends = np.cumsum(weights)  # rows up to and including each value, in order

    def ranked(rank: int) -> int:  # the value at 0-based position `rank` of the sorted list
        return int(values[np.searchsorted(ends, rank, side="right")])

    def percentile(share: float) -> float:
        position = share * (int(ends[-1]) - 1)
        low = int(np.floor(position))
        high = min(low + 1, int(ends[-1]) - 1)
        return float(ranked(low) + (ranked(high) - ranked(low)) * (position - low))

    top = max(int(values[-1]), max_seq_length) + 1
    edges = np.unique(np.linspace(0, top, bins + 1).astype(int))
    counts, _ = np.histogram(values, bins=edges, weights=weights)
    return {"mean": float((values * weights).sum() / ends[-1]), "p50": percentile(0.5),
            "p90": percentile(0.9), "p99": percentile(0.99), "max": int(values[-1]),
            "histogram": [[int(low), int(high), int(count)]
                          for low, high, count in zip(edges[:-1], edges[1:], counts)]}


def _vocabulary(rows: beam.PCollection, settings: CountSettings) -> beam.PCollection:
    """One element: the from-scratch vocabulary of the training rows (empty with a checkpoint),
    by `tft.vocabulary`'s rule: the most frequent words, ties by the word, at most
    `max_vocab_size`, each seen `min_word_frequency` times."""
    if settings.checkpoint:
        return rows.pipeline | "NoVocabulary" >> beam.Create([[]])
    return (rows
            | "TrainRows" >> beam.Filter(lambda row: row.split == TRAIN_SPLIT)
            | "BatchWords" >> beam.BatchElements(max_batch_size=_BATCH_SIZE)
            | "Words" >> beam.FlatMap(_word_counts)
            | "SumWords" >> beam.CombinePerKey(sum)
            | "Frequent" >> beam.Filter(lambda item: item[1] >= settings.min_word_frequency)
            | "MostFrequent" >> beam.combiners.Top.Of(settings.max_vocab_size,
                                                      key=lambda item: (item[1], item[0]))
            | "WordsOnly" >> beam.Map(lambda top: [word for word, _ in top]))


def _word_counts(batch: list[Row]) -> Iterator[tuple[bytes, int]]:
    counts: collections.Counter = collections.Counter()
    for column in zip(*(row.texts for row in batch)):
        for words in split_words(tf.constant([text or "" for text in column])).to_list():
            counts.update(words)
    yield from counts.items()


class _CountTokens(beam.DoFn):
    """A batch of Rows -> one dict per row with its token counts and text key."""

    def __init__(self, settings: CountSettings):
        super().__init__()
        self._settings = settings
        self._counter: Optional[TokenCounter] = None

    def process(self, batch: list[Row], vocabulary: list[bytes]) -> Iterator[dict[str, Any]]:
        if self._counter is None:  # once per worker: the tokenizer's tables load here
            checkpoint = self._settings.checkpoint
            self._counter = TokenCounter(Checkpoint.from_dict(checkpoint) if checkpoint else None,
                                         vocabulary)
        columns = [list(column) for column in zip(*(row.texts for row in batch))]
        tokens, unknown = self._counter.count(columns)
        special = self._counter.special_tokens(len(columns))
        for row, row_tokens, row_unknown in zip(batch, tokens.tolist(), unknown.tolist()):
            yield {"split": row.split, "tokens": row_tokens, "text_tokens": row_tokens - special,
                   "unknown": row_unknown, "empty": is_empty(row.texts),
                   "key": text_key(row.texts), "label": row.label}


class _SplitSums(beam.CombineFn):
    def create_accumulator(self) -> SplitFigures:
        return SplitFigures()

    def add_input(self, sums: SplitFigures, row: dict[str, Any]) -> SplitFigures:
        sums.examples += 1
        sums.empty_texts += row["empty"]
        sums.text_tokens += row["text_tokens"]
        sums.unk_tokens += row["unknown"]
        sums.token_counts[row["tokens"]] += 1
        sums.label_counts[row["label"]] += 1
        return sums

    def merge_accumulators(self, accumulators: Iterable[SplitFigures]) -> SplitFigures:
        merged = SplitFigures()
        for sums in accumulators:
            merged.merge(sums)
        return merged

    def extract_output(self, sums: SplitFigures) -> SplitFigures:
        return sums


def _keyed_by_text_hash(row: dict[str, Any]) -> tuple[bytes, tuple[bool, str]]:
    """(SHA-256 of the normalised texts, (in train?, the texts as a report quotes them))."""
    key = row["key"]
    return (hashlib.sha256(key.encode("utf-8")).digest(),
            (row["split"] == TRAIN_SPLIT, key.replace("\x1f", " || ")[:_QUOTED_CHARS]))


class _TextCounts(beam.CombineFn):
    """Per text: [rows in train, rows in eval, its quoted form]."""

    def create_accumulator(self) -> list:
        return [0, 0, ""]

    def add_input(self, counts: list, value: tuple[bool, str]) -> list:
        in_train, quoted = value
        counts[0 if in_train else 1] += 1
        counts[2] = quoted
        return counts

    def merge_accumulators(self, accumulators: Iterable[list]) -> list:
        merged = [0, 0, ""]
        for train, evaluation, quoted in accumulators:
            merged = [merged[0] + train, merged[1] + evaluation, quoted or merged[2]]
        return merged

    def extract_output(self, counts: list) -> list:
        return counts


class _RepeatSums(beam.CombineFn):
    """All texts' counts -> Repeats, quoting the first texts in sorted order (a stable choice
    whatever order the runner delivers them in)."""

    def create_accumulator(self) -> Repeats:
        return Repeats()

    def add_input(self, repeats: Repeats, item: tuple[bytes, list]) -> Repeats:
        _, (train, evaluation, quoted) = item
        if train > 1:
            repeats.duplicates += train - 1
            repeats.duplicated_texts = sorted({*repeats.duplicated_texts, quoted})[:MAX_QUOTED]
        if train and evaluation:
            repeats.leaked += evaluation
            repeats.leaked_texts = sorted({*repeats.leaked_texts, quoted})[:MAX_QUOTED]
        return repeats

    def merge_accumulators(self, accumulators: Iterable[Repeats]) -> Repeats:
        merged = Repeats()
        for repeats in accumulators:
            merged.duplicates += repeats.duplicates
            merged.leaked += repeats.leaked
            merged.duplicated_texts = sorted(
                {*merged.duplicated_texts, *repeats.duplicated_texts})[:MAX_QUOTED]
            merged.leaked_texts = sorted({*merged.leaked_texts, *repeats.leaked_texts})[:MAX_QUOTED]
        return merged

    def extract_output(self, repeats: Repeats) -> Repeats:
        return repeats


def _record_batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    """Token counts and labels as TFDV reads examples: one list of values per feature."""
    return pa.RecordBatch.from_arrays(
        [pa.array([[row["tokens"]] for row in rows], type=pa.list_(pa.int64())),
         pa.array([[row["label"].encode("utf-8")] for row in rows], type=pa.list_(pa.binary()))],
        [TOKEN_COUNT_FEATURE, LABEL_FEATURE])


def _figures_json(items: list[tuple[str, Any]]) -> str:
    document: dict[str, Any] = {"splits": {}, "statistics": {}}
    for kind, value in items:
        if kind == "split":
            split, sums = value
            document["splits"][split] = {
                **dataclasses.asdict(sums),
                "token_counts": {str(tokens): count for tokens, count in sums.token_counts.items()},
                "label_counts": dict(sums.label_counts)}
        elif kind == "statistics":
            split, serialized = value
            document["statistics"][split] = base64.b64encode(serialized).decode("ascii")
        elif kind == "repeats":
            document["repeats"] = dataclasses.asdict(value)
        else:
            document[kind] = value
    document.setdefault("repeats", dataclasses.asdict(Repeats()))
    return json.dumps(document, sort_keys=True)


def example_value(feature: Any, name: str) -> Optional[str]:
    """The first value of a tf.Example feature as text; None when the feature is missing."""
    if name not in feature:
        return None
    values = feature[name]
    for kind in ("bytes_list", "int64_list", "float_list"):
        if values.HasField(kind) and getattr(values, kind).value:
            value = getattr(values, kind).value[0]
            return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    return None
