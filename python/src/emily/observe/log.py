"""Logging set-up shared by every process: one line per record, to stderr (journald)."""

from __future__ import annotations

import logging
import os

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str | None = None) -> None:
    """Configure the root logger; ``level`` defaults to ``$EMILY_LOG_LEVEL`` or ``INFO``."""
    chosen = (level or os.environ.get("EMILY_LOG_LEVEL") or "INFO").upper()
    if chosen not in logging.getLevelNamesMapping():
        raise ValueError(f"unknown log level {chosen!r}; use DEBUG, INFO, WARNING or ERROR")
    logging.basicConfig(level=chosen, format=FORMAT, force=True)
