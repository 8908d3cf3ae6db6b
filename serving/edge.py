"""The server's edge: who may call and how much they may send, decided on the raw request.

A plain ASGI middleware in front of the routes. It decides on `scope["path"]`, the value the
router dispatches on, and on the raw header bytes (`serving/auth.py`): never on a URL rebuilt
from the Host header (Starlette's `request.url` is, so a crafted Host once made `:predict` look
like a health probe and skip the token), and never on decoded text (a token with a non-ASCII
byte was a TypeError and a 500).

A body is read while it arrives and refused with 413 the moment it passes the limit, so the
server never holds more than the limit of any request, however it is framed (Content-Length or
chunked).
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Optional

import orjson

from serving.auth import Authenticator, Refusal

# Probes must work without the token: Kubernetes does not send one. Only these, only GET/HEAD.
OPEN_PATHS = ("/", "/v2/health/live", "/v2/health/ready")
_OPEN_METHODS = ("GET", "HEAD")
# Methods whose body a route reads; any other body is left to the server, which drops it.
_BODY_METHODS = ("POST", "PUT", "PATCH")
# A body over the limit is still read to its end, and dropped, before the 413 goes out: a client
# that sends it all before reading (Python's urllib, with `Connection: close`) would otherwise
# see the connection reset, not the answer. Past this much more (or when the client waits for
# "100 Continue"), the 413 goes out at once and the connection is closed.
_DRAIN_LIMIT_BYTES = 64 << 20

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

logger = logging.getLogger("textclf.serving")


class Edge:
    """Authentication (when a token or JWT is configured) and the body limit, before `app`."""

    def __init__(self, app: Callable, authenticator: Authenticator, max_body_bytes: int,
                 count_refusal: Callable[[int], None]):
        """`count_refusal(status)` is told of every request refused here (for metrics)."""
        self.app = app
        self.authenticator = authenticator
        self.max_body_bytes = max_body_bytes
        self._count_refusal = count_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            # No route speaks WebSocket; refuse it before anything reads it.
            await send({"type": "websocket.close", "code": 1008})
            return
        if self.authenticator.enabled and not _is_open(scope):
            caller = self.authenticator.check(scope["headers"], scope["path"])
            if isinstance(caller, Refusal):
                logger.warning("%d for %s %s: %s", caller.status, scope["method"],
                               scope["path"][:200], caller.message)
                self._count_refusal(caller.status)
                await respond(send, caller.status, caller.message,
                              [(b"www-authenticate", caller.challenge)])
                return
            # Per request (the server copies its lifespan state into each scope): the audit
            # log's caller.
            scope.setdefault("state", {})["caller"] = caller.identity
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        body = await self._read_body(scope, receive, send)
        if body is not None:
            await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> Optional[bytes]:
        """The whole body, or None once it was refused (413) or the client went away."""
        lengths = [value for name, value in scope["headers"] if name == b"content-length"]
        declared = _declared_length(lengths[0]) if lengths else None
        if declared is not None and declared > self.max_body_bytes:
            # A client waiting for "100 Continue" has sent nothing: no need to read anything.
            expects_continue = any(name == b"expect" and value.lower() == b"100-continue"
                                   for name, value in scope["headers"])
            if expects_continue or declared > _DRAIN_LIMIT_BYTES:
                await self._refuse_too_large(send, f" of {declared} bytes",
                                             close=not expects_continue)
            elif await _drain(receive):
                await self._refuse_too_large(send, f" of {declared} bytes", close=False)
            return None
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                del body[:]
                complete = not message.get("more_body", False) or await _drain(receive)
                await self._refuse_too_large(send, "", close=not complete)
                return None
            if not message.get("more_body", False):
                return bytes(body)

    async def _refuse_too_large(self, send: Send, size: str, close: bool) -> None:
        """413 (`size`: " of N bytes" or ""); `close` when the rest of the body is unread."""
        logger.warning("413 for a request body%s over the %d-byte limit", size,
                       self.max_body_bytes)
        self._count_refusal(413)
        await respond(send, 413, f"request body{size} is over the {self.max_body_bytes}-byte "
                                 "limit (serving.max_body_bytes): send fewer or shorter texts",
                      [(b"connection", b"close")] if close else [])


async def _drain(receive: Receive) -> bool:
    """Reads the rest of a refused body and drops it; False when the client left or it runs
    past `_DRAIN_LIMIT_BYTES` (the connection is then closed after the answer)."""
    drained = 0
    while drained <= _DRAIN_LIMIT_BYTES:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


def _declared_length(value: bytes) -> Optional[int]:
    """Content-Length as a number (a huge one capped: `int` refuses over 4,300 digits)."""
    digits = value.strip().lstrip(b"0") or b"0"
    if not digits.isdigit():
        return None
    return int(digits) if len(digits) <= 19 else 1 << 63


def _is_open(scope: Scope) -> bool:
    # The router matches `scope["path"]` (less `root_path`, which this server leaves empty).
    return scope["method"] in _OPEN_METHODS and scope["path"] in OPEN_PATHS


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then waits as the server's does."""
    delivered = False

    async def replay() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def respond(send: Send, status: int, message: str,
                  headers: Optional[list[tuple[bytes, bytes]]] = None) -> None:
    """Answers `{"error": message}` with `status`."""
    content = orjson.dumps({"error": message})
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(content)).encode()),
        *(headers or [])]})
    await send({"type": "http.response.body", "body": content})
