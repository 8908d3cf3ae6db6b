"""`textclf models export-tflite VERSION`: the TFLite variants of an already published version,
measured on the examples its Evaluator saw and added to the version in the store.

The eval examples come from ML Metadata (the version's manifest names the Evaluator execution
that blessed it), so the variants are judged on exactly the data the SavedModel was; the
version is then amended in one store operation, its manifest re-signed.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from lite.export import export_from_examples
from lite.layout import SHIPPED_DIR, VERSION_DIR
from lite.manifest import manifest_entry
from pipeline.config import PipelineConfig
from pipeline.metadata import execution_artifacts, metadata_store_of
from serving import signing
from serving.store import ModelStore, StoreError, Version, VersionRefused, verify_version


def export_published(config: PipelineConfig, store_root: str,
                     number: int) -> tuple[Version, dict[str, Any]]:
    """Exports version `number`'s TFLite variants into it; (the amended version, the report).

    Raises:
      StoreError: no such version, it does not verify, its store cannot change a version in
        one step, or its examples are not in ML Metadata.
      lite.graph.NotConvertible: the model cannot be exported (the reason says why).
      signing.KeyFileError: a configured key cannot be read.
    """
    store = ModelStore(store_root, config.model_name)
    verify_key = signing.load_verify_key(config.serving.verify_key_file)
    signing_key = signing.load_signing_key(config.serving.signing_key_file)
    # Checked before minutes of conversion; the store checks again as it swaps the version in.
    version = store.published_version(number)
    try:
        verify_version(version, verify_key)
    except VersionRefused as error:
        raise StoreError(str(error)) from error
    examples_uri = _evaluated_examples(config, version)
    with tempfile.TemporaryDirectory(prefix="tflite-export-") as work:
        report = export_from_examples(version.path, examples_uri, config.data.text_column,
                                      config.data.label_column, list(config.data.slice_columns),
                                      config.tflite, work)
        amended = store.amend(number, {VERSION_DIR: os.path.join(work, SHIPPED_DIR)},
                              {"tflite": manifest_entry(report)}, signing_key=signing_key,
                              verify_key=verify_key)
    return amended, report


def _evaluated_examples(config: PipelineConfig, version: Version) -> str:
    """The uri of the examples the version's Evaluator execution read."""
    lineage = version.manifest.get("mlmd")
    execution_id = lineage.get("evaluator_execution_id") if isinstance(lineage, dict) else None
    examples = []
    if isinstance(execution_id, int) and not isinstance(execution_id, bool) \
            and os.path.exists(config.metadata_path):
        examples = execution_artifacts(metadata_store_of(config), execution_id,
                                       "input").get("examples", [])
    if not examples:
        raise StoreError(
            f"version {version.number}'s eval examples (Evaluator execution {execution_id!r}) "
            f"are not in the ML Metadata at {config.metadata_path}: run this where the pipeline "
            "that pushed it ran, with its --output-dir")
    return examples[0].uri
