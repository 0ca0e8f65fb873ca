"""What this CPU can do, as the kernel lists it: the feature flags of ``/proc/cpuinfo``.

The embedder picks its precision from them and memory names them when a pgvector built
for another CPU dies here.
"""

from __future__ import annotations

from pathlib import Path


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The feature flags of this CPU's first core; empty where the kernel does not list them."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()
