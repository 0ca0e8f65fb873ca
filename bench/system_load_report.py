"""The printed report and the plot of one ``bench/system_load.py`` run, from the figures
its ``run`` returns (or a ``--json`` file of them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import pyplot, save_plot, table
from heap_dumps import checkpoint_table, component_rows
from system_load_memory import swings


def kept_table(
    title: str, when: str, rows: list[list[Any]], m: dict[str, Any], prefix: str
) -> None:
    """One series of memory's kept sizes (rows ``(s, episodes, bytes, shapes, index
    slots)``; older runs lack the slots), and its slope against the index alone's, read
    from memory's figures ``m`` under ``prefix`` (``""`` under load, ``"quiet_"``); the
    slope of their difference, with its standard error, where the run has it."""
    print(f"\n{title}")
    alone_bytes = m.get(f"{prefix}index_alone_bytes") or []
    head = (when, "episodes", "index slots", "kept MiB", "embedder input shapes")
    body = [
        (f"{t:.0f}", f"{n:,}", f"{rest[0]:,}" if rest else "-", f"{b / 2**20:.1f}", k)
        for t, n, b, k, *rest in rows
    ]
    if len(alone_bytes) == len(rows):  # the index alone at the same slots, and the rest
        head += ("index alone MiB", "kept less the index alone MiB")
        body = [
            (*row, f"{a / 2**20:.1f}", f"{(r[2] - a) / 2**20:.1f}")
            for row, r, a in zip(body, rows, alone_bytes, strict=True)
        ]
    print(table(head, body))
    whole = m.get(f"{prefix}kept_bytes_per_episode")
    half = m.get(f"{prefix}kept_bytes_per_episode_2nd_half")
    alone = m.get(f"{prefix}index_alone")
    if whole is not None and half is not None and alone is not None and alone == alone:
        print(
            f"kept: {whole:,.0f} B/episode, {half:,.0f} over the second half; the index alone "
            f"grown to the same slots: {alone:,.0f} B/episode ({half / alone:.2f}x)"
        )
    alone_whole, excess = m.get(f"{prefix}index_alone_whole"), m.get(f"{prefix}excess")
    if whole is not None and alone_whole is not None and excess is not None:
        (w, w_se), (h, h_se) = excess, m[f"{prefix}excess_2nd_half"]
        print(
            f"over the whole run the index alone kept {alone_whole:,.0f} B/episode "
            f"({whole / alone_whole:.2f}x); memory less the index alone: {w:,.0f} ± "
            f"{w_se:,.0f} B/episode over the whole run, {h:,.0f} ± {h_se:,.0f} over the "
            "second half (± one standard error of the slope)"
        )


def heap_table(dumps: list[dict[str, Any]], alone: float | None) -> None:
    """Memory's heap dumps at the quiet checkpoints: what its structures held at each,
    and the growth per episode of each part of its memory against the index alone."""
    print("\nmemory's heap dumps at the quiet checkpoints (after its trim)")
    print(checkpoint_table([d["episodes"] for d in dumps], dumps))
    if alone is not None and alone == alone and len(dumps) >= 2:
        crows = component_rows([d["episodes"] for d in dumps], dumps, alone)
        crows.append(("the index alone, grown to the same slots", "", f"{alone:,.0f}", "1.00x"))
        print(table(("component", "B/episode", "B/episode, 2nd half", "vs index alone"), crows))


def report(r: dict[str, Any]) -> None:
    """Print the tables of one :func:`run`."""
    took, la = r["duration_s"], r["load_average"]
    print(f"\n{r['clients']} clients for {took:.0f} s (load average {la:.1f})")
    rows = []
    for p, s in r["paths"].items():
        ratio = s["p50_ms"] / s["base_p50_ms"] if s["base_p50_ms"] > 0 else float("nan")
        rows.append(
            (
                p,
                s["n"],
                f"{s['per_s']:.1f}",
                f"{s['p50_ms']:.1f}",
                f"{s['p99_ms']:.1f}",
                f"{s['base_p50_ms']:.1f}",
                f"{s['base_p99_ms']:.1f}",
                f"{ratio:.1f}x",
                s["errors"],
                s["degraded"],
            )
        )
    head = (
        "path",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "1-client p50",
        "1-client p99",
        "p50 vs 1 client",
        "errors",
        "degraded",
    )
    print(table(head, rows))
    for p, s in r["paths"].items():
        print(f"  {p} answered by {s['answered_by']}")
        for why, n in s.get("why", {}).items():
            print(f"    {n:,} x {why}")
        if s["first_error"]:
            print(f"  first {p} error: {s['first_error']}")
    print(
        f"\nall paths {r['requests'] / r['duration_s']:.1f} req/s; errors {r['errors']}; "
        f"episodes acknowledged {r['acked_episodes']}, in Postgres {r['episodes_in_postgres']}, "
        f"merged by consolidation into a kept one {r['merged']}: "
        f"lost {r['lost']} {r['lost_by_path']}, duplicated {r['duplicated']}, "
        f"in Postgres but never acknowledged {r['unacked_in_postgres']}; indexed {r['indexed']}"
    )
    if r.get("exited"):
        print(f"services that exited during the run: {', '.join(r['exited'])}")
    out = r["cognition_episodes"]
    print(
        f"cognition's episode outbox: {r['cognition_pending_at_end_of_load']} pending when the "
        f"load ended, drained in {r['cognition_drain_s']:.1f} s "
        f"({r['cognition_pending_at_count']} still pending when counted; memory settled "
        f"{r['drained_and_settled_s']:.1f} s after the load); its episodes by outcome "
        f"{ {k: int(v) for k, v in sorted(out.items())} }"
    )
    mrows = [
        (
            name,
            f"{m['start_mib']:.0f}",
            f"{m['end_mib']:.0f}",
            f"{m['bytes_per_episode']:,.0f}",
            f"{m['bytes_per_episode_2nd_half']:,.0f}",
        )
        for name, m in r["memory"].items()
    ]
    print("\nresident memory (postgres: PSS of all its processes), growth per stored episode")
    print(table(("process", "start MiB", "end MiB", "B/episode", "B/episode, 2nd half"), mrows))
    own, grew = r["index_bytes_per_episode"], r["memory"]["memory"]["bytes_per_episode_2nd_half"]
    print(
        f"in-process HNSW index's own size: {own:,.0f} B/episode; the memory service grew "
        f"{grew:,.0f} B/episode over the second half ({grew / own:.2f}x the index's)"
    )
    m = r["memory"]["memory"]
    kept_table(
        f"memory kept (its resident set right after each of {len(r['kept_after_trims'])} "
        "heap trims under load)",
        "trim at s",
        r["kept_after_trims"],
        m,
        "",
    )
    if r.get("kept_when_quiet"):
        kept_table(
            f"memory kept when quiet (the load paused every {r['quiet_every_s']:.0f} s of it "
            "and once after it; the stack settled, then memory's next heap trim), memory's "
            f"environment {r['memory_env'] or 'as deployed'}",
            "checkpoint at s",
            r["kept_when_quiet"],
            m,
            "quiet_",
        )
    if r.get("heap_dumps"):
        heap_table(r["heap_dumps"], m.get("quiet_index_alone"))
    end = r.get("load_end_s", r["duration_s"])
    rows = [tuple(s) for s in r["samples"] if s[0] <= end + 1e-9]
    spans = swings(rows, "memory")  # type: ignore[arg-type]
    print("\nmemory's resident size per 30 s of load (it trims freed heap every 30 s)")
    print(
        table(
            ("from s", "episodes at the least", "least MiB", "greatest MiB"),
            [(f"{t:.0f}", f"{n:,}", f"{lo:.1f}", f"{hi:.1f}") for t, n, lo, hi in spans],
        )
    )


def plot(r: dict[str, Any], filename: str = "system_load_rss.png") -> Path:
    """Resident memory of each process against time, and the episode count."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    t = [s[0] for s in r["samples"]]
    for name in r["memory"]:
        ax.plot(t, [s[2][name] / 1024 for s in r["samples"]], label=name)
    ax.set_xlabel("time since the load started (s)")
    ax.set_ylabel("resident memory (MiB; postgres: PSS)")
    ax.legend(loc="upper left")
    ax2 = ax.twinx()
    ax2.plot(t, [s[1] for s in r["samples"]], "k--", label="episodes")
    ax2.set_ylabel("episodes in memory (dashed)")
    ax.set_title(f"{r['clients']} clients, {r['duration_s']:.0f} s")
    return save_plot(fig, filename)
