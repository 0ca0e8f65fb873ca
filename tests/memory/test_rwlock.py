"""emily.memory.rwlock: shared readers, one writer, and a waiting writer first when asked."""

from __future__ import annotations

import threading

import pytest

from emily.memory.rwlock import RWLock


def _reader(lock: RWLock, order: list[str], name: str) -> threading.Thread:
    def run() -> None:
        with lock.read():
            order.append(name)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("prefer_writer", [True, False])
def test_readers_share_and_a_writer_waits_for_them(prefer_writer: bool) -> None:
    lock = RWLock(prefer_writer)
    order: list[str] = []
    with lock.read():
        second = _reader(lock, order, "second reader")
        second.join(5)
        assert order == ["second reader"]  # readers share the lock

        def write() -> None:
            with lock.write():
                order.append("writer")

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(0.5)
        assert writer.is_alive() and order == ["second reader"]  # it waits for the first
    writer.join(5)
    assert order == ["second reader", "writer"]


@pytest.mark.parametrize(("prefer_writer", "first"), [(True, "writer"), (False, "late reader")])
def test_a_waiting_writer_bars_new_readers_only_when_preferred(
    prefer_writer: bool, first: str
) -> None:
    lock = RWLock(prefer_writer)
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock.read():
            holding.set()
            release.wait()

    def write() -> None:
        with lock.write():
            order.append("writer")

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert holding.wait(5)
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(0.3)  # the writer now waits for the holder
    late = _reader(lock, order, "late reader")
    late.join(0.3)
    release.set()
    for t in (holder, writer, late):
        t.join(5)
    assert order[0] == first and sorted(order) == ["late reader", "writer"]
