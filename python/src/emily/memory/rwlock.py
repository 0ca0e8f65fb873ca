"""A readers-writer lock: many holders share it, or one holds it alone.

Used by the index (searches share it; add, resize and save take it alone) and by the
forget marks (stores share it; a forget takes it alone, :mod:`emily.memory.forget_marks`).
With ``prefer_writer`` a writer that waits bars new readers, so that a stream of
overlapping readers (stores under load) cannot keep it waiting for ever; without it a
reader never waits for a writer that has not yet got the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RWLock:
    """Many readers or one writer; ``prefer_writer``: a waiting writer goes first."""

    def __init__(self, prefer_writer: bool = False) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0
        self.prefer_writer = prefer_writer

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock shared."""
        with self._cond:
            while self._writer or (self.prefer_writer and self._waiting_writers):
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock exclusively."""
        with self._cond:
            self._waiting_writers += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
