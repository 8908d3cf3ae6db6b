"""The one parser and validator of prediction requests, and the encoder of their answers.

Every prediction body, V1 (TF Serving's REST API) or V2 (the Open Inference Protocol), is
decided here from its raw bytes and headers into a `TextRequest` of UTF-8 texts, before
anything reaches the batcher: a body that could fail a model call (a lone UTF-16 surrogate, a
number where a text belongs, a shape that does not match its data) fails alone with 4xx.

KServe's own request handling is bypassed for prediction because it is wrong for such clients:
it decodes only a Content-Type exactly equal to "application/json" (so `application/json;
charset=utf-8` and `Application/JSON` were refused), lets FastAPI's JSON parser pass lone
surrogates on to the model (500 for the whole batch), and ignores V2 `shape` and `outputs`. Its
response types (`InferResponse`) are kept, so V2 answers are KServe's.

Status codes: 400 malformed or wrong content, 413 over a size limit, 415 not JSON / not UTF-8.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import re
from typing import Any, Optional, Sequence

import orjson
from kserve.protocol.infer_type import InferOutput, InferResponse

from modules import features

# What a prediction answers, in this order unless a V2 request names some.
OUTPUT_NAMES = (features.PROBABILITIES, features.PREDICTED_LABEL, features.PREDICTED_CLASS_ID)
_OUTPUT_DATATYPES = {features.PROBABILITIES: "FP32", features.PREDICTED_LABEL: "BYTES",
                     features.PREDICTED_CLASS_ID: "INT64"}
# Media types read as JSON: JSON itself, and what TF Serving's users send for it (`curl -d`
# labels a body a form; none at all). Compared case-insensitively, parameters parsed.
_JSON_MEDIA_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded")
_UTF8_CHARSETS = ("utf-8", "utf8", "us-ascii")
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})")
_PARAMETER = re.compile(rf"\s*({_TOKEN})\s*=\s*(?:({_TOKEN})|\"((?:[^\"\\]|\\.)*)\")\s*")


class RequestError(Exception):
    """A request this server refuses: its HTTP status and one message that names the fix."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may hold (ServingConfig's max_instances, max_text_chars, body limit)."""

    max_instances: int
    max_text_chars: int
    max_body_bytes: int


@dataclasses.dataclass(frozen=True)
class TextRequest:
    """A validated prediction request: rows of UTF-8 texts, one per model text input."""

    rows: list[tuple[bytes, ...]]
    # The outputs to answer with, in order (V2 `outputs`; every output otherwise).
    outputs: tuple[str, ...] = OUTPUT_NAMES
    # V2's `id`, echoed in the answer.
    request_id: str = ""
    # V1's columnar form (`inputs` rather than `instances`), answered as `outputs`.
    columnar: bool = False


def check_media_type(content_types: Sequence[str]) -> None:
    """Raises 415 unless the body is declared JSON (or undeclared) in UTF-8; 400 if ambiguous."""
    if len(content_types) > 1:
        raise RequestError(400, "more than one Content-Type header: send one")
    if not content_types or not content_types[0].strip():
        return
    declared = content_types[0]
    media_type, _, parameters = declared.partition(";")
    match = _MEDIA_TYPE.fullmatch(media_type.strip())
    charset = None
    if match and parameters.strip():
        for parameter in parameters.split(";"):
            found = _PARAMETER.fullmatch(parameter)
            if not found:
                match = None
                break
            if found.group(1).lower() == "charset":
                charset = (found.group(2) or found.group(3) or "").lower()
    if not match:
        raise RequestError(400, f"Content-Type {_shown(declared)} is not a media type: send "
                                "'application/json'")
    type_name = f"{match.group(1)}/{match.group(2)}".lower()
    if type_name not in _JSON_MEDIA_TYPES and not (
            type_name.startswith("application/") and type_name.endswith("+json")):
        raise RequestError(415, f"Content-Type {type_name} is not JSON: send the request as "
                                "'application/json' (binary tensor data is not supported)")
    if charset is not None and charset not in _UTF8_CHARSETS:
        raise RequestError(415, f"charset {charset} is not supported: send JSON in UTF-8")


