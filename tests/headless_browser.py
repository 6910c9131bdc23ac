"""Headless chromium driven over its DevTools protocol, for tests that look at a web UI
(MLflow's runs table, TensorBoard's HPARAMS tab) as a person would.

``chromium --screenshot`` shoots at the load event, before a JavaScript app has fetched
its data, and ``--virtual-time-budget`` never ends on a page that keeps polling its
server (MLflow's does): this waits for what the test names instead. websocket-client
(a dev dependency) speaks the protocol; chromium is Debian's (``make chromium``).
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import end_process_group

# the text of a page, shadow DOM included (TensorBoard's Polymer dashboards live there)
PAGE_TEXT_JS = """(() => {
  const out = [];
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) out.push(node.textContent);
    if (['SCRIPT', 'STYLE'].includes(node.nodeName)) return;
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) walk(child);
  };
  walk(document.body);
  return out.join(' ').replace(/\\s+/g, ' ');
})()"""

# chromium talks to nothing but the page it is given
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-port=0",
]  # fmt: skip


class HeadlessBrowser:
    """One chromium page; ``with HeadlessBrowser(profile) as page: page.open(url)``.

    ``profile`` is a new empty directory (its user data dir)."""

    def __init__(self, profile: Path, size: tuple[int, int] = (1600, 900)) -> None:
        import websocket

        profile.mkdir(parents=True, exist_ok=False)
        self.process = subprocess.Popen(
            ["chromium", *FLAGS, f"--user-data-dir={profile}",
             f"--window-size={size[0]},{size[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            port = self._devtools_port(profile / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
                (page,) = [t for t in json.load(r) if t["type"] == "page"]
            # no Origin header: chromium refuses websocket origins it was not told to allow
            self.socket = websocket.create_connection(
                page["webSocketDebuggerUrl"], timeout=120, suppress_origin=True
            )
        except BaseException:
            self.close()
            raise
        self.ids = itertools.count(1)

    def _devtools_port(self, port_file: Path, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}")
            if port_file.is_file() and port_file.read_text().strip():
                return int(port_file.read_text().split()[0])
            time.sleep(0.2)
        raise TimeoutError(f"chromium wrote no {port_file} within {timeout} s")

    def call(self, method: str, **params: Any) -> dict:
        """One DevTools command; its result (events in between are skipped)."""
        sent = next(self.ids)
        self.socket.send(json.dumps({"id": sent, "method": method, "params": params}))
        while True:
            reply = json.loads(self.socket.recv())
            if reply.get("id") == sent:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str) -> Any:
        done = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return done["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for_text(self, *needles: str, timeout: float = 120) -> str:
        """The page's text once it holds every needle; TimeoutError naming what is missing."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.evaluate(PAGE_TEXT_JS) or ""
            missing = [n for n in needles if n not in text]
            if not missing:
                return text
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never showed {missing}; it shows: {text[:2000]}")
            time.sleep(1)

    def screenshot(self, path: Path) -> None:
        shot = self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        if getattr(self, "socket", None) is not None:
            self.socket.close()
        if self.process.poll() is None:
            end_process_group(self.process, grace_s=30)

    def __enter__(self) -> HeadlessBrowser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
