"""Data spans: folders or files whose name carries a number, e.g. `span-{SPAN}/train.csv`.

ExampleGen reads the newest span of a `{SPAN}` pattern by itself; the pre-flight check and
`textclf retrain` need the same answer before any component runs, from local folders or buckets.
"""

from __future__ import annotations

import fnmatch
import glob
import re
from typing import Iterable, Optional

from pipeline.config import SPAN_TOKEN


def has_span(pattern: str) -> bool:
    return SPAN_TOKEN in pattern


def with_span(pattern: str, span: int) -> str:
    """The pattern for one span: `span-{SPAN}/*.csv`, 3 -> `span-3/*.csv`."""
    return pattern.replace(SPAN_TOKEN, str(span))


def spans_present(input_base: str, pattern: str) -> list[int]:
    """The span numbers that have at least one file matching `pattern` under `input_base`, sorted."""
    base = input_base.rstrip("/")
    number = re.compile(r"(\d+)".join(_glob_regex(part) for part in pattern.split(SPAN_TOKEN)) + r"\Z",
                        re.DOTALL)
    spans = set()
    for path in _glob(f"{base}/{pattern.replace(SPAN_TOKEN, '*')}"):
        match = number.match(path[len(base) + 1:])
        if match:
            spans.add(int(match.group(1)))
    return sorted(spans)


def latest_span(input_base: str, patterns: Iterable[str]) -> Optional[int]:
    """The newest span present for every pattern; None when the patterns hold no {SPAN}.

    Raises:
      ValueError: no span exists, or the patterns' newest spans differ (a train split of span 4
        with the eval split of span 3 would be a silent mix-up).
    """
    newest = {pattern: spans_present(input_base, pattern) for pattern in patterns if has_span(pattern)}
    if not newest:
        return None
    empty = [pattern for pattern, spans in newest.items() if not spans]
    if empty:
        raise ValueError(f"no span matches {', '.join(empty)} in {input_base}: add a folder or file "
                         f"whose name has the span number where {SPAN_TOKEN} stands")
    latest = {pattern: spans[-1] for pattern, spans in newest.items()}
    if len(set(latest.values())) > 1:
        raise ValueError(f"the newest spans differ between the splits in {input_base}: {latest}; "
                         "every split of a span must arrive together")
    return next(iter(latest.values()))


def _glob_regex(part: str) -> str:
    """fnmatch's regex for a glob fragment, without its anchors, to splice into a larger regex."""
    translated = fnmatch.translate(part)
    return translated[len("(?s:"):-len(r")\Z")]


def _glob(pattern: str) -> list[str]:
    if "://" in pattern:  # a bucket: TensorFlow's file systems know gs:// and s3://
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        return tf.io.gfile.glob(pattern)
    return glob.glob(pattern)
