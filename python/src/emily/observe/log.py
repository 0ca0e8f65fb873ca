"""Logging shared by every process: one line per record, to stderr (journald, or the
supervisor's pipe), and the rotating log files that ``emily up`` keeps per service.

A service's level is ``--log-level``, else ``$EMILY_LOG_LEVEL``, else ``[log] level``.
Under ``emily up`` each service's output (its log lines, and whatever a native library
or a crash writes) reaches ``emily up`` through a pipe and is written to
``<state dir>/logs/<service>.log``, which :class:`LogFile` rotates at ``[log] max_bytes``
keeping ``[log] backup_count`` older files; on the host journald keeps them instead.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from emily.config import load_section
from emily.errors import ConfigError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class LogConfig:
    """Settings of the ``[log]`` section: the services' level and their log files.

    Attributes
    ----------
    level : the services' log level (``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``);
        ``$EMILY_LOG_LEVEL`` and ``--log-level`` win over it.
    max_bytes : size at which ``emily up`` rotates a service's log file under
        ``<state dir>/logs`` (bytes, at least 4096).
    backup_count : rotated files kept per service (``<service>.log.1`` ... ``.N``);
        older ones are deleted.
    """

    level: str = "INFO"
    max_bytes: int = 10 * 2**20
    backup_count: int = 5

    def __post_init__(self) -> None:
        if self.level.upper() not in LEVELS:
            raise ConfigError(f"[log] level {self.level!r} is not one of {', '.join(LEVELS)}")
        if self.max_bytes < 4096:
            raise ConfigError(f"[log] max_bytes must be at least 4096, got {self.max_bytes}")
        if self.backup_count < 1:
            raise ConfigError(f"[log] backup_count must be at least 1, got {self.backup_count}")

    @classmethod
    def load(cls) -> LogConfig:
        """From ``[log]`` in the config file and ``EMILY_LOG__*``."""
        return load_section(cls, "log")


def check_level(level: str) -> str:
    """``level`` in upper case, or :class:`ValueError` naming the valid levels."""
    chosen = level.upper()
    if chosen not in LEVELS:
        raise ValueError(f"unknown log level {chosen!r}; use DEBUG, INFO, WARNING or ERROR")
    return chosen


def effective_level(level: str | None = None) -> str:
    """``level``, else ``$EMILY_LOG_LEVEL``, else ``[log] level`` (upper case, checked)."""
    return check_level(level or os.environ.get("EMILY_LOG_LEVEL") or LogConfig.load().level)


def setup_logging(level: str | None = None) -> None:
    """Configure the root logger at :func:`effective_level` (``level`` first)."""
    logging.basicConfig(level=effective_level(level), format=FORMAT, force=True)


class LogFile:
    """``path``, rotated at ``max_bytes`` with ``backup_count`` older files kept.

    :meth:`follow` copies a child process's output into it line by line from a thread,
    so the file can be renamed under a child that keeps writing (a child writing to the
    file itself would keep writing to the renamed one).
    """

    def __init__(self, path: Path, max_bytes: int, backup_count: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))

    def write(self, line: str) -> None:
        """Append one line (without its newline), rotating first when it would not fit."""
        self._handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))

    def follow(self, stream: IO[bytes], name: str) -> threading.Thread:
        """Copy ``stream`` into the file until it ends, on a daemon thread named ``name``."""

        def copy() -> None:
            with stream:
                for raw in stream:
                    self.write(raw.decode("utf-8", errors="replace").rstrip("\r\n"))

        thread = threading.Thread(target=copy, name=name, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Close the file."""
        self._handler.close()
