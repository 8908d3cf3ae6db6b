"""TFLiteExport: the blessed model as raw-text TFLite variants, each measured and gated.

Runs after the Evaluator on the Trainer's SavedModel: converts every `tflite.variants` entry
(`lite.export`), compares each with the SavedModel on the eval split (accuracy overall and per
slice, changed labels, probability difference, latency of one text), and sorts them into
shipped and refused. The Pusher publishes the shipped ones into the same store version as the
SavedModel, so the manifest's sums and signature cover them. A model that cannot be exported
(trained from scratch, a tokenizer with no TFLite kernels) is logged and reported as
"no TFLite export: <reason>" and ships without, unless `tflite.required` is set.
"""

# No `from __future__ import annotations`: the @component decorator reads the annotations.
import json

from absl import logging
from tfx import v1 as tfx
from tfx.types import artifact
from tfx.utils import path_utils

from lite.export import export_from_examples, write_no_export
from lite.graph import NotConvertible
from lite.layout import NO_EXPORT
from pipeline.config import TFLiteConfig, section_from_dict


class TFLiteModels(artifact.Artifact):
    """The variants (`shipped/`, `refused/`) and their report (`tflite_report.json`)."""

    # Kubeflow Pipelines wants `namespace.Name` for custom artifact types.
    TYPE_NAME = "textclf.TFLiteModels"


class TFLiteExportError(RuntimeError):
    """The model cannot be exported to TFLite, and `tflite.required` is set."""


# TFX names a function component after the function, as it names classes.
@tfx.dsl.components.component
def TFLiteExport(  # pylint: disable=invalid-name
        model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
        blessing: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelBlessing],
        examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
        tflite_models: tfx.dsl.components.OutputArtifact[TFLiteModels],
        settings: tfx.dsl.components.Parameter[str],
) -> None:
    """Exports a blessed model's TFLite variants (nothing for a model the Evaluator refused).

    `settings` is JSON: the `tflite` config section, `text_column`, `label_column` and
    `slice_columns`.
    """
    options = json.loads(settings)
    tflite = section_from_dict(TFLiteConfig, options["tflite"])
    if not blessing.get_int_custom_property("blessed"):
        report = write_no_export(tflite_models.uri, "the model was not blessed")
    else:
        try:
            report = export_from_examples(
                path_utils.serving_model_path(model.uri), examples.uri, options["text_column"],
                options["label_column"], options["slice_columns"], tflite, tflite_models.uri)
        except NotConvertible as error:
            if tflite.required:
                raise TFLiteExportError(f"{NO_EXPORT}: {error} (tflite.required is set; set it "
                                        "to false to ship the SavedModel alone)") from error
            logging.warning("%s: %s", NO_EXPORT, error)
            report = write_no_export(tflite_models.uri, str(error))
    tflite_models.set_string_custom_property("shipped", ",".join(report["shipped"]))
    tflite_models.set_string_custom_property(
        "reason", "" if report["exported"] else report["reason"])
