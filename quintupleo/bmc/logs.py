"""How the BMC logs: what it says about refused and malformed traffic, kept small under a
flood, and JSON lines for log collectors.

A flood of bad packets, failed logins or broken HTTP requests must not become a flood of log
lines: each kind of line is written at most BURST times per PERIOD seconds; the others are
counted, and one line says how many were dropped when the period ends (`flush`, called by the
service every PERIOD seconds, or the next line of that kind). aiohttp's own report of a
malformed request (a traceback per request) becomes one such line.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from aiohttp.http_exceptions import HttpProcessingError

PERIOD = 10.0
BURST = 5

log = logging.getLogger("quintupleo.bmc.traffic")


@dataclass
class _Kind:
    started: float
    written: int = 0
    dropped: int = 0


class TrafficLog:
    """Rate-limited warnings, one budget per kind (e.g. "ipmi refused", "http malformed")."""

    def __init__(self, period: float = PERIOD, burst: int = BURST) -> None:
        self.period = period
        self.burst = burst
        self._kinds: dict[str, _Kind] = {}
        self.total_dropped = 0

    def warning(self, kind: str, message: str, *args: object,
                level: int = logging.WARNING) -> None:
        now = time.monotonic()
        state = self._kinds.get(kind)
        if state is None or now - state.started >= self.period:
            if state is not None:
                self._summary(kind, state)
            state = self._kinds[kind] = _Kind(now)
        if state.written < self.burst:
            state.written += 1
            log.log(level, message, *args)
        else:
            state.dropped += 1
            self.total_dropped += 1

    def flush(self, everything: bool = False) -> None:
        """Say what each kind dropped in its period that has ended (`everything`: in every
        period, ended or not: the service is stopping)."""
        now = time.monotonic()
        for kind, state in list(self._kinds.items()):
            if everything or now - state.started >= self.period:
                self._summary(kind, state)
                del self._kinds[kind]

    def _summary(self, kind: str, state: _Kind) -> None:
        if state.dropped:
            log.warning("%d more %s lines dropped in %.0f s (at most %d are written per %.0f s)",
                        state.dropped, kind, time.monotonic() - state.started, self.burst,
                        self.period)
            state.dropped = 0


traffic = TrafficLog()


class MalformedHttp(logging.Filter):
    """On aiohttp's server logger: a request aiohttp could not parse (a bad request line,
    headers too large, a broken chunk) is one rate-limited line, without a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        reason = (error.message or type(error).__name__).splitlines()[0][:120]
        traffic.warning("malformed HTTP", "redfish: malformed HTTP request from %s refused "
                        "(%d): %s", peer, error.code, reason)
        return False


def install() -> None:
    """Put the HTTP filter in place (idempotent)."""
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedHttp) for f in server.filters):
        server.addFilter(MalformedHttp())


class JsonLines(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message (and the
    exception's text, when there is one), for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                 + f".{int(record.msecs):03d}Z", "level": record.levelname.lower(),
                 "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)
