"""Serving a service's HTTP app (FastAPI on uvicorn) from a background thread.

The inference API and cognition's ``/v1/observe`` both run this way, beside their Zenoh
queryables in the same process.
"""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)


class HTTPServer:
    """uvicorn serving ``app`` on a background thread until :meth:`close`.

    ``name`` names the thread (``inference-http``), for stack dumps and profilers.
    """

    def __init__(self, app: FastAPI, host: str, port: int, *, name: str = "http") -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self.url = f"http://{host}:{port}"
        self.error: BaseException | None = None  # why the thread stopped, if it did
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._server.run()
        except BaseException as exc:  # uvicorn exits the thread (SystemExit) on a bind error
            self.error = exc
            log.error("HTTP server on %s stopped: %r", self.url, exc)

    def wait_started(self, timeout_s: float = 30.0) -> bool:
        """Block until uvicorn accepts connections (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Stop accepting, finish open responses, join the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
