"""The CPU's feature flags, read from a cpuinfo file."""

from __future__ import annotations

from pathlib import Path

from emily.cpu import cpu_flags


def test_cpu_flags_reads_the_first_cores_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n\nprocessor\t: 1\nflags\t\t: fpu\n"
    )
    assert cpu_flags(info) == {"fpu", "sse2", "avx2", "avx512f"}
    info.write_text("processor\t: 0\nfeatures\t: fp asimd\n")  # no flags line (arm64)
    assert cpu_flags(info) == frozenset()
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_the_live_cpu_lists_its_flags_on_linux_x86() -> None:
    import platform

    if platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64"):
        assert "sse2" in cpu_flags()  # every x86-64 CPU has it
