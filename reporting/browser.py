"""Headless Chromium over the DevTools protocol: open a page, collect what went wrong, screenshot.

`chromium --headless --screenshot` alone cannot say whether a page logged errors or failed to
load something. Driving the browser through its DevTools protocol can: console errors, uncaught
exceptions and failed requests are events, and a script can ask the rendered page what it holds
(how many charts, how large). Used by the report's browser test and by `reporting.screenshot`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from typing import Any, Optional

import websocket

# Flags for a machine without a display or network (and as root, without a sandbox); the
# background-networking ones keep Chromium from calling Google's services at every start.
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--hide-scrollbars", "--remote-debugging-port=0")
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or the page did not load in time."""


@dataclasses.dataclass
class PageResult:
    """What happened while the page loaded."""

    console_errors: list[str]
    exceptions: list[str]
    failed_requests: list[str]
    # What `evaluate` returned (a JSON value), None when nothing was evaluated.
    evaluated: Any = None
    screenshot_png: Optional[bytes] = None

    @property
    def errors(self) -> list[str]:
        return self.console_errors + self.exceptions + self.failed_requests


def chromium_path() -> str:
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError("no Chromium found (looked for chromium, chromium-browser, google-chrome):"
                       " `make setup` installs Debian's chromium, or `apt-get install chromium`")


def open_page(url: str, evaluate: str = "", screenshot: bool = False, width: int = 1200,
              timeout: float = 60.0) -> PageResult:
    """Loads `url` in a fresh headless Chromium and reports its errors.

    Args:
      evaluate: a JavaScript expression run once the page has loaded; its JSON value is returned.
      screenshot: also capture the whole page (not just the window) as PNG.
    """
    # Chromium's helper processes may still write to the profile for a moment after it exits.
    with tempfile.TemporaryDirectory(prefix="textclf-chromium-",
                                     ignore_cleanup_errors=True) as profile:
        # Its own process group, so that stopping it stops its renderer and helpers too.
        process = subprocess.Popen(
            [chromium_path(), *_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},900",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        try:
            port = _devtools_port(pathlib.Path(profile), process, timeout)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
                page = next(target for target in json.load(reply) if target["type"] == "page")
            session = _Session(page["webSocketDebuggerUrl"], timeout)
            try:
                return session.load(url, evaluate, screenshot, width)
            finally:
                session.close()
        finally:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Stops Chromium and every process it started (SIGTERM, then SIGKILL after 10 s)."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signal_number)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue


def _devtools_port(profile: pathlib.Path, process: subprocess.Popen, timeout: float) -> int:
    """The port Chromium chose: it writes it to DevToolsActivePort in its profile."""
    deadline = time.monotonic() + timeout
    marker = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrowserError(f"Chromium exited at start with code {process.returncode}")
        if marker.is_file() and marker.read_text().strip():
            return int(marker.read_text().splitlines()[0])
        time.sleep(0.1)
    raise BrowserError(f"Chromium did not open its DevTools port within {timeout:.0f} s")


class _Session:
    """One page's DevTools connection: commands in order, events collected on the way."""

    def __init__(self, websocket_url: str, timeout: float):
        self._socket = websocket.create_connection(websocket_url, timeout=timeout,
                                                   suppress_origin=True)
        self._timeout = timeout
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def load(self, url: str, evaluate: str, screenshot: bool, width: int) -> PageResult:
        for domain in ("Runtime", "Log", "Network", "Page"):
            self._command(f"{domain}.enable")
        self._command("Page.navigate", url=url)
        self._wait_for_event("Page.loadEventFired")
        result = PageResult(console_errors=[], exceptions=[], failed_requests=[])
        if evaluate:
            reply = self._command("Runtime.evaluate", expression=evaluate, returnByValue=True)
            if "exceptionDetails" in reply:
                result.exceptions.append(f"evaluate: {reply['exceptionDetails'].get('text')}")
            result.evaluated = reply.get("result", {}).get("value")
        if screenshot:
            height = self._command("Runtime.evaluate", returnByValue=True,
                                   expression="document.documentElement.scrollHeight")
            self._command("Emulation.setDeviceMetricsOverride", width=width,
                          height=int(height["result"]["value"]), deviceScaleFactor=1,
                          mobile=False)
            shot = self._command("Page.captureScreenshot", format="png")
            result.screenshot_png = base64.b64decode(shot["data"])
        for event in self._events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                result.exceptions.append(details.get("exception", {}).get("description")
                                         or details.get("text", "exception"))
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in ("error",
                                                                                      "assert"):
                result.console_errors.append(" ".join(
                    str(argument.get("value", argument.get("description", "")))
                    for argument in params.get("args", [])))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                result.console_errors.append(params["entry"]["text"])
            elif event["method"] == "Network.loadingFailed":
                result.failed_requests.append(f"{params.get('errorText')} "
                                              f"(request {params.get('requestId')})")
        return result

    def close(self) -> None:
        self._socket.close()

    def _command(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})

    def _wait_for_event(self, method: str) -> None:
        if any(event["method"] == method for event in self._events):
            return
        while self._receive().get("method") != method:
            pass

    def _receive(self) -> dict[str, Any]:
        try:
            message = json.loads(self._socket.recv())
        except websocket.WebSocketTimeoutException as error:
            raise BrowserError(f"Chromium did not answer within {self._timeout:.0f} s") from error
        if "method" in message:
            self._events.append(message)
        return message
