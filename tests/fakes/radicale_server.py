"""A real Radicale CalDAV server for tests: a subprocess on a free port of 127.0.0.1.

``--auth-type none`` takes any user name with any password, and ``--rights-type
owner_only`` lets each user read and write their own collections under ``/<user>/`` -- as
on a real server, a client logs in and works in its own principal. ``--config ""`` keeps
the user's and the system's Radicale configuration out. The storage folder outlives
:meth:`RadicaleServer.stop`, so ``start()`` again (same port, same data) models a
server that went away and came back.

Example::

    with RadicaleServer(tmp_path) as server:
        client = caldav.DAVClient(server.url, username="alice", password="x")
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from tests.servers.net import free_port

STARTUP_TIMEOUT = 20.0


class RadicaleServer:
    """Start Radicale on ``root``/storage; ``url`` is its base URL (with a trailing slash)."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.storage = self.root / "storage"
        self.log_path = self.root / "radicale.log"
        self.url = f"http://127.0.0.1:{self.port}/"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RadicaleServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers HTTP."""
        if self.running:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "radicale",
            "--config", "",
            "--server-hosts", f"127.0.0.1:{self.port}",
            "--storage-filesystem-folder", str(self.storage),
            "--auth-type", "none",
            "--rights-type", "owner_only",
            "--auth-delay", "0",  # clients first ask without credentials: answer the 401 at once
            "--logging-level", "warning",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_until_up()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it hangs); the storage stays."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"radicale exited at start-up:\n{self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + ".well-known/caldav", timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer means it is serving
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"radicale did not answer on {self.url}:\n{self.log()[-2000:]}")
