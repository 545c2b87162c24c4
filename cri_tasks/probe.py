"""Measure a switch from the client's side: requests sent continuously to a published port while
containers change, counted as answered or failed, and the longest gap between answers."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class SwitchReport:
    target: str
    requests: int
    failed: int
    longest_gap_ms: float
    first_error: str | None = None

    def __str__(self) -> str:
        return f"{self.failed} failed of {self.requests} requests, longest gap {self.longest_gap_ms:.0f} ms"

    def as_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "requests": self.requests,
            "failed": self.failed,
            "longest_gap_ms": round(self.longest_gap_ms, 1),
            "first_error": self.first_error,
        }


class Probe:
    """Sends one request at a time (a new connection each) until stopped.

    ``http=True``: ``GET /`` must answer below 500; otherwise a TCP connect must succeed.
    """

    def __init__(self, host: str, port: int, *, http: bool, timeout: float = 5.0, pause: float = 0.0) -> None:
        self.host, self.port, self.http, self.timeout, self.pause = host, port, http, timeout, pause
        self.requests = 0
        self.failed = 0
        self.longest_gap = 0.0
        self.first_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cri-probe", daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> SwitchReport:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
        kind = "http" if self.http else "tcp"
        return SwitchReport(
            f"{kind}://{self.host}:{self.port}/", self.requests, self.failed, self.longest_gap * 1000, self.first_error
        )

    def _once(self) -> None:
        if self.http:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.request("GET", "/", headers={"Connection": "close", "User-Agent": "cri-tasks-probe"})
                response = conn.getresponse()
                response.read()
                if response.status >= 500:
                    raise RuntimeError(f"HTTP {response.status}")
            finally:
                conn.close()
        else:
            with socket.create_connection((self.host, self.port), timeout=self.timeout):
                pass

    def _run(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.is_set():
            self.requests += 1
            try:
                self._once()
            except Exception as exc:  # any failure counts; the first one is kept as evidence
                self.failed += 1
                if self.first_error is None:
                    self.first_error = f"{type(exc).__name__}: {exc}"
            else:
                now = time.monotonic()
                self.longest_gap = max(self.longest_gap, now - last_ok)
                last_ok = now
            if self.pause:
                time.sleep(self.pause)
        self.longest_gap = max(self.longest_gap, time.monotonic() - last_ok) if self.failed else self.longest_gap
