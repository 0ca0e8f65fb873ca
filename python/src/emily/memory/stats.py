"""Access statistics and tier membership, persisted under the state dir.

Each episode that was ever recalled has an access count (decayed by half every
``half_life_s``) and a last-access time. The file is replaced atomically (write,
fsync, rename), so a crash leaves the previous version. L0 and L1 warm up from it.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from emily.bus.schemas.memory import Tier


@dataclass
class Access:
    """Decayed access count and last access time (Unix seconds) of one episode."""

    count: float
    last: float


class AccessStats:
    """Per-episode access statistics.

    Parameters
    ----------
    path : JSON file the statistics persist to.
    half_life_s : seconds over which a count halves without accesses.
    """

    def __init__(self, path: Path, half_life_s: float = 86400.0) -> None:
        self.path = path
        self.half_life_s = half_life_s
        self.entries: dict[uuid.UUID, Access] = {}

    def touch(self, key: uuid.UUID, now: float) -> Access:
        """Record one access at ``now``; returns the updated entry."""
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = Access(0.0, now)
        entry.count = self.decayed(entry, now) + 1.0
        entry.last = now
        return entry

    def decayed(self, entry: Access, now: float) -> float:
        """``entry.count`` decayed to ``now``."""
        return entry.count * math.exp2(-max(now - entry.last, 0.0) / self.half_life_s)

    def save(self, tiers: dict[uuid.UUID, Tier]) -> None:
        """Write the statistics and each episode's tier atomically."""
        data = {
            str(k): [round(e.count, 4), e.last, tiers.get(k, "L3")] for k, e in self.entries.items()
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            json.dump(data, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def load(self) -> dict[uuid.UUID, Tier]:
        """Read the file back (if any); returns each episode's tier at save time."""
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text())
        tiers: dict[uuid.UUID, Tier] = {}
        for k, (count, last, tier) in data.items():
            key = uuid.UUID(k)
            self.entries[key] = Access(float(count), float(last))
            tiers[key] = tier
        return tiers
