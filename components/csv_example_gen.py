"""CsvExampleGen with a configurable delimiter and text encoding, so TSV corpora (GLUE style)
and Latin-1, Windows-1252 or UTF-16 exports load unchanged.

TFX 1.16's CsvExampleGen hard-codes ',' and UTF-8 for both the header and the rows. This
component is `FileBasedExampleGen` with an executor that reads the same way (TFX's multi-line
record buffer, column type inference and tf.Example conversion) but splits on the delimiter and
decodes with the encoding given in `custom_config`: the examples hold UTF-8 text whatever the
files were, and the files are read where they are. Splits, spans and caching behave exactly as in
CsvExampleGen. With row rules in `custom_config` it also checks every row as it reads it
(`pipeline.data_check.RowRules`: field counts, labels, field sizes, encoding), so an input too
large for the pre-flight to read whole fails here with the pre-flight's file-and-line message.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any, Iterator, Optional, Union

import apache_beam as beam
from google.protobuf import json_format, struct_pb2
from tfx.components import FileBasedExampleGen
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.orchestration.data_types import RuntimeParameter
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx_bsl.coders import csv_decoder

from pipeline.data_check import InputDataError, RowRules
from pipeline.encodings import DEFAULT_ENCODING, text_lines, undecodable_at

DELIMITER_KEY = "delimiter"
ENCODING_KEY = "encoding"
# `DataSummary.row_rules` as JSON (a Struct would turn its integers into floats).
ROW_RULES_KEY = "row_rules"


def _options_from(exec_properties: dict[str, Any]) -> tuple[str, str, Optional[dict[str, Any]]]:
    """(delimiter, encoding, row rules or None) from `custom_config`; CsvExampleGen's when
    absent."""
    serialized = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not serialized:
        return ",", DEFAULT_ENCODING, None
    custom_config = example_gen_pb2.CustomConfig()
    json_format.Parse(serialized, custom_config)
    options = struct_pb2.Struct()
    custom_config.custom_config.Unpack(options)
    rules = options.fields[ROW_RULES_KEY].string_value
    return (options.fields[DELIMITER_KEY].string_value or ",",
            options.fields[ENCODING_KEY].string_value or DEFAULT_ENCODING,
            json.loads(rules) if rules else None)


def _read_header(path: str, delimiter: str, encoding: str) -> list[str]:
    with fileio.open(path, "rb") as handle:
        first_line = text_lines(handle, encoding).readline()
    return next(csv.reader([first_line.rstrip("\r\n")], delimiter=delimiter), [])


class _ReadRecords(beam.DoFn):
    """One file's records after its header, decoded; a quoted field may span lines (TFX's
    buffer joins them). With `rules`, each record is checked at its (last physical) line."""

    def __init__(self, encoding: str, rules: Optional[RowRules]):
        super().__init__()
        self._encoding = encoding
        self._rules = rules

    def process(self, path: str) -> Iterator[str]:
        try:
            yield from self._records(path)
        except UnicodeDecodeError as error:
            raise InputDataError(undecodable_at(
                path, self._encoding, opener=beam.io.filesystems.FileSystems.open)) from error

    def _records(self, path: str) -> Iterator[str]:
        with beam.io.filesystems.FileSystems.open(path) as handle:
            lines = text_lines(handle, self._encoding)
            next(lines, None)
            buffer = csv_executor._CsvLineBuffer()  # pylint: disable=protected-access
            for line_number, line in enumerate(lines, start=2):
                buffer.write(line)
                if buffer.is_complete_line():
                    record = buffer.read()
                    if self._rules:
                        self._rules.check_record(path, line_number, record)
                    yield record
            if not buffer.is_empty():
                raise InputDataError(f"a quoted field in {path} is never closed: unbalanced "
                                     "quotes; close the quote or remove the stray one")


class _DelimitedTextToExample(beam.PTransform):
    """Reads the delimited files of one split pattern into tf.Examples."""

    def __init__(self, exec_properties: dict[str, Any], split_pattern: str):
        super().__init__()
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        self._pattern = os.path.join(input_base, split_pattern)
        self._delimiter, self._encoding, self._rules = _options_from(exec_properties)

    def expand(self, pipeline: beam.Pipeline) -> beam.PCollection:
        files = fileio.glob(self._pattern)
        if not files:
            raise RuntimeError(f"split pattern {self._pattern} matches no files")
        column_names = _read_header(files[0], self._delimiter, self._encoding)
        for path in files[1:]:
            if _read_header(path, self._delimiter, self._encoding) != column_names:
                raise RuntimeError(f"files matching {self._pattern} have different headers")
        parsed_lines = (
            pipeline
            | "CreateFilenames" >> beam.Create(files)
            | "ReadRecords" >> beam.ParDo(_ReadRecords(
                self._encoding,
                RowRules.from_dict(self._rules, column_names) if self._rules else None))
            | "ParseLines" >> beam.ParDo(csv_decoder.ParseCSVLine(delimiter=self._delimiter))
            | "ExtractParsedLines" >> beam.Keys())
        column_infos = beam.pvalue.AsSingleton(
            parsed_lines
            | "InferColumnTypes" >> beam.CombineGlobally(
                csv_decoder.ColumnTypeInferrer(column_names, skip_blank_lines=True)))
        return parsed_lines | "ToTFExample" >> beam.ParDo(
            csv_executor._ParsedCsvToTfExample(), column_infos)  # pylint: disable=protected-access


class Executor(BaseExampleGenExecutor):
    """ExampleGen executor for delimiter-separated text files with a header line."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _DelimitedTextToExample


def delimited_example_gen(input_base: Union[str, RuntimeParameter], delimiter: str,
                          input_config: example_gen_pb2.Input,
                          output_config: Optional[example_gen_pb2.Output] = None,
                          encoding: str = DEFAULT_ENCODING,
                          row_rules: Optional[dict[str, Any]] = None) -> FileBasedExampleGen:
    """Returns an ExampleGen (component id `CsvExampleGen`) reading `delimiter`-separated files
    written in `encoding`, checking every row by `row_rules` (`DataSummary.row_rules`) if
    given."""
    options = struct_pb2.Struct()
    options.update({DELIMITER_KEY: delimiter, ENCODING_KEY: encoding,
                    **({ROW_RULES_KEY: json.dumps(row_rules, sort_keys=True)} if row_rules else {})})
    custom_config = example_gen_pb2.CustomConfig()
    custom_config.custom_config.Pack(options)
    # FileBasedExampleGen, which takes a custom executor, is not in `tfx.v1`.
    return FileBasedExampleGen(
        input_base=input_base,
        input_config=input_config,
        output_config=output_config,
        custom_config=custom_config,
        custom_executor_spec=executor_spec.BeamExecutorSpec(Executor),
    ).with_id("CsvExampleGen")
