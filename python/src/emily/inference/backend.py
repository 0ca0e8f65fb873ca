"""Which device really runs the model: the CPU, or CUDA with its name and compute capability.

A llama.cpp build without CUDA silently runs on the CPU whatever ``n_gpu_layers`` says,
so the service reports what the build can do and what it was asked to do, not what the
config hoped for.
"""

from __future__ import annotations

import logging
import platform
import shutil
import subprocess
from dataclasses import dataclass
from typing import Literal

import llama_cpp

log = logging.getLogger(__name__)
Backend = Literal["cpu", "cuda", "metal", "vulkan", "other"]


@dataclass(frozen=True)
class BackendInfo:
    """The backend in use.

    Attributes
    ----------
    backend : ``cpu`` when no layer is offloaded (or the build cannot offload), else the
        GPU backend compiled in.
    device : ``Tesla P4 (sm_61)`` for CUDA, the CPU model name otherwise.
    gpu_offload_supported : whether this llama.cpp build can offload at all.
    system_info : llama.cpp's own feature line (``CUDA : ARCHS = 610 | ...``).
    """

    backend: Backend
    device: str
    gpu_offload_supported: bool
    system_info: str

    def describe(self) -> str:
        """One line for logs and ``emily status``."""
        build = "GPU-capable build" if self.gpu_offload_supported else "CPU-only build"
        return f"{self.backend}: {self.device} ({build})"


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo``, else :func:`platform.processor`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cuda_device() -> str | None:
    """``<name> (sm_XY)`` of GPU 0 as the NVIDIA driver reports it, or ``None``."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError) as exc:
        log.warning("nvidia-smi failed: %s", exc)
        return None
    if not out:
        return None
    name, _, cap = out.partition(",")
    return f"{name.strip()} (sm_{cap.strip().replace('.', '')})"


def compiled_gpu_backend(system_info: str) -> Backend:
    """The GPU backend named in llama.cpp's system info, else ``other``."""
    for marker, name in (("CUDA", "cuda"), ("METAL", "metal"), ("VULKAN", "vulkan")):
        if marker in system_info.upper():
            return name  # type: ignore[return-value]
    return "other"


def detect(n_gpu_layers: int) -> BackendInfo:
    """The backend a model loaded with ``n_gpu_layers`` runs on (see :class:`BackendInfo`)."""
    info = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    offload = bool(llama_cpp.llama_supports_gpu_offload())
    if not offload or n_gpu_layers == 0:
        return BackendInfo("cpu", cpu_name(), offload, info)
    backend = compiled_gpu_backend(info)
    device = cuda_device() if backend == "cuda" else None
    return BackendInfo(backend, device or "unknown GPU", offload, info)
