"""Open a page in headless Chromium and report what a user would see go wrong.

    python tests/browser.py outputs/train/<date>/<time>/report/index.html shot.png

A tiny client of the Chrome DevTools protocol over --remote-debugging-pipe (file descriptors 3
and 4, NUL-terminated JSON messages): no browser download, no extra package, only Debian's
chromium (`make test` installs it). It collects console errors, uncaught exceptions and
failed loads, asks the page for every <img>'s naturalWidth, and saves a full-page screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

IMAGES_JS = """JSON.stringify(Array.from(document.images).map(
    i => ({src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth})))"""


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


@dataclass
class PageCheck:
    images: list[dict] = field(default_factory=list)  # {src, complete, width} per <img>
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    title: str = ""


class _Pipe:
    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int):
        self.proc, self.out, self.inp = proc, to_browser, from_browser
        self.buffer, self.next_id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if event.get("method") == method:
                    return event
            seen = len(self.events)
            self.events.append(self._read())
        raise TimeoutError(f"no {method} within {timeout} s")

    def _read(self) -> dict:
        while b"\0" not in self.buffer:
            chunk = os.read(self.inp, 1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)


def check_page(page: Path, screenshot: Path, width: int = 1280) -> PageCheck:
    """Load `page` (file://), wait for its load event, return its images and errors."""
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (make test installs it)")
    commands_r, commands_w = os.pipe()  # we write, chromium reads on its fd 3
    replies_r, replies_w = os.pipe()  # chromium writes on its fd 4, we read
    profile = tempfile.mkdtemp(prefix="dlrecipe-chromium-")

    def _fds() -> None:  # in the child: the pipe ends at the fds the protocol expects
        # via fresh copies, since a pipe end may already sit on fd 3 or 4 (and dup2 onto
        # itself would keep its close-on-exec flag)
        read_end, write_end = os.dup(commands_r), os.dup(replies_w)
        os.dup2(read_end, 3)
        os.dup2(write_end, 4)

    args = [binary, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
            "--disable-dev-shm-usage", "about:blank"]  # fmt: skip
    proc = subprocess.Popen(args, preexec_fn=_fds, close_fds=False,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    os.close(commands_r)
    os.close(replies_w)
    pipe = _Pipe(proc, commands_w, replies_r)
    result = PageCheck()
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)  # fmt: skip
        pipe.send("Page.navigate", {"url": page.resolve().as_uri()}, session)
        pipe.wait_for("Page.loadEventFired")
        evaluated = pipe.send("Runtime.evaluate", {"expression": IMAGES_JS, "returnByValue": True}, session)  # fmt: skip
        result.images = json.loads(evaluated["result"]["value"])
        result.title = pipe.send("Runtime.evaluate", {"expression": "document.title", "returnByValue": True}, session)["result"]["value"]  # fmt: skip
        size = pipe.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                         "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}, session)  # fmt: skip
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        result.errors = _errors(pipe.events)
        with contextlib.suppress(RuntimeError):  # it may close the pipe before it replies
            pipe.send("Browser.close")
    finally:
        os.close(commands_w)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(replies_r)
        shutil.rmtree(profile, ignore_errors=True)
    return result


def _errors(events: list[dict]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))  # fmt: skip
        elif method == "Runtime.exceptionThrown":
            errors.append("exception: " + params["exceptionDetails"].get("text", ""))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            errors.append(f"load failed: {params.get('errorText')} (request {params.get('requestId')})")  # fmt: skip
    return errors


if __name__ == "__main__":
    checked = check_page(Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps({"title": checked.title, "images": checked.images, "errors": checked.errors}, indent=2))  # fmt: skip
