"""TokenizerParity on the artifacts of a real fine-tuning run (the `pretrained_run` fixture).

Passing: the run's own report. Failing: the same examples and transform graph imported into a
second pipeline whose reference tokenizer has a different vocabulary (a copy of the offline
checkpoint with a reordered vocab.txt).
"""

import json
import pathlib

import pytest
from tfx import v1 as tfx

from components.tokenizer_parity import REPORT_FILE, TokenizerParity, TokenizerParityReport
from pipeline.local_runner import newest_artifact
from pipeline.metadata import metadata_store_of
from tests.conftest import checkpoint_copy


def _raw_examples_uri(config) -> str:
    """ExampleGen's output (Transform's transformed examples are of the same type)."""
    store = metadata_store_of(config)
    return next(artifact.uri for artifact in store.get_artifacts_by_type("Examples")
                if "/CsvExampleGen/" in artifact.uri)


def test_matching_tokenizers_pass_with_full_parity(pretrained_run):
    config, _ = pretrained_run
    report_artifact = newest_artifact(config, TokenizerParityReport.TYPE_NAME)
    report = json.loads(pathlib.Path(report_artifact.uri, REPORT_FILE).read_text())
    assert report["passed"] and report["parity"] >= 0.995
    assert report["examples"] > 20 and report["mismatches"] == []
    assert report_artifact.custom_properties["parity"].double_value == report["parity"]


def test_a_different_vocabulary_fails_the_run_and_lists_the_mismatches(
        pretrained_run, offline_checkpoint, tmp_path):
    config, _ = pretrained_run
    reordered = checkpoint_copy(offline_checkpoint, tmp_path / "reordered")
    (reordered / "tokenizer.json").unlink()  # so the reference tokenizer is built from vocab.txt
    vocabulary = (reordered / "vocab.txt").read_text(encoding="utf-8").splitlines()
    # Special and unused tokens stay; every word piece gets another id.
    vocabulary[1000:] = reversed(vocabulary[1000:])
    (reordered / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")

    examples = tfx.dsl.Importer(
        source_uri=_raw_examples_uri(config),
        artifact_type=tfx.types.standard_artifacts.Examples,
        properties={"split_names": '["train", "eval"]'}).with_id("examples")
    transform_graph = tfx.dsl.Importer(
        source_uri=newest_artifact(config, "TransformGraph").uri,
        artifact_type=tfx.types.standard_artifacts.TransformGraph).with_id("transform_graph")
    parity = TokenizerParity(
        examples=examples.outputs["result"], transform_graph=transform_graph.outputs["result"],
        checkpoint_path=str(reordered), text_columns="text", max_seq_length=64,
        min_parity=0.995)
    with pytest.raises(Exception, match=r"tokenizer parity too low: 0/\d+ examples") as failure:
        tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
            pipeline_name="parity", pipeline_root=str(tmp_path / "root"),
            components=[examples, transform_graph, parity],
            metadata_connection_config=tfx.orchestration.metadata
            .sqlite_metadata_connection_config(str(tmp_path / "metadata.db"))))

    # TFX removes a failed execution's outputs, so the message itself lists the mismatches.
    lines = str(failure.value).splitlines()
    transform = [line for line in lines if line.startswith("    transform: [")]
    reference = [line for line in lines if line.startswith("    reference: [")]
    assert len(transform) == len(reference) == 3
    assert transform[0].split(": ", 1)[1] != reference[0].split(": ", 1)[1]
