"""What a running server says: `textclf models list --server URL`, `rollout status --server`.

Only the server knows whether a version that checks out in the store also loads and answers
(a truncated `saved_model.pb` can be signed); it says so in TF Serving's model status,
`GET /v1/models/<name>`. Standard library only: the command must start in well under a second.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

from serving.auth import TOKEN_ENV

_TIMEOUT_SECONDS = 10
_MAX_ANSWER_BYTES = 1 << 20


class ServerStatusError(RuntimeError):
    """The server could not be asked, or answered something else than a model status."""


def served_versions(server_url: str, model_name: str) -> dict[int, tuple[str, str]]:
    """{version: (state, note)}: `serving` for the versions it answers with, `refused` and the
    server's reason for each it refused (versions it never looked at are absent)."""
    url = f"{server_url.rstrip('/')}/v1/models/{urllib.parse.quote(model_name, safe='')}"
    # 503: nothing loaded, and the body still lists the refusals.
    answer = _get_json(url, accept_status=(503,))
    try:
        return {int(entry["version"]): _state(entry) for entry in answer["model_version_status"]}
    except (KeyError, TypeError, ValueError) as error:
        raise ServerStatusError(f"{url} did not answer a model status ({error}): is it a "
                                "textclf server?") from error


def rollout_window(server_url: str) -> dict:
    """What a server says of the rollout it follows: `GET /rollout` (the admin scope)."""
    answer = _get_json(f"{server_url.rstrip('/')}/rollout")
    if not isinstance(answer, dict) or "window" not in answer:
        raise ServerStatusError(f"{server_url} did not answer a rollout status: is it a "
                                "textclf server?")
    return answer


def _get_json(url: str, accept_status: tuple[int, ...] = ()) -> object:
    token = os.environ.get(TOKEN_ENV)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}
                                     if token else {})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response:
            content = response.read(_MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as error:
        if error.code not in accept_status:
            hint = f": set {TOKEN_ENV}" if error.code in (401, 403) else ""
            raise ServerStatusError(f"{url} answered HTTP {error.code}{hint}") from error
        content = error.read(_MAX_ANSWER_BYTES)
    except (urllib.error.URLError, OSError) as error:
        raise ServerStatusError(f"cannot reach the server at {url}: {error}") from error
    try:
        return json.loads(content)
    except ValueError as error:
        raise ServerStatusError(f"{url} did not answer JSON ({error}): is it a textclf "
                                "server?") from error


def _state(entry: dict) -> tuple[str, str]:
    if entry["state"] == "AVAILABLE":
        return "serving", "answering requests on this server"
    return "refused", f"by the server: {entry['status']['error_message']}"
