"""TFLiteExport: the trained model as raw-text TFLite variants, each measured and gated.

Converts every `tflite.variants` entry of the Trainer's SavedModel (`lite.export`), compares each
with the SavedModel on the eval split (accuracy overall and per slice, changed labels,
probability difference, latency of one text), and sorts them into shipped and refused. The
Pusher publishes the shipped ones, with a blessed model only, into the same store version as the
SavedModel, so the manifest's sums and signature cover them. Its inputs are the model and the
examples, not the blessing: a rerun that evaluates the same model against a new baseline reuses
the export from the cache instead of converting it again.

A model that cannot be exported (trained from scratch, a tokenizer with no TFLite kernels), or
an export that fails in any other way, is logged and reported as "no TFLite export: <reason>"
and the model ships without, unless `tflite.required` is set.
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
        examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
        tflite_models: tfx.dsl.components.OutputArtifact[TFLiteModels],
        settings: tfx.dsl.components.Parameter[str],
) -> None:
    """Exports the model's TFLite variants.

    `settings` is JSON: the `tflite` config section, `text_column`, `label_column` and
    `slice_columns`.
    """
    options = json.loads(settings)
    tflite = section_from_dict(TFLiteConfig, options["tflite"])
    try:
        report = export_from_examples(
            path_utils.serving_model_path(model.uri), examples.uri, options["text_column"],
            options["label_column"], options["slice_columns"], tflite, tflite_models.uri)
    except Exception as error:  # pylint: disable=broad-except
        # NotConvertible says why in its message; anything else is a failure of the export, not
        # of the model, and must not stop a good model from shipping either.
        reason = str(error) if isinstance(error, NotConvertible) else (
            f"the export failed: {type(error).__name__}: {str(error).strip().splitlines()[0]}"
            if str(error).strip() else f"the export failed: {type(error).__name__}")
        if tflite.required:
            raise TFLiteExportError(f"{NO_EXPORT}: {reason} (tflite.required is set; set it "
                                    "to false to ship the SavedModel alone)") from error
        logging.warning("%s: %s", NO_EXPORT, reason, exc_info=not isinstance(error, NotConvertible))
        report = write_no_export(tflite_models.uri, reason)
    tflite_models.set_string_custom_property("shipped", ",".join(report["shipped"]))
    tflite_models.set_string_custom_property(
        "reason", "" if report["exported"] else report["reason"])
