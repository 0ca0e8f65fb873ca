"""Image captions from a vision language model through llama.cpp's multimodal support.

Optional, and meant for the host: a GGUF language model plus its multimodal projector
(``mmproj``), both pulled by SHA-256 into the state directory (``emily model pull URL
--sha256 HEX``) and named by ``[perception] caption_model`` and ``caption_projector``.
llama.cpp's ``mtmd`` library encodes the image with the projector and the model's own
chat template frames the request, so any model llama.cpp's ``mtmd`` supports works
(Gemma 3 4B/12B with its mmproj, Qwen2.5-VL, SmolVLM, ...). No such model ships in a
package that installs on a laptop, so there the service answers ``perception/caption``
with ``unavailable``.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from pathlib import Path
from typing import Any

from emily.bus.schemas.perception import CaptionReply, sha256_hex
from emily.perception.config import PerceptionConfig
from emily.perception.errors import ModelError
from emily.perception.ocr import load_image

#: What the model is asked; one sentence keeps the episode short and recallable.
PROMPT = "Describe this image in one sentence. Mention any text it shows."


class Captioner:
    """A vision GGUF and its projector, loaded once; :meth:`caption` is serialised."""

    def __init__(self, config: PerceptionConfig) -> None:
        model, projector = Path(config.caption_model), Path(config.caption_projector)
        for path, key in ((model, "caption_model"), (projector, "caption_projector")):
            if not path.is_file():
                raise ModelError(
                    f"[perception] {key} = {str(path)!r} is not a file: pull the GGUF with "
                    "`emily model pull URL --sha256 HEX` and point the setting at it"
                )
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import MTMDChatHandler

        from emily.llamacpp import extra_buffers, loading_with

        self.config = config
        self.name = config.caption_name or model.stem
        with loading_with(extra_buffers()):  # no AMX: it crashes (emily.llamacpp)
            self.llm: Any = Llama(
                model_path=str(model),
                chat_handler=MTMDChatHandler(clip_model_path=str(projector), verbose=False),
                n_ctx=config.caption_n_ctx,
                n_gpu_layers=config.caption_gpu_layers,
                verbose=False,
            )
        self._lock = threading.Lock()

    def caption(self, data: bytes) -> CaptionReply:
        """One sentence about the image in ``data`` (checked as :func:`load_image` does).

        Raises
        ------
        MediaError
            Not an image, corrupt, or over ``max_pixels``.
        """
        t0 = time.perf_counter()
        img = load_image(data, self.config.max_pixels).convert("RGB")
        png = io.BytesIO()
        img.save(png, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii")
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": PROMPT},
                ],
            }
        ]
        with self._lock:
            out = self.llm.create_chat_completion(
                messages=messages, max_tokens=self.config.caption_max_tokens, temperature=0.0
            )
        text = str(out["choices"][0]["message"]["content"] or "").strip()
        return CaptionReply(
            text=text,
            elapsed_ms=(time.perf_counter() - t0) * 1000.0,
            model=self.name,
            sha256=sha256_hex(data),
        )
