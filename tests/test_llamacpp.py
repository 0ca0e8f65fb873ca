"""emily.llamacpp: a build with AMX kernels keeps its weights out of the AMX buffer type,
whose kernel crashes the process on a batched decode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import llama_cpp.llama_cpp as llama_c
import pytest

from emily import llamacpp

AMX_LINE = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 |"
PLAIN_LINE = "CPU : SSE3 = 1 | AVX2 = 1 | FMA = 1 | REPACK = 1 |"


def test_only_a_build_with_amx_kernels_loses_its_extra_buffers() -> None:
    assert llamacpp.amx_build(AMX_LINE) and not llamacpp.amx_build(PLAIN_LINE)
    assert llamacpp.amx_build("CPU : AMX_INT8 = 0 |") is False
    assert llamacpp.extra_buffers(info=PLAIN_LINE) is True
    assert llamacpp.extra_buffers(info=AMX_LINE) is False
    assert llamacpp.extra_buffers(allow_amx=True, info=AMX_LINE) is True
    # this build: the same answer from its own feature line
    here = llamacpp.system_info()
    assert llamacpp.extra_buffers() is not llamacpp.amx_build(here)


def test_loading_with_sets_the_parameter_only_inside_the_block() -> None:
    default = llama_c.llama_model_default_params
    assert llama_c.llama_model_default_params().use_extra_bufts is True
    with llamacpp.loading_with(False):
        assert llama_c.llama_model_default_params().use_extra_bufts is False
        assert llama_c.llama_model_default_params().n_gpu_layers == default().n_gpu_layers
    assert llama_c.llama_model_default_params is default
    with pytest.raises(RuntimeError), llamacpp.loading_with(False):
        raise RuntimeError("a failed load")
    assert llama_c.llama_model_default_params is default


# Decodes a 300-token batch with 2 threads in a process of its own, loaded as the engine
# loads (a crash there kills the interpreter, so it must not be this one).
BATCH = """
import sys
from emily.inference.config import InferenceConfig
from emily.inference.decoder import Decoder
from emily.inference.engine import Engine
import llama_cpp
from pathlib import Path
cfg = InferenceConfig(n_ctx=512, n_threads=2, slots=1)
engine = Engine(cfg, Path(sys.argv[1]))
dec = Decoder(engine, cfg)
b = dec.batch
for i in range(300):
    b.token[i] = 100 + i; b.pos[i] = i; b.n_seq_id[i] = 1; b.seq_id[i][0] = 0
    b.logits[i] = i == 299
b.n_tokens = 300
print("rc", llama_cpp.llama_decode(dec.ctx, b), "extra", engine.extra_buffers)
"""


@pytest.mark.slow
def test_a_batched_decode_survives_a_build_with_amx_kernels(llm_model_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", BATCH, str(llm_model_path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]  # -11: the AMX kernel's fault
    amx = llamacpp.amx_build(llamacpp.system_info())
    assert f"rc 0 extra {not amx}" in out.stdout, out.stdout
