"""Drive headless Chromium over the DevTools protocol (``--remote-debugging-pipe``).

Used by the viewer's tests and by ``viz/measure_viewer.py``: open an HTML file,
wait until the viewer says it has painted, collect console errors and uncaught
exceptions, read values from the page and take screenshots. No Python
dependency: the protocol runs over two pipes (file descriptors 3 and 4,
NUL-terminated JSON messages). WebGL runs on SwiftShader (CPU), so this works
on machines without a GPU.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pointsam._atomic import atomic_write_bytes

__all__ = ["find_chromium", "Browser"]

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (``POINTSAM_CHROMIUM`` first), or None."""
    env = os.environ.get("POINTSAM_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for n in _NAMES:
        p = shutil.which(n)
        if p:
            return p
    return None


class Browser:
    """One headless Chromium with one page, driven over a DevTools pipe.

    Example (not run here: it needs Chromium)::

        with Browser(width=1200, height=800) as b:
            b.open("viewer.html", ready="window.pointsamViewer && pointsamViewer.ready")
            b.screenshot("shot.png")
            print(b.errors)
    """

    def __init__(self, width: int = 1200, height: int = 800,
                 executable: str | None = None, timeout: float = 60.0) -> None:
        exe = executable or find_chromium()
        if exe is None:
            raise FileNotFoundError("no Chromium found (apt-get install chromium, or "
                                    "set POINTSAM_CHROMIUM)")
        self.timeout = timeout
        self.width, self.height = width, height
        self._profile = tempfile.mkdtemp(prefix="pointsam-chromium-")
        r_ours, w_theirs = os.pipe()  # chromium writes fd 4 -> we read
        r_theirs, w_ours = os.pipe()  # we write -> chromium reads fd 3
        args = [exe, "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
                "--disable-gpu-sandbox", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
                "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking",
                "--hide-scrollbars", "--mute-audio", f"--user-data-dir={self._profile}",
                f"--window-size={width},{height}", "about:blank"]

        def fds() -> None:  # in the child: our pipe ends become fds 3 and 4
            import fcntl

            a = fcntl.fcntl(r_theirs, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(w_theirs, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(args, preexec_fn=fds, pass_fds=(),
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, close_fds=False)
        os.close(r_theirs)
        os.close(w_theirs)
        self._r = os.fdopen(r_ours, "rb", buffering=0)
        self._w = os.fdopen(w_ours, "wb", buffering=0)
        self._buf = b""
        self._id = 0
        self.errors: list[str] = []
        self.console: list[str] = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"],
                                 flatten=True)["sessionId"]
        for dom in ("Page", "Runtime", "Log"):
            self.call(f"{dom}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width,
                  height=height, deviceScaleFactor=1, mobile=False)

    # ------------------------------------------------------------ protocol
    def _send(self, msg: dict[str, Any]) -> None:
        self._w.write(json.dumps(msg).encode() + b"\0")

    def _recv(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = self._r.read(1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        msg = json.loads(raw)
        self._event(msg)
        return msg

    def _event(self, msg: dict[str, Any]) -> None:
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append("exception: " + str(d.get("exception", {}).get(
                "description") or d.get("text")))
        elif m == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", "")))
                            for a in p.get("args", []))
            self.console.append(f"{p.get('type')}: {text}")
            if p.get("type") in ("error", "assert"):
                self.errors.append(f"console.{p.get('type')}: {text}")
        elif m == "Log.entryAdded":
            e = p.get("entry", {})
            if e.get("level") == "error":
                self.errors.append(f"log ({e.get('source')}): {e.get('text')}")

    def call(self, method: str, session: bool = False, timeout: float | None = None,
             **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        self._send(msg)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            r = self._recv(deadline)
            if r.get("id") == self._id:
                if "error" in r:
                    raise RuntimeError(f"{method}: {r['error']}")
                return r.get("result", {})

    # ------------------------------------------------------------ page
    def eval(self, expr: str) -> Any:
        """Evaluate a JavaScript expression in the page; return its value."""
        r = self.call("Runtime.evaluate", session=True, expression=expr,
                      returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails'].get('text')}")
        return r.get("result", {}).get("value")

    def wait_for(self, expr: str, timeout: float | None = None) -> float:
        """Poll ``expr`` until truthy; return the seconds waited."""
        t0 = time.monotonic()
        deadline = t0 + (timeout or self.timeout)
        while time.monotonic() < deadline:
            if self.eval(f"!!({expr})"):
                return time.monotonic() - t0
            time.sleep(0.05)
        raise TimeoutError(f"page never satisfied {expr!r}; errors: {self.errors}")

    def open(self, path: str | Path, ready: str | None = None,
             hash: str = "") -> float:
        """Load a local file (optionally with ``#hash``); wait for ``ready``.

        Returns:
            Seconds from the navigation to ``ready`` (or to the load event).
        """
        url = Path(path).resolve().as_uri() + (f"#{hash}" if hash else "")
        t0 = time.monotonic()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("document.readyState === 'complete'")
        if ready:
            self.wait_for(ready)
        return time.monotonic() - t0

    def screenshot(self, out: str | Path | None = None) -> bytes:
        """A PNG of the viewport (written to ``out`` when given)."""
        data = base64.b64decode(self.call("Page.captureScreenshot", session=True,
                                          format="png")["data"])
        if out is not None:
            atomic_write_bytes(out, data)
        return data

    def close(self) -> None:
        """Stop Chromium and remove its profile."""
        try:
            self._send({"id": 0, "method": "Browser.close", "params": {}})
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self._r, self._w):
            try:
                f.close()
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