def read_json(body: bytes) -> Any:
    """The JSON value of `body` (strict UTF-8, no byte-order mark, no NaN, depth at most 1024)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestError(400, f"the body is not JSON: {error}") from None


def parse_v1(body: Any, text_inputs: Sequence[str], limits: Limits) -> TextRequest:
    """TF Serving's predict request: {"instances": [...]} (rows) or {"inputs": ...} (columns).

    A row is a text, or {"text": ..., "text_pair": ...}; a text is a string or TF Serving's
    {"b64": ...} of UTF-8 bytes.
    """
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise RequestError(400, 'expected a JSON object {"instances": ["text", ...]} '
                                '(or TF Serving\'s columnar {"inputs": ...}, not both)')
    signature = body.get("signature_name", features.TEXT_SIGNATURE)
    if signature != features.TEXT_SIGNATURE:
        raise RequestError(400, f"signature_name {_shown(signature)}: this server answers "
                                f"{features.TEXT_SIGNATURE!r} (raw text in); leave it out")
    if "instances" in body:
        instances = _limited_list(body["instances"], '"instances"', limits)
        return TextRequest([_v1_row(instance, f"instance {index}", text_inputs, limits)
                            for index, instance in enumerate(instances)])
    inputs = body["inputs"]
    if isinstance(inputs, list):
        return TextRequest([_v1_row(value, f"input {index}", text_inputs, limits)
                            for index, value in enumerate(
                                _limited_list(inputs, '"inputs"', limits))], columnar=True)
    if not isinstance(inputs, dict):
        raise RequestError(400, '"inputs" must be a list of texts or an object of lists '
                                f'{{"text": [...]}}, got {_json_type(inputs)}')
    _check_names(inputs, text_inputs, '"inputs"')
    columns = [[_text(value, f'inputs["{name}"][{index}]', limits)
                for index, value in enumerate(_limited_list(inputs[name], f'"inputs.{name}"',
                                                            limits))]
               for name in text_inputs]
    return TextRequest(_rows_of(columns, text_inputs), columnar=True)


def parse_v2(body: Any, text_inputs: Sequence[str], limits: Limits) -> TextRequest:
    """An Open Inference Protocol infer request with BYTES inputs named after the text inputs."""
    if not isinstance(body, dict):
        raise RequestError(400, f'expected a JSON object {{"inputs": [...]}}, got '
                                f"{_json_type(body)}")
    request_id = body.get("id", "")
    if not isinstance(request_id, str):
        raise RequestError(400, f'"id" must be a string, got {_json_type(request_id)}')
    if not isinstance(body.get("parameters", {}), dict):
        raise RequestError(400, '"parameters" must be an object')
    tensors = body.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise RequestError(400, f'"inputs" must be a non-empty list of tensors '
                                f'{{"name": "text", "shape": [n], "datatype": "BYTES", '
                                f'"data": [...]}}, got {_json_type(tensors)}')
    by_name: dict[str, list[bytes]] = {}
    for index, tensor in enumerate(tensors):
        name, texts = _v2_tensor(tensor, index, text_inputs, limits)
        if name in by_name:
            raise RequestError(400, f"input {name!r} appears twice")
        by_name[name] = texts
    _check_names(by_name, text_inputs, '"inputs"')
    rows = _rows_of([by_name[name] for name in text_inputs], text_inputs)
    return TextRequest(rows, _requested_outputs(body.get("outputs")), request_id)


def v1_answer(request: TextRequest, results: list[dict[str, Any]], version: int) -> bytes:
    """TF Serving's answer: `predictions` per row, or `outputs` per output for columnar input."""
    if request.columnar:
        answer = {"outputs": {name: [row[name] for row in results] for name in OUTPUT_NAMES}}
    else:
        answer = {"predictions": results}
    return orjson.dumps({**answer, "model_version": str(version)})


def v2_answer(request: TextRequest, results: list[dict[str, Any]], version: int,
              model_name: str) -> bytes:
    """KServe's InferResponse holding the requested outputs."""
    outputs = []
    for name in request.outputs:
        data = [row[name] for row in results]
        shape = [len(results), len(data[0])] if name == features.PROBABILITIES else [len(data)]
        flat = [value for row in data for value in row] \
            if name == features.PROBABILITIES else data
        outputs.append(InferOutput(name, shape, _OUTPUT_DATATYPES[name], flat))
    response = InferResponse(response_id=request.request_id, model_name=model_name,
                             model_version=str(version), infer_outputs=outputs)
    return orjson.dumps(response.to_rest())


def _limited_list(value: Any, what: str, limits: Limits) -> list:
    if not isinstance(value, list):
        raise RequestError(400, f"expected {what} to be a list of texts, got {_json_type(value)}")
    if not value:
        raise RequestError(400, f"no instances in {what}: send at least one text")
    _check_count(len(value), limits)
    return value


def _check_count(count: int, limits: Limits) -> None:
    if count > limits.max_instances:
        raise RequestError(413, f"{count} instances in one request; the limit is "
                                f"{limits.max_instances} (serving.max_instances): split it")


def _v1_row(value: Any, where: str, text_inputs: Sequence[str], limits: Limits
            ) -> tuple[bytes, ...]:
    if isinstance(value, dict) and "b64" not in value:
        _check_names(value, text_inputs, where)
        return tuple(_text(value[name], f"{where} {name}", limits) for name in text_inputs)
    if len(text_inputs) > 1:
        raise RequestError(400, f"{where} is one text; this model takes a sentence pair: send "
                                '{"text": ..., "text_pair": ...}')
    return (_text(value, where, limits),)


def _check_names(fields: dict, text_inputs: Sequence[str], where: str) -> None:
    unknown = sorted(set(fields) - set(text_inputs))
    missing = [name for name in text_inputs if name not in fields]
    if unknown or missing:
        problem = f"unknown input {_shown(unknown[0])}" if unknown else f"no {missing[0]!r}"
        raise RequestError(400, f"{where}: {problem}; this model takes "
                                f"{' and '.join(text_inputs)}")


