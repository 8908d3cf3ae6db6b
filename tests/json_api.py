"""What the test stand-ins for remote JSON APIs share: a quiet handler that replies JSON, and a
server on a free port of 127.0.0.1 in a daemon thread."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any


class JsonHandler(http.server.BaseHTTPRequestHandler):
    """A request handler whose replies are JSON bodies; `state` is set per server by `serve`."""

    state: Any

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(handler: type[JsonHandler], state: Any) -> http.server.ThreadingHTTPServer:
    """Starts `handler` with `state` on a free port of 127.0.0.1 in a daemon thread."""
    bound = type(handler.__name__, (handler,), {"state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), bound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
