"""`textclf serve`: KServe's V1/V2 protocols over the versioned store, with hot reload.

Every path the server answers is in `_routes` below; anything else is 404, a known path with
another method 405. Prediction, V1 (TF Serving's REST API) and V2 (the Open Inference Protocol):
  POST /v1/models/<name>[/versions/<v>]:predict  {"instances": ["text", ...]}
  POST /v2/models/<name>[/versions/<v>]/infer    {"inputs": [{"name": "text", ...}]}
Status and metadata: GET /v1/models/<name>[/versions/<v>] (TF Serving's model status),
/v2/models/<name>[/versions/<v>], /v2/models/<name>[/versions/<v>]/ready, /v2, /v2/models,
/v1/models, /metrics. Probes, open without the token: `/`, /v2/health/live (alive),
/v2/health/ready (a version is loaded: a prediction would be answered).

KServe (`kserve==0.13.1`) provides the model interface, the data plane behind the status and
metadata paths and the V2 response type. Four of its parts are not used, each for a reason: its
metrics handler, whose global registry only its bypassed handlers feed (`serving/metrics.py`
has the server's own), its request decoding (see `serving/protocol.py`), its
`/v2/health/ready`, which answers ready even with no version loaded, and its model repository
API (`/v2/repository/models/<name>/unload`), which let any caller unload the model for good
while the probes said healthy: a prediction port has no place for it. KServe's
`ModelServer.start` also always binds 0.0.0.0 and has no middleware hook, so the application is
built here and run under uvicorn on the configured host, behind `serving/edge.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from typing import Any, AsyncIterator, Callable, Optional

import orjson
import uvicorn
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.config import ServingConfig
from serving import protocol, rollout, signing
from serving.audit import AuditLog, request_record
from serving.auth import Authenticator
from serving.edge import Edge
from serving.metrics import ServerMetrics
from serving.model import TextClassifier
from serving.protocol import RequestError
from serving.store import ModelStore

VERSION_HEADER = "X-Model-Version"
# Echoed on every prediction answer and kept in the audit log; the client's when it is sane.
REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

logger = logging.getLogger("textclf.serving")


class _ModelNameConvertor(Convertor):
    """A model name in a path: no "/" and no ":", so `<name>:predict` is never a name."""

    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _VersionConvertor(Convertor):
    regex = "[0-9]{1,19}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("model_name", _ModelNameConvertor())
register_url_convertor("version", _VersionConvertor())


def build_app(model: TextClassifier, authenticator: Authenticator) -> Edge:
    """The routes of `model` behind the edge (auth and the body limit)."""
    settings, metrics = model.settings, model.metrics
    limits = protocol.Limits(settings.max_instances, settings.max_text_chars,
                             settings.body_limit_bytes())
    repository = ModelRepository()
    repository.update(model)
    dataplane = DataPlane(model_registry=repository)

    def check_name(request: Request) -> None:
        if request.path_params["model_name"] != model.name:
            raise ModelNotFound(request.path_params["model_name"])

    audit = AuditLog(settings.audit) if settings.audit.path else None
    metrics.watch(
        model.name, served_version=lambda: model.stable.number if model.stable else 0,
        loaded_versions=lambda: sum(loaded is not None
                                    for loaded in (model.stable, model.candidate)),
        queue_depth=lambda: model.queue_depth,
        rollout_step=lambda: model.rollout.step + 1 if model.candidate_share else 0,
        rollout_share=lambda: model.candidate_share,
        audit_lost=lambda: audit.lost_records if audit else 0)

    async def answer_prediction(request: Request, parse: Callable, answer: Callable,
                                outcome: dict[str, Any]) -> Response:
        check_name(request)
        if audit is not None and audit.refusing:
            raise RequestError(503, f"the audit log cannot be written ({audit.problem}); "
                                    "predictions are refused until it can "
                                    "(serving.audit.on_failure=fail_closed)")
        version = request.path_params.get("version")
        loaded = model.serving_version(version)
        protocol.check_media_type(request.headers.getlist("content-type"))
        text_request = parse(protocol.read_json(await request.body()), loaded.text_inputs,
                             limits)
        outcome["rows"] = text_request.rows
        route = model.route(rollout.request_key(outcome["client_request_id"], text_request.rows),
                            version)
        outcome.update(route=route, version=route.version.number)
        results = await route.version.predict(text_request.rows)
        outcome["results"] = results
        if route.shadow is not None:
            model.shadow(route, text_request.rows, results, outcome["protocol"])
        return Response(answer(text_request, results, route.version.number),
                        media_type="application/json",
                        headers={VERSION_HEADER: str(route.version.number)})

    async def recorded(request: Request, request_id: str, protocol_name: str, status: int,
                       started: float, outcome: dict[str, Any]) -> bool:
        """Audits the request; False when fail_closed and its record could not be written."""
        if audit is None:
            return True
        client = f"{request.client.host}:{request.client.port}" if request.client else ""
        written = audit.record(request_record(
            request_id, request.scope.get("state", {}).get("caller", "anonymous"), client,
            model.name, outcome.get("version"), _route_name(outcome), protocol_name, status,
            time.perf_counter() - started, outcome.get("rows"), outcome.get("results"),
            settings.audit.include_text))
        return settings.audit.on_failure == "fail_open" or await asyncio.wrap_future(written)

    async def predict(request: Request, parse: Callable, answer: Callable,
                      protocol_name: str) -> Response:
        started = time.perf_counter()
        presented = request.headers.get(REQUEST_ID_HEADER)
        request_id = _request_id(presented)
        outcome: dict[str, Any] = {"protocol": protocol_name, "client_request_id":
                                   request_id if request_id == presented else None}
        try:
            response = await answer_prediction(request, parse, answer, outcome)
        except tuple(_ERROR_HANDLERS) as error:
            handler = next(handler for kind, handler in _ERROR_HANDLERS.items()
                           if isinstance(error, kind))
            response = await handler(request, error)
        except Exception:  # pylint: disable=broad-except
            # The model failed on this request's texts (the batcher confined it: the others in
            # its batch were answered), or a bug: still one answer, one record, one metric.
            logger.exception("a prediction request of %s text(s) failed",
                             len(outcome.get("rows", ())) or "?")
            response = _error(500, "the model failed on this request (the server log has the "
                                   "error)")
        if not await recorded(request, request_id, protocol_name, response.status_code,
                              started, outcome) and response.status_code == 200:
            reason = audit.problem or "its record was lost"
            response = _error(503, f"the audit log could not record this request ({reason}); "
                                   "it is not answered (serving.audit.on_failure=fail_closed): "
                                   "retry")
        response.headers[REQUEST_ID_HEADER] = request_id
        if "version" in outcome:  # a failure too says which version it met
            response.headers[VERSION_HEADER] = str(outcome["version"])
        version = str(outcome.get("version", "none"))
        latency = time.perf_counter() - started
        metrics.requests.labels(model.name, version, _route_name(outcome), protocol_name,
                                str(response.status_code)).inc()
        metrics.latency.labels(model.name, version).observe(latency)
        if "route" in outcome:
            model.observe(outcome["route"], response.status_code, latency,
                          outcome.get("results"))
        return response

    async def v1_predict(request: Request) -> Response:
        return await predict(request, protocol.parse_v1, protocol.v1_answer, "v1")

    async def v2_infer(request: Request) -> Response:
        return await predict(request, protocol.parse_v2, lambda text_request, results, version:
                             protocol.v2_answer(text_request, results, version, model.name),
                             "v2")

    async def v1_status(request: Request) -> Response:
        """KServe's {"name", "ready"} and TF Serving's model_version_status, 503 when not ready."""
        check_name(request)
        status = model.version_status()
        version = request.path_params.get("version")
        if version is not None:
            status = [entry for entry in status if entry["version"] == str(version)]
            if not status:
                raise RequestError(404, f"version {version} of {model.name} is neither served "
                                        "nor refused by this server")
        ready = any(entry["state"] == "AVAILABLE" for entry in status)
        return _json({"name": model.name, "ready": ready, "model_version_status": status},
                     200 if ready else 503)

    async def rollout_status(_: Request) -> Response:
        return _json(model.rollout_status())

    async def live(_: Request) -> Response:
        return _json(await dataplane.live())

    async def live_v2(_: Request) -> Response:
        return _json({"live": True})

    async def ready_v2(_: Request) -> Response:
        # KServe answers ready unconditionally; a probe must see whether predictions would work.
        return _json({"ready": model.ready}, 200 if model.ready else 503)

    async def server_metadata(_: Request) -> Response:
        # KServe lists its model repository extension, which this server does not offer.
        return _json({**dataplane.metadata(), "extensions": []})

    async def list_models(_: Request) -> Response:
        return _json({"models": list(dataplane.model_registry.get_models())})

    async def model_metadata(request: Request) -> Response:
        check_name(request)
        loaded = model.serving_version(request.path_params.get("version"))
        metadata = await dataplane.model_metadata(model.name)
        return _json({**metadata, "versions": [str(loaded.number)],
                      "platform": "tensorflow_savedmodel"})

    async def model_ready(request: Request) -> Response:
        check_name(request)
        loaded = model.serving_version(request.path_params.get("version"))
        return _json({"name": model.name, "ready": dataplane.model_ready(model.name),
                      "version": str(loaded.number)})

    model_path = "/{model_name:model_name}"
    version_path = "/versions/{version:version}"
    routes = [
        Route("/", live, methods=["GET"]),
        Route("/metrics", metrics.handler, methods=["GET"]),
        Route("/rollout", rollout_status, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route(f"/v1/models{model_path}:predict", v1_predict, methods=["POST"]),
        Route(f"/v1/models{model_path}{version_path}:predict", v1_predict, methods=["POST"]),
        Route(f"/v1/models{model_path}", v1_status, methods=["GET"]),
        Route(f"/v1/models{model_path}{version_path}", v1_status, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live_v2, methods=["GET"]),
        Route("/v2/health/ready", ready_v2, methods=["GET"]),
        Route("/v2/models", list_models, methods=["GET"]),
        Route(f"/v2/models{model_path}", model_metadata, methods=["GET"]),
        Route(f"/v2/models{model_path}{version_path}", model_metadata, methods=["GET"]),
        Route(f"/v2/models{model_path}/ready", model_ready, methods=["GET"]),
        Route(f"/v2/models{model_path}{version_path}/ready", model_ready, methods=["GET"]),
        Route(f"/v2/models{model_path}/infer", v2_infer, methods=["POST"]),
        Route(f"/v2/models{model_path}{version_path}/infer", v2_infer, methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def polling(_: Starlette) -> AsyncIterator[None]:
        poller = asyncio.get_running_loop().create_task(model.poll())
        yield
        poller.cancel()
        if audit is not None:
            audit.close()

    app = Starlette(routes=routes, lifespan=polling,
                    exception_handlers={HTTPException: _http_error, **_ERROR_HANDLERS})
    return Edge(app, authenticator, limits.max_body_bytes,
                lambda status: metrics.refused_requests.labels(str(status)).inc())


def _route_name(outcome: dict[str, Any]) -> str:
    """stable or canary: which of the versions a rollout serves answered (stable when the
    request failed before one was chosen)."""
    route = outcome.get("route")
    return route.route if route is not None else rollout.STABLE


def _request_id(presented: Optional[str]) -> str:
    """The client's X-Request-Id when it is a plain token, else a new one."""
    if presented and _REQUEST_ID.fullmatch(presented):
        return presented
    return uuid.uuid4().hex


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def _error(status: int, message: str, headers: Optional[dict[str, str]] = None) -> Response:
    response = _json({"error": message}, status)
    response.headers.update(headers or {})
    return response


