"""What every service that loads a GGUF model with llama.cpp shares: which of llama.cpp's
buffer types its weights may go into.

A llama.cpp build for a CPU with AMX (Intel Xeon of the 4th generation and later, built
with ``-march=native`` there, or a build of every CPU variant) puts the weights of the
quantised types AMX handles into its AMX buffer type, and its matrix kernel then loads a
tile configuration of which only the first half is written: the thread that runs it
dies with a general protection fault (``ldtilecfg``) on the first decode of a batch, and
the process with it (llama.cpp pull request 26954, open). :func:`extra_buffers` keeps
such a build's weights in plain CPU buffers unless asked otherwise; a build without AMX
kernels keeps its extra buffer types (the repacked CPU layouts) as they are.
:func:`loading_with` applies the choice to llama-cpp-python's ``Llama``, which has no
parameter of its own for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import llama_cpp
import llama_cpp.llama_cpp as llama_c

log = logging.getLogger(__name__)
_patch = threading.Lock()


def system_info() -> str:
    """llama.cpp's feature line of this build (``CPU : SSE3 = 1 | ... | AMX_INT8 = 1``)."""
    return str(llama_cpp.llama_print_system_info().decode(errors="replace")).strip()


def amx_build(info: str) -> bool:
    """Whether the feature line ``info`` names AMX kernels (``AMX_INT8 = 1``)."""
    return "AMX_INT8 = 1" in info


def extra_buffers(allow_amx: bool = False, info: str | None = None) -> bool:
    """Whether weights may go into llama.cpp's extra buffer types (AMX, and the repacked
    CPU layouts): always on a build without AMX kernels, on one with them only when
    ``allow_amx`` (see the module docstring). ``info``: the build's feature line,
    :func:`system_info` when ``None``."""
    if allow_amx or not amx_build(system_info() if info is None else info):
        return True
    log.info(
        "this llama.cpp build has AMX kernels, which crash on batched decodes: the weights "
        "stay in plain CPU buffers"
    )
    return False


@contextmanager
def loading_with(extra: bool) -> Iterator[None]:
    """While the block runs, ``llama_cpp.Llama`` loads its model with
    ``use_extra_bufts = extra`` (it takes llama.cpp's default model parameters and has no
    argument for this one). One block at a time, across threads."""
    with _patch:
        default = llama_c.llama_model_default_params

        def params() -> Any:
            p = default()
            p.use_extra_bufts = extra
            return p

        llama_c.llama_model_default_params = params
        try:
            yield
        finally:
            llama_c.llama_model_default_params = default
