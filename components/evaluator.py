"""TFX's Evaluator, also recording on its blessing what the Pusher's manifest needs.

The Pusher sees only the model and the blessing. This executor adds to the blessing the data
span the model was evaluated on (the span it was trained on: both come from one ExampleGen
output) and the overall metrics, so each pushed version can say what it was built from without
the Pusher reading ML Metadata.
"""

from __future__ import annotations

import json
from typing import Any

from tfx import v1 as tfx
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_component_specs

from pipeline.evaluation import overall_metrics

# Custom properties this executor sets on the ModelBlessing artifact.
DATA_SPAN_PROPERTY = "data_span"
METRICS_PROPERTY = "overall_metrics"


class Executor(evaluator_executor.Executor):
    """Evaluates and blesses as TFX does, then records the span and the overall metrics."""

    def Do(self, input_dict: dict[str, list[Any]], output_dict: dict[str, list[Any]],
           exec_properties: dict[str, Any]) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        blessing = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.BLESSING_KEY])
        examples = input_dict[standard_component_specs.EXAMPLES_KEY]
        blessing.set_int_custom_property(DATA_SPAN_PROPERTY, max(item.span for item in examples))
        evaluation_uri = artifact_utils.get_single_uri(
            output_dict[standard_component_specs.EVALUATION_KEY])
        blessing.set_string_custom_property(METRICS_PROPERTY,
                                            json.dumps(overall_metrics(evaluation_uri)))


class RecordingEvaluator(tfx.components.Evaluator):
    """The Evaluator with the executor above; the pipeline gives it the id `Evaluator`."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
