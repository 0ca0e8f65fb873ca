"""The media behind episodes, kept content-addressed under the state directory.

A clip or image that became an episode is written once to ``<root>/<sha[:2]>/<sha>``
(its SHA-256, the ``media_sha256`` the episode's context records), so the same photo
sent twice is stored once and an episode's media is found from its context alone. The
store is bounded: past ``max_bytes`` the least recently written files go first. On the
host the state directory is a ZFS dataset, snapshotted with the rest of the state.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

_SHA = re.compile(r"^[0-9a-f]{64}$")


class MediaStore:
    """Content-addressed files under ``root``, at most ``max_bytes`` in all.

    Parameters
    ----------
    root : directory of the store (created on first write).
    max_bytes : bound on the stored bytes; 0 keeps nothing.
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def path(self, sha: str) -> Path:
        """Where the media with SHA-256 ``sha`` (64 lowercase hex digits) lives."""
        if not _SHA.match(sha):
            raise ValueError(f"not a SHA-256 in hex: {sha[:70]!r}")
        return self.root / sha[:2] / sha

    def put(self, sha: str, data: bytes) -> bool:
        """Keep ``data`` under ``sha``; returns whether it is stored (false when it alone
        exceeds the bound). Older files are evicted to stay within ``max_bytes``."""
        if len(data) > self.max_bytes:
            return False
        path = self.path(sha)
        with self._lock:
            if path.exists():
                os.utime(path)  # written again: the newest now
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".part")
                tmp.write_bytes(data)
                tmp.replace(path)  # readers never see half a file
            self._evict(keep=path)
        return True

    def remove(self, sha: str) -> bool:
        """Delete the media of ``sha``; returns whether it was there."""
        with self._lock:
            try:
                self.path(sha).unlink()
            except FileNotFoundError:
                return False
            return True

    def files(self) -> list[Path]:
        """Every stored file, oldest first (by modification time)."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.glob("??/*") if _SHA.match(p.name)]
        return sorted(found, key=lambda p: p.stat().st_mtime_ns)

    def total_bytes(self) -> int:
        """Bytes stored now."""
        return sum(p.stat().st_size for p in self.files())

    def _evict(self, keep: Path) -> None:
        files = self.files()
        total = sum(p.stat().st_size for p in files)
        for p in files:
            if total <= self.max_bytes:
                break
            if p != keep:
                total -= p.stat().st_size
                p.unlink(missing_ok=True)
