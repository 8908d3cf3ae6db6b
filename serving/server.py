"""`textclf serve`: KServe's model server over the versioned store, with hot reload.

The HTTP API is KServe's own (its RESTServer and DataPlane): V1, the TF Serving REST shape,
  POST /v1/models/<name>:predict   {"instances": ["text", ...]}  (or {"text": .., "text_pair": ..})
and V2, the Open Inference Protocol,
  POST /v2/models/<name>/infer     {"inputs": [{"name": "text", "datatype": "BYTES", ...}]}
with liveness (`/`, /v2/health/live) and readiness (/v1/models/<name>, /v2/health/ready).
KServe's `ModelServer.start` always binds 0.0.0.0 and offers no middleware hook, so the same
application is built here and run under uvicorn on the configured host, with bearer-token auth
and request limits in front of it.

The newest good version is loaded at start; a poller swaps in a newer (or rolled-back) version
once it has loaded and answered a warm-up call, so no request ever meets a half-loaded model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import os
from typing import Any, Optional, Sequence

import numpy as np
import tensorflow as tf
# Registers the WordPiece, case-folding and normalisation ops that fine-tuned models' transform
# graphs call; loading such a SavedModel fails without them.
import tensorflow_text  # noqa: F401  pylint: disable=unused-import
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve import Model
from kserve.errors import InvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.server import RESTServer

from modules import features
from modules.export import TEXT_INPUT_NAMES
from pipeline.config import ServingConfig
from serving import signing
from serving.batching import MicroBatcher
from serving.store import ModelStore, Version, verify_version

TOKEN_ENV = "TEXTCLF_SERVING_TOKEN"
# Probes must work without the token: Kubernetes does not send one.
OPEN_PATHS = ("/", "/v2/health/live", "/v2/health/ready")
# Content types of request bodies that are read as JSON: none given, and what clients such as
# `curl -d` send by default.
_READ_AS_JSON = ("", "application/x-www-form-urlencoded", "text/plain")

logger = logging.getLogger("textclf.serving")


@dataclasses.dataclass(frozen=True)
class LoadedVersion:
    """A version in memory: its number and its `predict_text` signature."""

    number: int
    predict_text: Any
    text_inputs: tuple[str, ...]
    # The signature holds its variables only while the loaded object lives.
    saved_model: Any


class TextClassifier(Model):
    """Answers V1 and V2 requests with the store's newest good version, batched."""

    def __init__(self, name: str, store: ModelStore, settings: ServingConfig,
                 verify_key: Optional[signing.VerifyKey] = None):
        super().__init__(name)
        self.store = store
        self.settings = settings
        self.verify_key = verify_key
        self.loaded: Optional[LoadedVersion] = None
        self._refused: set[int] = set()
        self._batcher = MicroBatcher(self._predict_batch, settings.max_batch_size,
                                     settings.max_batch_wait_ms / 1000,
                                     settings.max_concurrent_batches)

    def load(self) -> bool:
        self.refresh()
        return self.ready

    def refresh(self) -> bool:
        """Serves the newest good version if it is not the one loaded; True when it swapped."""
        for candidate in self.store.serving_candidates():
            if self.loaded and candidate.number == self.loaded.number:
                return False
            if candidate.number in self._refused:
                continue
            try:
                verify_version(candidate, self.verify_key)
                loaded = _load(candidate)
            except Exception as error:  # pylint: disable=broad-except
                # Whatever breaks a candidate (a refused signature, a graph that does not load,
                # a warm-up call that fails), the version in service keeps serving.
                self._refused.add(candidate.number)
                logger.error("refusing version %d of %s: %s; still serving %s", candidate.number,
                             self.name, error,
                             f"version {self.loaded.number}" if self.loaded else "nothing")
                continue
            previous = self.loaded
            self.loaded = loaded
            self.ready = True
            logger.info("serving version %d of %s%s", loaded.number, self.name,
                        f" (was {previous.number})" if previous else "")
            return True
        if self.loaded is None:
            logger.warning("no servable version of %s under %s yet; not ready", self.name,
                           self.store.model_dir)
        return False

    async def poll(self) -> None:
        """Looks for a newer or rolled-back version every `poll_seconds`, forever."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            try:
                await loop.run_in_executor(None, self.refresh)
            except Exception:  # pylint: disable=broad-except
                # A store that cannot be read now may be readable at the next poll.
                logger.exception("looking for new versions of %s failed", self.name)

    async def predict(self, payload: dict | InferRequest,
                      headers: Optional[dict[str, str]] = None) -> dict | InferResponse:
        v2 = isinstance(payload, InferRequest)
        rows = _v2_rows(payload) if v2 else _v1_rows(payload)
        self._check_limits(rows)
        results, version = await self._batcher.submit(rows)
        if not v2:
            return {"predictions": results, "model_version": str(version)}
        probabilities = np.asarray([row[features.PROBABILITIES] for row in results], np.float32)
        return InferResponse(
            response_id=payload.id or "", model_name=self.name, model_version=str(version),
            infer_outputs=[
                InferOutput(features.PROBABILITIES, list(probabilities.shape), "FP32",
                            probabilities.flatten().tolist()),
                InferOutput(features.PREDICTED_LABEL, [len(results)], "BYTES",
                            [row[features.PREDICTED_LABEL] for row in results]),
                InferOutput(features.PREDICTED_CLASS_ID, [len(results)], "INT64",
                            [row[features.PREDICTED_CLASS_ID] for row in results]),
            ])

    def _check_limits(self, rows: Sequence[tuple[str, ...]]) -> None:
        if not rows:
            raise InvalidInput("no instances: send at least one text")
        if len(rows) > self.settings.max_instances:
            raise InvalidInput(f"{len(rows)} instances in one request; the limit is "
                               f"{self.settings.max_instances} (serving.max_instances): split it")
        expected = len(self.loaded.text_inputs) if self.loaded else 1
        for index, row in enumerate(rows):
            if len(row) != expected:
                raise InvalidInput(f"instance {index} has {len(row)} text(s); this model takes "
                                   f"{expected} ({', '.join(TEXT_INPUT_NAMES[:expected])})")
            longest = max(len(text) for text in row)
            if longest > self.settings.max_text_chars:
                raise InvalidInput(f"instance {index} has {longest} characters; the limit is "
                                   f"{self.settings.max_text_chars} (serving.max_text_chars)")

    def _predict_batch(self, rows: Sequence[tuple[str, ...]]) -> tuple[list[dict], int]:
        loaded = self.loaded  # one version answers the whole batch, even during a swap
        outputs = loaded.predict_text(**{
            name: tf.constant([row[index] for row in rows])
            for index, name in enumerate(loaded.text_inputs)})
        probabilities = outputs[features.PROBABILITIES].numpy().tolist()
        labels = [label.decode() for label in outputs[features.PREDICTED_LABEL].numpy()]
        class_ids = outputs[features.PREDICTED_CLASS_ID].numpy().tolist()
        return [{features.PREDICTED_LABEL: label, features.PROBABILITIES: probability,
                 features.PREDICTED_CLASS_ID: class_id}
                for label, probability, class_id in zip(labels, probabilities, class_ids)
                ], loaded.number


def _load(version: Version) -> LoadedVersion:
    """Loads a SavedModel and calls it once, so its first real request is not the slow one."""
    saved_model = tf.saved_model.load(version.path)
    predict_text = saved_model.signatures[features.TEXT_SIGNATURE]
    text_inputs = tuple(name for name in TEXT_INPUT_NAMES
                        if name in predict_text.structured_input_signature[1])
    predict_text(**{name: tf.constant(["warm-up"]) for name in text_inputs})
    return LoadedVersion(version.number, predict_text, text_inputs, saved_model)


def _v1_rows(payload: Any) -> list[tuple[str, ...]]:
    if not isinstance(payload, dict) or "instances" not in payload:
        raise InvalidInput('expected a JSON object {"instances": ["text", ...]}')
    rows = []
    for index, instance in enumerate(payload["instances"]):
        if isinstance(instance, str):
            rows.append((instance,))
        elif isinstance(instance, dict) and all(
                isinstance(instance.get(name), str) for name in instance) and "text" in instance:
            rows.append(tuple(instance[name] for name in TEXT_INPUT_NAMES if name in instance))
        else:
            raise InvalidInput(f"instance {index} must be a string, or an object with string "
                               f"fields text (and text_pair), got {type(instance).__name__}")
    return rows


def _v2_rows(request: InferRequest) -> list[tuple[str, ...]]:
    columns = {}
    for tensor in request.inputs:
        if tensor.name not in TEXT_INPUT_NAMES:
            raise InvalidInput(f"unknown input {tensor.name!r}; this model takes "
                               f"{', '.join(TEXT_INPUT_NAMES)}")
        if tensor.datatype != "BYTES" or not all(isinstance(value, str) for value in tensor.data):
            raise InvalidInput(f"input {tensor.name!r} must be BYTES holding strings, "
                               f"got {tensor.datatype}")
        columns[tensor.name] = list(tensor.data)
    if "text" not in columns:
        raise InvalidInput('the request needs an input named "text"')
    if len({len(values) for values in columns.values()}) > 1:
        raise InvalidInput("text and text_pair must hold the same number of values")
    return list(zip(*(columns[name] for name in TEXT_INPUT_NAMES if name in columns)))


def build_app(model: TextClassifier, token: Optional[str]) -> FastAPI:
    """KServe's REST application for `model`, behind auth and a request size limit."""
    repository = ModelRepository()
    repository.update(model)
    app = RESTServer(DataPlane(model_registry=repository),
                     ModelRepositoryExtension(model_registry=repository)).create_application()
    settings = model.settings
    # Every text at its limit, JSON-escaped at worst 6 bytes per character, plus the framing.
    max_body_bytes = settings.max_instances * (settings.max_text_chars * 6 + 64) + 4096

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if token and request.url.path not in OPEN_PATHS:
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(presented, token):
                return JSONResponse({"error": "missing or wrong bearer token: send "
                                              "'Authorization: Bearer <token>'"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
        if request.method == "POST" and request.headers.get("content-type", "").split(";")[0] \
                in _READ_AS_JSON:
            # TF Serving reads the body as JSON whatever it is labelled, and its users' habits
            # follow (`curl -d` labels it a form); KServe would hand such a body on undecoded.
            request.scope["headers"] = [
                (name, value) for name, value in request.scope["headers"]
                if name != b"content-type"] + [(b"content-type", b"application/json")]
        length = request.headers.get("content-length", "0")
        if length.isdigit() and int(length) > max_body_bytes:
            return JSONResponse({"error": f"request body of {length} bytes is over the "
                                          f"{max_body_bytes}-byte limit (serving.max_instances "
                                          "x serving.max_text_chars)"}, status_code=400)
        return await call_next(request)

    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI answers 422; a malformed body is a client error like any other: 400.
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}"
                             for item in error.errors()[:3])
        logger.warning("400 for %s: %s", request.url.path, problems)
        return JSONResponse({"error": f"malformed request: {problems}"}, status_code=400)

    async def invalid_input(request: Request, error: InvalidInput) -> JSONResponse:
        # KServe's own handler logs a traceback per bad request; one line says enough.
        logger.warning("400 for %s: %s", request.url.path, error.reason)
        return JSONResponse({"error": error.reason}, status_code=400)

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(InvalidInput, invalid_input)

    @app.on_event("startup")
    async def start_polling() -> None:
        app.state.poller = asyncio.get_running_loop().create_task(model.poll())

    return app


def serve(store_root: str, model_name: str, settings: ServingConfig) -> None:
    """Loads the newest good version and serves it until SIGINT/SIGTERM."""
    verify_key = signing.load_verify_key(settings.verify_key_file)
    model = TextClassifier(model_name, ModelStore(store_root, model_name), settings, verify_key)
    model.load()
    token = os.environ.get(TOKEN_ENV) or None
    logger.info("serving %s from %s on http://%s:%d (batching %s, auth %s, signatures %s)",
                model_name, model.store.model_dir, settings.host, settings.port,
                f"up to {settings.max_batch_size} texts / {settings.max_batch_wait_ms} ms, "
                f"{settings.max_concurrent_batches} at once"
                if settings.max_batch_size > 1 else "off",
                "on" if token else "off", "required" if verify_key else "not required")
    uvicorn.run(build_app(model, token), host=settings.host, port=settings.port,
                log_level="info", access_log=False)
