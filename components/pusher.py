"""Pusher that publishes into the versioned model store: atomically, with a manifest, signed.

TFX's Pusher copies the model straight into `<store>/<timestamp>/`, so a push killed halfway
leaves a partial version a server would try to load, and records nothing about what it pushed.
This executor publishes through `serving.store.ModelStore` instead (written aside, renamed into
place, a manifest with metrics, data span, lineage, code version and the SHA-256 of every file,
an Ed25519 signature when a key is configured, retention of the last N versions).

It also never pushes the same model twice: rerunning an unchanged pipeline re-executes the
Evaluator once a baseline exists, and the same model would otherwise pile up as new versions.

`StorePusher` is TFX's Pusher with one more input: TFLiteExport's variants, of which the shipped
ones go into the same version as `tflite/` and the manifest records every variant's verdict.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, Optional

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils, proto_utils

from components.evaluator import DATA_SPAN_PROPERTY, METRICS_PROPERTY
from components.tflite_export import TFLiteModels
from lite.layout import REPORT_FILE, SHIPPED_DIR, VERSION_DIR
from lite.manifest import manifest_entry
from serving import filesystem, signing
from serving.store import ModelStore, Version

TFLITE_KEY = "tflite_models"


class Executor(pusher_executor.Executor):
    """Publishes a blessed model unless the same Trainer model is already a version in the store."""

    def Do(self, input_dict: dict[str, list[Any]], output_dict: dict[str, list[Any]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed_model = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed_model)
            return
        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        blessing = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.MODEL_BLESSING_KEY])
        custom_config = json.loads(
            exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
        store = _store(exec_properties)
        version = _version_pushed_from(store, model.uri)
        if version:
            logging.info("Pusher: model %s already serves as version %d; not pushing a copy",
                         model.uri, version.number)
        else:
            manifest = _manifest(model, blessing, pushed_model, custom_config,
                                 self._context.pipeline_run_id if self._context else None)
            extra_dirs = {}
            for tflite in input_dict.get(TFLITE_KEY) or []:
                manifest["tflite"] = manifest_entry(json.loads(filesystem.read_bytes(
                    filesystem.join(tflite.uri, REPORT_FILE), limit=16 << 20)))
                # The shipped variants with the report; absent when nothing was exported.
                if filesystem.isdir(filesystem.join(tflite.uri, SHIPPED_DIR)):
                    extra_dirs[VERSION_DIR] = filesystem.join(tflite.uri, SHIPPED_DIR)
            version = store.publish(
                self.GetModelPath(input_dict), manifest=manifest,
                signing_key=signing.load_signing_key(custom_config.get("signing_key_file", "")),
                keep_versions=custom_config.get("keep_versions", 0), extra_dirs=extra_dirs)
            logging.info("Pusher: published version %d to %s (%s)", version.number, version.path,
                         "signed" if version.signed else "unsigned")
        self._MarkPushed(pushed_model, pushed_destination=version.path,
                         pushed_version=str(version.number))


class StorePusherSpec(types.ComponentSpec):
    """TFX's Pusher inputs and parameters, and TFLiteExport's variants."""

    PARAMETERS = standard_component_specs.PusherSpec.PARAMETERS
    INPUTS = {**standard_component_specs.PusherSpec.INPUTS,
              TFLITE_KEY: ChannelParameter(type=TFLiteModels, optional=True)}
    OUTPUTS = standard_component_specs.PusherSpec.OUTPUTS


class StorePusher(base_component.BaseComponent):
    """Publishes a blessed model, and its shipped TFLite variants, into the model store."""

    SPEC_CLASS = StorePusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel,
                 push_destination: pusher_pb2.PushDestination, custom_config: dict[str, Any],
                 tflite_models: Optional[types.BaseChannel] = None):
        super().__init__(spec=StorePusherSpec(
            model=model, model_blessing=model_blessing, tflite_models=tflite_models,
            push_destination=push_destination, custom_config=json_utils.dumps(custom_config),
            pushed_model=types.Channel(type=standard_artifacts.PushedModel)))


def _store(exec_properties: dict[str, Any]) -> ModelStore:
    push_destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
                              push_destination)
    model_dir = push_destination.filesystem.base_directory.rstrip("/")
    return ModelStore(posixpath.dirname(model_dir), posixpath.basename(model_dir))


def _manifest(model, blessing, pushed_model, custom_config: dict[str, Any],
              pipeline_run_id: Optional[str]) -> dict[str, Any]:
    """What the version records about where it came from (the store adds files and version)."""
    span = blessing.get_int_custom_property(DATA_SPAN_PROPERTY) \
        if blessing.has_custom_property(DATA_SPAN_PROPERTY) else None
    metrics = blessing.get_string_custom_property(METRICS_PROPERTY) \
        if blessing.has_custom_property(METRICS_PROPERTY) else "{}"
    return {
        "blessed": True,
        "metrics": json.loads(metrics),
        "data_span": span,
        "model_uri": model.uri,
        "code_version": custom_config.get("code_version", ""),
        "code_fingerprint": custom_config.get("code_fingerprint", ""),
        "mlmd": {
            "model_artifact_id": model.id,
            "blessing_artifact_id": blessing.id,
            # TFX names each output folder after the execution that wrote it.
            "trainer_execution_id": _execution_id_of(model.uri),
            "evaluator_execution_id": _execution_id_of(blessing.uri),
            "pusher_execution_id": _execution_id_of(pushed_model.uri),
            "pipeline_run_id": pipeline_run_id,
        },
    }


def _execution_id_of(uri: str) -> Optional[int]:
    last = posixpath.basename(uri.rstrip("/"))
    return int(last) if last.isdigit() else None


def _version_pushed_from(store: ModelStore, model_uri: str) -> Optional[Version]:
    """The serving version whose manifest names `model_uri`, if any."""
    for version in store.serving_candidates():
        if version.manifest.get("model_uri") == model_uri:
            return version
    return None
