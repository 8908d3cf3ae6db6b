"""Reading ML Metadata by pipeline run and component, as TFX records them.

TFX keeps a `pipeline_run` context per run and a `node` context per component, and links each
execution to its input and output artifacts by events whose path names the channel (`schema`,
`model`, ...). These helpers answer "what did this component produce in that run" without
importing TFX (only `ml_metadata`), so commands that read a finished run start fast.
"""

from __future__ import annotations

import pathlib
from typing import Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.config import PipelineConfig

Execution = metadata_store_pb2.Execution
# States of executions whose outputs exist: run now, or reused from the cache.
FINISHED_STATES = (Execution.COMPLETE, Execution.CACHED)


def metadata_store_of(config: PipelineConfig) -> metadata_store.MetadataStore:
    """The local runs' MLMD store (SQLite under `config.output_dir`), opened as TFX's
    `sqlite_metadata_connection_config` opens it: folder and file are created if missing."""
    pathlib.Path(config.metadata_path).parent.mkdir(parents=True, exist_ok=True)
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    connection.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    return metadata_store.MetadataStore(connection)


def pipeline_runs(store: metadata_store.MetadataStore) -> list[metadata_store_pb2.Context]:
    """Every run of every pipeline in the store, oldest first."""
    return sorted(store.get_contexts_by_type("pipeline_run"), key=lambda context: context.id)


def find_run(store: metadata_store.MetadataStore,
             run_id: Optional[str] = None) -> metadata_store_pb2.Context:
    """Run `run_id`, or the newest run; LookupError naming the newest runs when there is none."""
    runs = [run for run in pipeline_runs(store) if run_id is None or run.name == run_id]
    if not runs:
        known = [run.name for run in pipeline_runs(store)][-5:]
        raise LookupError(f"no run {run_id!r} in ML Metadata (newest runs: {known})"
                          if run_id else "no runs in ML Metadata yet: run the pipeline first")
    return runs[-1]


def run_executions(store: metadata_store.MetadataStore,
                   run: metadata_store_pb2.Context) -> dict[str, Execution]:
    """Component id -> its execution in `run` (resolvers and importers included)."""
    executions = {}
    for execution in store.get_executions_by_context(run.id):
        node = next((context.name for context in store.get_contexts_by_execution(execution.id)
                     if store.get_context_types_by_id([context.type_id])[0].name == "node"),
                    None)
        if node:
            executions[node.split(".", 1)[1]] = execution
    return executions


_EVENT_TYPES = {
    "input": (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.INTERNAL_INPUT),
    "output": (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.INTERNAL_OUTPUT),
}


def execution_artifacts(store: metadata_store.MetadataStore, execution_id: int,
                        direction: str = "output") -> dict[str, list[metadata_store_pb2.Artifact]]:
    """Channel key (`schema`, `model`, ...) -> the artifacts an execution read or wrote."""
    keys: dict[int, str] = {}
    for event in store.get_events_by_execution_ids([execution_id]):
        if event.type in _EVENT_TYPES[direction] and event.path.steps:
            keys[event.artifact_id] = event.path.steps[0].key
    by_key: dict[str, list[metadata_store_pb2.Artifact]] = {}
    for artifact in store.get_artifacts_by_id(list(keys)):
        by_key.setdefault(keys[artifact.id], []).append(artifact)
    return by_key


def output_artifacts(store: metadata_store.MetadataStore, execution_id: int,
                     key: str) -> list[metadata_store_pb2.Artifact]:
    """The artifacts an execution wrote (or reused from the cache) to its output `key`."""
    return execution_artifacts(store, execution_id).get(key, [])


def newest_output(store: metadata_store.MetadataStore, pipeline_name: str, component_id: str,
                  key: str) -> Optional[metadata_store_pb2.Artifact]:
    """The `key` output of the component's newest finished execution, in any run."""
    node = store.get_context_by_type_and_name("node", f"{pipeline_name}.{component_id}")
    if node is None:
        return None
    finished = [execution for execution in store.get_executions_by_context(node.id)
                if execution.last_known_state in FINISHED_STATES]
    for execution in sorted(finished, key=lambda execution: execution.id, reverse=True):
        artifacts = output_artifacts(store, execution.id, key)
        if artifacts:
            return max(artifacts, key=lambda artifact: artifact.id)
    return None
