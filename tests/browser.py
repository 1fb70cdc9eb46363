"""Headless Chromium for the tests that hand an output to the browser's own parsers.

``find_chromium`` skips the calling test where no Chromium is installed (CI installs
Debian's). ``DevToolsPipe`` drives a headless Chromium over the Chrome DevTools Protocol
on a pipe (``--remote-debugging-pipe``: file descriptors 3 and 4, NUL-terminated JSON), so
no port, websocket library or network is involved.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

__all__ = ["DevToolsPipe", "find_chromium"]


def find_chromium() -> str:
    """The Chromium executable; skips the test when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no Chromium (Debian: apt-get install chromium)")


def _child_fds(to_browser: int, from_browser: int) -> None:
    """In the child: the browser reads commands on fd 3 and writes replies on fd 4."""
    high_in, high_out = os.dup(to_browser), os.dup(from_browser)
    os.dup2(high_in, 3)
    os.dup2(high_out, 4)


class DevToolsPipe:
    """A headless Chromium with one page, evaluated in over the DevTools protocol."""

    def __init__(self, profile: Path, timeout: float = 120.0) -> None:
        cmd_r, self._cmd_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        self._proc = subprocess.Popen(
            [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--disable-background-networking", "--disable-sync",
             "--disable-component-update", f"--user-data-dir={profile}",
             "--remote-debugging-pipe", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(3, 4),
            preexec_fn=lambda: _child_fds(cmd_r, reply_w))
        os.close(cmd_r)
        os.close(reply_w)
        self._timeout = timeout
        self._next = 0
        self._buffer = b""
        self._events: list[str] = []
        target = self.call("Target.getTargets")["targetInfos"]
        page = next(t["targetId"] for t in target if t["type"] == "page")
        self._session = self.call("Target.attachToTarget", targetId=page,
                                  flatten=True)["sessionId"]

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command (to the page when ``session``) and return its result."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply["result"])
            if "method" in reply:
                self._events.append(reply["method"])

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._reply_r], [], [], self._timeout)
            if not ready:
                raise TimeoutError(f"no reply from Chromium in {self._timeout:g} s")
            chunk = os.read(self._reply_r, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(line))

    def navigate(self, url: str) -> None:
        """Load ``url`` in the page and wait until it has loaded."""
        self.call("Page.enable", session=True)
        self._events.clear()
        self.call("Page.navigate", session=True, url=url)
        while "Page.loadEventFired" not in self._events:
            self._events.append(str(self._read().get("method", "")))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited); raises
        RuntimeError with the exception's text when it throws."""
        result = self.call("Runtime.evaluate", session=True, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"].get("exception", {})
                               .get("description", result["exceptionDetails"]["text"]))
        return result["result"].get("value")

    def close(self) -> None:
        """Stop the browser and close the pipe."""
        self._proc.kill()
        self._proc.wait(timeout=self._timeout)
        os.close(self._cmd_w)
        os.close(self._reply_r)

    def __enter__(self) -> DevToolsPipe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
