"""Process-level tuning of the CPython runtime for latency-bound services.

Two CPython defaults put milliseconds into the tail of a request that needs a fraction
of one:

- **Garbage collection.** A full (oldest-generation) collection walks every tracked
  object. After torch, transformers and the models are loaded that is millions of
  objects, and the pause lands on whichever request allocated last. :func:`freeze_heap`
  collects once and moves everything alive after start-up into the permanent
  generation, which the collector never walks again; objects made later are collected
  as usual (and reference counting still frees frozen objects that become unreachable
  without a cycle).
- **GIL switching.** A thread that wants the GIL (a Zenoh callback delivering a query)
  waits until the holder releases it, or until ``sys.getswitchinterval()`` (5 ms by
  default) has passed. :func:`tune_for_latency` lowers the interval so a background
  thread (a store to memory, STDP) delays a request by at most about that much.

Call :func:`tune_for_latency` once at service start-up, after the models are loaded and
warmed up. Both calls are idempotent. :func:`wait_for_stop` is how a service's main
thread waits for SIGTERM or SIGINT, and :func:`run_service` is every service's ``main``:
configuration file, logging, start-up, tuning, the wait and an orderly shutdown.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from emily.observe.log import setup_logging

log = logging.getLogger(__name__)

#: prctl option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1
#: GIL switch interval for latency-bound services (s); CPython's default is 0.005.
SWITCH_INTERVAL_S = 0.0005
#: Allocations between young-generation collections (CPython's default: 700).
GEN0_THRESHOLD = 10_000


@dataclass(frozen=True)
class Tuning:
    """What :func:`tune_for_latency` set.

    switch_interval_s : the GIL switch interval now in force (s).
    thresholds : the collector's generation thresholds now in force.
    frozen : objects in the permanent generation.
    """

    switch_interval_s: float
    thresholds: tuple[int, int, int]
    frozen: int


def freeze_heap() -> int:
    """Collect, then move every live object into the permanent generation.

    Returns
    -------
    The number of objects now frozen (``gc.get_freeze_count()``).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def tune_for_latency(
    switch_interval_s: float = SWITCH_INTERVAL_S, gen0_threshold: int = GEN0_THRESHOLD
) -> Tuning:
    """Freeze the start-up heap, space out young collections, shorten GIL hand-offs.

    Parameters
    ----------
    switch_interval_s : GIL switch interval (s), in ``(0, 0.1]``.
    gen0_threshold : allocations between young-generation collections, ``>= 100``; the
        older generations keep CPython's ratios.

    Raises
    ------
    ValueError
        If a setting is outside its range.
    """
    if not 0 < switch_interval_s <= 0.1:
        raise ValueError(f"switch_interval_s must be in (0, 0.1] s, got {switch_interval_s!r}")
    if gen0_threshold < 100:
        raise ValueError(f"gen0_threshold must be at least 100, got {gen0_threshold!r}")
    frozen = freeze_heap()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
    sys.setswitchinterval(switch_interval_s)
    t0, t1, t2 = gc.get_threshold()
    return Tuning(sys.getswitchinterval(), (t0, t1, t2), frozen)


def wait_for_stop(poll_s: float = 0.5) -> int:
    """Block the main thread until SIGTERM or SIGINT; returns the signal's number.

    The wait is timed (``poll_s`` seconds): a signal may be delivered to a thread that
    is not Python's (Zenoh's), and the handler only runs when the main thread executes
    bytecode, so an untimed wait would never return. The handler only records the
    signal: it runs on the main thread between any two bytecodes, also inside a lock's
    ``acquire``, so taking a lock there (``Event.set``) could deadlock with the wait.
    """
    got: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        got.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    while not got:
        time.sleep(poll_s)
    log.info("signal %d: shutting down", got[0])
    return got[0]


def die_with_supervisor(pid: int) -> None:
    """Ask the kernel for SIGTERM when the parent process dies (Linux), and exit now if
    the parent is no longer ``pid`` (it died before the request was made).

    ``emily up`` sets ``EMILY_SUPERVISOR_PID`` for its services, so a supervisor killed
    with ``kill -9`` takes them down with it instead of leaving them orphaned.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the pidfile still finds orphans
        log.warning("cannot ask to be stopped with the supervisor on this system")
    if os.getppid() != pid:
        log.error("the supervisor (pid %d) is gone; exiting", pid)
        raise SystemExit(1)


def run_service(
    args: argparse.Namespace,
    start: Callable[[ExitStack], str],
    *,
    switch_interval_s: float = SWITCH_INTERVAL_S,
) -> int:
    """A service's ``main``: run ``start``, then serve until SIGTERM or SIGINT.

    Parameters
    ----------
    args : ``emily serve``'s arguments: ``config`` (a TOML file, exported as
        ``$EMILY_CONFIG`` before any settings are read) and ``log_level`` (else
        ``$EMILY_LOG_LEVEL``, else ``INFO``).
    start : builds and warms up the service, registers on the stack what shuts it down
        (closed in reverse order, also when start-up fails half-way), and returns the
        start-up line to log: what is served, and where.
    switch_interval_s : GIL switch interval for :func:`tune_for_latency` (s).

    Returns
    -------
    The process exit code (0).
    """
    if getattr(args, "config", None):
        os.environ["EMILY_CONFIG"] = str(args.config)
    setup_logging(getattr(args, "log_level", None))
    supervisor = os.environ.get("EMILY_SUPERVISOR_PID", "")
    if supervisor.isdigit():
        die_with_supervisor(int(supervisor))
    with ExitStack() as stack:
        ready = start(stack)
        tuning = tune_for_latency(switch_interval_s=switch_interval_s)
        log.info(
            "runtime tuned: %d start-up objects frozen, GIL switch interval %.2g ms, gc %s",
            tuning.frozen,
            tuning.switch_interval_s * 1e3,
            tuning.thresholds,
        )
        log.info("%s", ready)
        wait_for_stop()
    return 0
