"""`textclf retrain`: start a run only when the data holds a span no model was trained on yet.

A cron job or a CI workflow can call it as often as it likes: with no new span it does nothing.
The last trained span comes from ML Metadata, by following each trained Model back to the
ExampleGen output it was trained on, so it holds across runs, orchestrators and cache hits.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

_DONE = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
# TFX's own runners name the type "Model"; on Kubeflow Pipelines v2 it is the schema title.
_MODEL_TYPES = ("Model", "tfx.Model")
# Model <- Trainer <- transformed Examples <- Transform <- Examples with a span: four hops back.
_MAX_HOPS = 4


@dataclasses.dataclass(frozen=True)
class RetrainDecision:
    """What `retrain` found and whether it started a run."""

    newest_span: int
    last_trained_span: Optional[int]
    started: bool
    # What `start_run` returned, when it ran (the CLI's exit code).
    run_result: Any = None


def last_trained_span(store: metadata_store.MetadataStore) -> Optional[int]:
    """The highest data span any successfully trained Model was trained on; None before the first."""
    spans = [span for model_type in _MODEL_TYPES
             for model in store.get_artifacts_by_type(model_type)
             for span in _spans_behind(store, model.id)]
    return max(spans, default=None)


def retrain(newest_span: Optional[int], store: Optional[metadata_store.MetadataStore],
            start_run: Callable[[], Any]) -> RetrainDecision:
    """Calls `start_run` when `newest_span` is newer than the last trained span in `store`.

    Raises:
      ValueError: the data has no spans ({SPAN} in no file pattern), so "new" means nothing.
    """
    if newest_span is None:
        raise ValueError("retrain needs spans: put {SPAN} in data.file_pattern or in "
                         "data.train_pattern/eval_pattern (e.g. span-{SPAN}/*.csv)")
    last = last_trained_span(store) if store is not None else None
    if last is not None and newest_span <= last:
        return RetrainDecision(newest_span, last, started=False)
    return RetrainDecision(newest_span, last, started=True, run_result=start_run())


def _spans_behind(store: metadata_store.MetadataStore, artifact_id: int) -> list[int]:
    """Spans of the Examples upstream of an artifact, through successful executions only."""
    frontier, spans = [artifact_id], []
    for _ in range(_MAX_HOPS):
        producers = {event.execution_id for event in store.get_events_by_artifact_ids(frontier)
                     if event.type == metadata_store_pb2.Event.OUTPUT}
        done = [execution.id for execution in store.get_executions_by_id(list(producers))
                if execution.last_known_state in _DONE]
        if not done:
            break
        inputs = {event.artifact_id for event in store.get_events_by_execution_ids(done)
                  if event.type == metadata_store_pb2.Event.INPUT}
        frontier = []
        for artifact in store.get_artifacts_by_id(list(inputs)):
            span = _span_of(artifact)
            if span is None:
                frontier.append(artifact.id)
            else:
                spans.append(span)
        if spans or not frontier:
            break
    return spans


def _span_of(artifact: metadata_store_pb2.Artifact) -> Optional[int]:
    """The `span` an ExampleGen output carries (a double where Kubeflow's launcher records it)."""
    for values in (artifact.custom_properties, artifact.properties):
        if "span" in values:
            value = values["span"]
            return int(value.double_value) if value.HasField("double_value") else value.int_value
    return None