def _text(value: Any, where: str, limits: Limits) -> bytes:
    """A text as UTF-8 bytes: a JSON string, or {"b64": ...} of UTF-8 bytes."""
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            text = base64.b64decode(value["b64"], validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as error:  # binascii.Error is a ValueError;
            # a non-ASCII character in the b64 string is a plain one.
            raise RequestError(400, f"{where}: b64 is not base64 of UTF-8 text ({error})"
                               ) from None
    elif isinstance(value, str):
        text = value
    else:
        raise RequestError(400, f"{where} must be a string (or {{\"b64\": ...}}), got "
                                f"{_json_type(value)}")
    if len(text) > limits.max_text_chars:
        raise RequestError(413, f"{where} has {len(text)} characters; the limit is "
                                f"{limits.max_text_chars} (serving.max_text_chars)")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        # orjson refuses lone surrogates already; a text from anywhere else is checked here.
        raise RequestError(400, f"{where} holds a lone UTF-16 surrogate at character "
                                f"{error.start}: send valid Unicode") from None


def _v2_tensor(tensor: Any, index: int, text_inputs: Sequence[str], limits: Limits
               ) -> tuple[str, list[bytes]]:
    if not isinstance(tensor, dict):
        raise RequestError(400, f"input {index} must be an object, got {_json_type(tensor)}")
    name = tensor.get("name")
    where = f"input {_shown(name)}" if isinstance(name, str) else f"input {index}"
    if not isinstance(name, str) or name not in text_inputs:
        raise RequestError(400, f"unknown input {_shown(name)}; this model takes "
                                f"{' and '.join(text_inputs)}")
    missing = [field for field in ("shape", "datatype", "data") if field not in tensor]
    if missing:
        raise RequestError(400, f"{where} has no {missing[0]!r}")
    if tensor["datatype"] != "BYTES":
        raise RequestError(400, f"{where} must be BYTES holding strings, got "
                                f"{_shown(tensor['datatype'])}")
    parameters = tensor.get("parameters", {})
    if not isinstance(parameters, dict):
        raise RequestError(400, f"{where}: parameters must be an object")
    if "binary_data_size" in parameters:
        raise RequestError(415, f"{where}: binary tensor data is not supported; send the texts "
                                "in data")
    shape = tensor["shape"]
    if not (isinstance(shape, list) and shape and all(
            isinstance(size, int) and not isinstance(size, bool) and size >= 0
            for size in shape)):
        raise RequestError(400, f"{where}: shape must be a list of sizes, got {_shown(shape)}")
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise RequestError(400, f"{where}: shape {shape} is not [n] or [n, 1]: one text a row")
    _check_count(shape[0], limits)
    data = _flatten(tensor["data"], shape, where)
    if len(data) != math.prod(shape):
        raise RequestError(400, f"{where}: shape {shape} holds {math.prod(shape)} values, data "
                                f"has {len(data)}")
    if not data:
        raise RequestError(400, f"no instances in {where}: send at least one text")
    return name, [_text(value, f"{where} value {position}", limits)
                  for position, value in enumerate(data)]


def _flatten(data: Any, shape: list[int], where: str) -> list:
    """`data` flat, or nested as `shape` (row-major), as a flat list."""
    if not isinstance(data, list):
        raise RequestError(400, f"{where}: data must be a list, got {_json_type(data)}")
    if len(shape) == 1 or not any(isinstance(value, list) for value in data):
        return data
    if len(data) != shape[0] or not all(
            isinstance(row, list) and len(row) == shape[1] for row in data):
        raise RequestError(400, f"{where}: nested data does not have shape {shape}")
    return [value for row in data for value in row]


def _rows_of(columns: list[list[bytes]], text_inputs: Sequence[str]) -> list[tuple[bytes, ...]]:
    if len({len(column) for column in columns}) > 1:
        raise RequestError(400, f"{' and '.join(text_inputs)} must hold the same number of "
                                "values")
    return list(zip(*columns))


def _requested_outputs(requested: Any) -> tuple[str, ...]:
    if requested is None:
        return OUTPUT_NAMES
    if not isinstance(requested, list) or not requested or not all(
            isinstance(output, dict) and isinstance(output.get("name"), str)
            for output in requested):
        raise RequestError(400, '"outputs" must be a non-empty list of {"name": ...}; leave it '
                                "out for every output")
    names = tuple(output["name"] for output in requested)
    unknown = [name for name in names if name not in OUTPUT_NAMES]
    if unknown:
        raise RequestError(400, f"unknown output {_shown(unknown[0])}; this model answers "
                                f"{', '.join(OUTPUT_NAMES)}")
    if len(set(names)) != len(names):
        raise RequestError(400, "an output is requested twice")
    return names


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    """A client's value in a message: short, and never `repr` of a nested structure (which
    fails past 1,000 levels that JSON itself allows up to 1,024)."""
    text = _json_type(value) if isinstance(value, (list, dict)) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
