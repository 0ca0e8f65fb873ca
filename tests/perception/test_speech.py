"""Whisper tiny.en on speech spoken by espeak-ng in the test, and on bad clips."""

from __future__ import annotations

import io

import numpy as np
import pytest

from emily.perception.errors import MediaError
from emily.perception.speech import decode
from emily.perception.wer import wer
from tests.perception.media import SENTENCES, note, silence, speak

#: Corpus WER bound for :data:`SENTENCES`. tiny.en scores about 0.2 on this synthetic
#: voice (bench/perception.py prints the figure on 50+ sentences); the bound leaves room
#: for CTranslate2's thread scheduling, which can change a greedy decode's ties.
WER_BOUND = 0.35


def test_transcripts_stay_under_the_wer_bound(transcriber) -> None:
    hyps = [transcriber.transcribe(speak(s)).text for s in SENTENCES]
    assert wer(SENTENCES, hyps) < WER_BOUND, hyps


def test_reply_carries_segments_timing_language_and_provenance(transcriber) -> None:
    clip = speak("The red kite nested in the old oak by the river.")
    reply = transcriber.transcribe(clip)
    assert reply.model == "whisper-tiny.en"
    assert reply.language == "en"
    assert 2.0 < reply.duration_s < 6.0
    assert reply.segments, "speech yields at least one segment"
    for seg in reply.segments:
        assert 0.0 <= seg.start_s < seg.end_s <= reply.duration_s + 0.5
        assert 0.0 < seg.confidence <= 1.0
    assert 0.0 < reply.confidence <= 1.0
    assert reply.elapsed_ms > 0
    assert len(reply.sha256) == 64
    assert "river" in reply.text.lower()


def test_english_only_model_refuses_another_language(transcriber) -> None:
    with pytest.raises(MediaError, match="English-only"):
        transcriber.transcribe(speak("hello"), language="de")


def test_silence_gives_no_text(transcriber) -> None:
    reply = transcriber.transcribe(silence(2.0))
    assert reply.text == ""
    assert reply.segments == []
    assert reply.confidence == 0.0


def test_an_image_is_not_audio() -> None:
    with pytest.raises(MediaError, match="image, not audio"):
        decode(note(["hello"]), 600)


@pytest.mark.parametrize(
    "data",
    [b"definitely not a media container" * 10, b"RIFF\x10\x00\x00\x00WAVEfmt "],
    ids=["garbage", "truncated-wav"],
)
def test_corrupt_containers_are_refused(data: bytes) -> None:
    with pytest.raises(MediaError, match="audio"):
        decode(data, 600)


def test_cut_clip_is_refused_or_decoded_to_its_readable_part() -> None:
    clip = speak("The train to Edinburgh leaves from platform four.")
    cut = clip[: len(clip) // 2]
    assert 0.5 < len(decode(cut, 600)) / 16_000 < 2.5


def test_empty_clip_is_refused() -> None:
    with pytest.raises(MediaError, match="empty"):
        decode(silence(0.0), 600)


def test_over_long_clip_is_refused() -> None:
    with pytest.raises(MediaError, match="at most 5 s"):
        decode(silence(7.0), 5)


def test_decoding_matches_faster_whisper_own_decoder() -> None:
    from faster_whisper.audio import decode_audio

    clip = speak("I left my keys in the blue coat in the hall.")
    ours = decode(clip, 600)
    theirs = decode_audio(io.BytesIO(clip), sampling_rate=16_000)
    assert abs(len(ours) - len(theirs)) <= 64
    n = min(len(ours), len(theirs))
    assert np.abs(ours[:n] - theirs[:n]).max() < 1e-3