async def _http_error(request: Request, error: HTTPException) -> Response:
    # The router's 404 and 405 (with its Allow header), in the server's one error shape.
    # The raw path, never `request.url`: Starlette rebuilds that from the Host header, which a
    # client can make unparsable (a 500) or misleading.
    path = request.scope["path"][:200]
    message = {404: f"no such path {path}: see README's Serving section",
               405: f"{request.method} is not allowed on {path}"}.get(
                   error.status_code, str(error.detail))
    return _error(error.status_code, message, error.headers)


async def _request_error(request: Request, error: RequestError) -> Response:
    logger.warning("%d for %s: %s", error.status, request.scope["path"][:200], error.message)
    return _error(error.status, error.message)


async def _invalid_input(request: Request, error: InvalidInput) -> Response:
    logger.warning("400 for %s: %s", request.scope["path"][:200], error.reason)
    return _error(400, error.reason)


async def _not_found(_: Request, error: ModelNotFound) -> Response:
    return _error(404, str(error))


async def _not_ready(_: Request, error: ModelNotReady) -> Response:
    return _error(503, str(error))


# The errors a route raises on purpose, each answered in the one error shape.
_ERROR_HANDLERS: dict[type, Callable] = {RequestError: _request_error,
                                         InvalidInput: _invalid_input,
                                         ModelNotFound: _not_found, ModelNotReady: _not_ready}


