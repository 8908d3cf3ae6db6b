"""A webhook receiver on 127.0.0.1 that records what it is sent (the Slack side of the tests)."""

from __future__ import annotations

import json
from typing import Any

from tests.json_api import JsonHandler, serve


class WebhookReceiver:
    """Records every POSTed JSON body; answers the statuses queued in `statuses`, then 200."""

    def __init__(self):
        self.payloads: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self._server = serve(_WebhookHandler, self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/textclf"

    def events(self) -> list[str]:
        """The `event` field of each payload received, in order."""
        return [fields(payload)["event"] for payload in self.payloads]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def fields(payload: dict[str, Any]) -> dict[str, str]:
    """A Slack attachment's fields as title -> value."""
    return {field["title"]: field["value"] for field in payload["attachments"][0]["fields"]}


class _WebhookHandler(JsonHandler):
    state: WebhookReceiver

    def do_POST(self) -> None:  # pylint: disable=invalid-name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.state.payloads.append(body)
        status = self.state.statuses.pop(0) if self.state.statuses else 200
        self._reply(status, {"ok": status == 200})
