"""Pusher whose push is idempotent: a model already in the serving store is not pushed again.

TFX's Pusher writes a new `<store>/<model>/<timestamp>/` version every time it executes with a
blessing. Rerunning an unchanged pipeline re-executes the Evaluator as soon as a baseline exists
(the resolver now returns the previous blessed model), so the same model would pile up as new
versions, and a model server would "upgrade" to an identical copy. This executor records which
Trainer model each version came from and reuses that version instead.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from absl import logging
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

# Written into each pushed version folder; model servers ignore files they do not know.
SOURCE_MODEL_FILE = "source_model.json"


class Executor(pusher_executor.Executor):
    """Pushes a blessed model unless the same Trainer model is already a version in the store."""

    def Do(self, input_dict: dict[str, list[Any]], output_dict: dict[str, list[Any]],
           exec_properties: dict[str, Any]) -> None:
        model_uri = artifact_utils.get_single_uri(input_dict[standard_component_specs.MODEL_KEY])
        pushed_model = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        base_directory = _base_directory(exec_properties)
        existing_version = (self.CheckBlessing(input_dict)
                            and _version_pushed_from(base_directory, model_uri))
        if existing_version:
            logging.info("Pusher: model %s already serves as version %s; not pushing a copy",
                         model_uri, existing_version)
            self._MarkPushed(pushed_model,
                             pushed_destination=os.path.join(base_directory, existing_version),
                             pushed_version=existing_version)
            return
        super().Do(input_dict, output_dict, exec_properties)
        if pushed_model.get_int_custom_property("pushed") == 1:
            destination = pushed_model.get_string_custom_property("pushed_destination")
            with fileio.open(os.path.join(destination, SOURCE_MODEL_FILE), "w") as handle:
                handle.write(json.dumps({"model_uri": model_uri}))


def _base_directory(exec_properties: dict[str, Any]) -> str:
    push_destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
                              push_destination)
    return push_destination.filesystem.base_directory


def _version_pushed_from(base_directory: str, model_uri: str) -> Optional[str]:
    """The version folder whose source record names `model_uri`, if any."""
    if not fileio.exists(base_directory):
        return None
    for version in sorted(fileio.listdir(base_directory)):
        record = os.path.join(base_directory, version, SOURCE_MODEL_FILE)
        if fileio.exists(record):
            with fileio.open(record) as handle:
                if json.loads(handle.read()).get("model_uri") == model_uri:
                    return version.rstrip("/")
    return None