def serve(store_root: str, model_name: str, settings: ServingConfig,
          authenticator: Authenticator, tls_options: dict[str, Any],
          notify: Callable[[str, str, dict], Any] = lambda *_: None) -> None:
    """Loads the newest good version (if any) and serves until SIGINT/SIGTERM.

    `notify(event, summary, details)` is told of a rollout's automatic rollbacks and
    promotions."""
    verify_key = signing.load_verify_key(settings.verify_key_file)
    model = TextClassifier(model_name, ModelStore(store_root, model_name), settings,
                           ServerMetrics(), verify_key, notify)
    model.load()
    auth = "off"
    if authenticator.enabled:
        auth = f"JWT from {settings.jwt.issuer}" if settings.jwt.issuer else "static token"
    logger.info("serving %s from %s on %s://%s:%d (batching %s, auth %s, signatures %s, "
                "body limit %d bytes, rollout %s)",
                model_name, model.store.model_dir, "https" if tls_options else "http",
                settings.host, settings.port,
                f"up to {settings.max_batch_size} texts / {settings.max_batch_wait_ms} ms, "
                f"{settings.max_concurrent_batches} at once"
                if settings.max_batch_size > 1 else "off",
                auth, "required" if verify_key else "not required", settings.body_limit_bytes(),
                settings.rollout.mode if settings.rollout.mode == "immediate" else
                f"{settings.rollout.mode} over steps {settings.rollout.steps} %")
    # httptools, not h11: the edge's 413 behaviour is tested with it. No WebSocket.
    uvicorn.run(build_app(model, authenticator), host=settings.host, port=settings.port,
                http="httptools", ws="none", lifespan="on", log_level="info", access_log=False,
                **tls_options)
