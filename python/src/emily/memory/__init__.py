"""The memory service: tiered episodic memory over Postgres + pgvector.

L3 (:mod:`emily.memory.store`) is the durable truth. L2 (:mod:`emily.memory.l2`,
memory-mapped files), L1 (:mod:`emily.memory.l1`, RAM with W-TinyLFU admission) and
L0 (:mod:`emily.memory.l0`, one tensor on the GPU or CPU) hold copies of hot episodes;
:mod:`emily.memory.tiers` moves them. :mod:`emily.memory.service` serves the bus API.
"""
