"""The reviewed schema: exported from a run's inferred schema, edited by a person, then imported.

SchemaGen infers a schema from each run's own data, so ExampleValidator can only find data that
disagrees with itself (an eval split unlike its train split). A schema a person has reviewed and
committed fixes what the data must look like across runs: the label values, the slice values,
that every row has a text. `textclf schema export` writes such a file to start from, and
`data.schema_file` makes the pipeline use it through ImportSchemaGen.
"""

from __future__ import annotations

import pathlib
import time
from typing import Optional

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline.config import DataConfig, PipelineConfig
from pipeline.metadata import metadata_store_of, newest_output

# TFDV environments: the label is there in training, not in serving requests.
TRAINING, SERVING = "TRAINING", "SERVING"
# The file SchemaGen and ImportSchemaGen write into their Schema artifact.
SCHEMA_FILE_NAME = "schema.pbtxt"


class SchemaFileError(ValueError):
    """`data.schema_file` is missing, unreadable, or does not describe the configured columns."""


def check_schema_file(data: DataConfig) -> schema_pb2.Schema:
    """Reads `data.schema_file` and checks that it describes every column the run uses."""
    path = pathlib.Path(data.schema_file)
    try:
        schema = text_format.Parse(path.read_text(encoding="utf-8"), schema_pb2.Schema())
    except OSError as error:
        raise SchemaFileError(f"data.schema_file {path} cannot be read ({error.strerror}): "
                              "`textclf schema export` writes one from a run") from error
    except text_format.ParseError as error:
        raise SchemaFileError(f"data.schema_file {path} is not a TFDV schema in text format: "
                              f"{error}") from error
    described = {feature.name for feature in schema.feature}
    missing = [column for column in (*data.text_columns, data.label_column, *data.slice_columns)
               if column not in described]
    if missing:
        raise SchemaFileError(f"data.schema_file {path} has no feature for column(s) {missing}: "
                              "export it again from a run on these columns")
    return schema


def reviewable_schema(inferred: schema_pb2.Schema, data: DataConfig,
                      label_values: list[str]) -> schema_pb2.Schema:
    """The inferred schema with what a reviewer should start from set explicitly.

    Text columns must be present in every example and have no value domain (any text is fine);
    the label is required in training and absent in serving, with exactly `label_values`.
    Everything else (slice domains, types) stays as inferred.
    """
    schema = schema_pb2.Schema()
    schema.CopyFrom(inferred)
    schema.ClearField("default_environment")
    schema.default_environment.extend([TRAINING, SERVING])
    # Global domains the text and label features referred to; replaced or dropped below.
    replaced_domains = set()
    for feature in schema.feature:
        if feature.name not in (*data.text_columns, data.label_column):
            continue
        feature.presence.min_fraction = 1.0
        if feature.HasField("domain"):
            replaced_domains.add(feature.domain)
        feature.ClearField("domain")
        feature.ClearField("string_domain")
        if feature.name == data.label_column:
            feature.ClearField("not_in_environment")
            feature.not_in_environment.append(SERVING)
            if feature.type == schema_pb2.BYTES:
                feature.string_domain.CopyFrom(
                    schema_pb2.StringDomain(name=data.label_column, value=label_values))
    kept = [domain for domain in schema.string_domain if domain.name not in replaced_domains]
    schema.ClearField("string_domain")
    schema.string_domain.extend(kept)
    return schema


def export_schema(config: PipelineConfig, target: Optional[str] = None) -> pathlib.Path:
    """Writes the newest schema of the local runs, made reviewable, to `target` (or schemas/).

    Raises:
      SchemaFileError: no run has written a schema yet.
    """
    newest = newest_output(metadata_store_of(config), config.pipeline_name, "SchemaGen", "schema")
    if newest is None:
        raise SchemaFileError(f"no schema inferred in {config.metadata_path} yet: run the pipeline "
                              "once without data.schema_file (`textclf run`), then export")
    inferred = text_format.Parse(
        pathlib.Path(newest.uri, SCHEMA_FILE_NAME).read_text(encoding="utf-8"),
        schema_pb2.Schema())
    label_feature = next((feature for feature in inferred.feature
                          if feature.name == config.data.label_column), None)
    label_values = list(config.data.label_values) or _domain_values(inferred, label_feature)
    schema = reviewable_schema(inferred, config.data, label_values)
    path = pathlib.Path(target or pathlib.Path("schemas", f"{config.pipeline_name}.pbtxt"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# Reviewed schema of pipeline {config.pipeline_name!r}, exported by `textclf schema "
        f"export` on {time.strftime('%Y-%m-%d')}\n"
        "# from the newest schema SchemaGen inferred from the data.\n"
        "# Review it (label values, slice values, which columns every row must have), commit "
        "it, and\n# set data.schema_file to it: every run's data is then validated against "
        "this file.\n" + text_format.MessageToString(schema), encoding="utf-8")
    return path


def _domain_values(schema: schema_pb2.Schema,
                   feature: Optional[schema_pb2.Feature]) -> list[str]:
    if feature is None:
        return []
    if feature.HasField("string_domain"):
        return list(feature.string_domain.value)
    return next((list(domain.value) for domain in schema.string_domain
                 if domain.name == feature.domain), [])
