"""``/v1/embeddings`` over real HTTP: the shared MiniLM embedder's vectors, as the official
client and LangChain's ``OpenAIEmbeddings`` read them."""

from __future__ import annotations

import base64

import numpy as np
import openai
import pytest
from langchain_openai import OpenAIEmbeddings

from emily.embed import Embedder
from tests.fixtures.llm import RunningInference

pytestmark = pytest.mark.slow
TEXTS = ["Gulls circle the harbour.", "Seabirds fly over the port.", "The invoice is overdue."]


@pytest.fixture(scope="module")
def client(inference_service: RunningInference) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{inference_service.http_url}/v1", api_key="unused", max_retries=0, timeout=120
    )


def test_vectors_are_the_shared_embedders(client: openai.OpenAI) -> None:
    out = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)
    got = np.array([d.embedding for d in sorted(out.data, key=lambda d: d.index)])
    assert got.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, Embedder().embed(TEXTS), atol=1e-5)
    assert got[0] @ got[1] > got[0] @ got[2]  # the two sentences about birds are closer
    assert out.usage.prompt_tokens > len(TEXTS) and out.model == "all-MiniLM-L6-v2"
    assert "all-MiniLM-L6-v2" in [m.id for m in client.models.list().data]


def test_base64_encoding_holds_the_same_floats(client: openai.OpenAI) -> None:
    plain = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS[0])
    raw = client.embeddings.with_raw_response.create(
        model="all-MiniLM-L6-v2", input=TEXTS[0], encoding_format="base64"
    )
    encoded = raw.http_response.json()["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    np.testing.assert_array_equal(decoded, np.array(plain.data[0].embedding, dtype=np.float32))


def test_unknown_model_and_other_dimensions_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="all-MiniLM-L6-v2"):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.BadRequestError, match="384 dimensions"):
        client.embeddings.create(model="all-MiniLM-L6-v2", input="x", dimensions=64)
    with pytest.raises(openai.BadRequestError, match="token arrays"):
        client.embeddings.create(model="all-MiniLM-L6-v2", input=[])


def test_langchain_openai_embeddings(inference_service: RunningInference) -> None:
    lc = OpenAIEmbeddings(
        model="all-MiniLM-L6-v2",
        base_url=f"{inference_service.http_url}/v1",
        api_key="unused",  # type: ignore[arg-type]
        check_embedding_ctx_length=False,  # it would count tokens with OpenAI's tokenizer
        max_retries=0,
    )
    docs = lc.embed_documents(TEXTS)
    query = lc.embed_query("birds by the sea")
    assert len(docs) == 3 and len(query) == 384
    scores = np.array(docs) @ np.array(query)
    assert scores.argmax() in (0, 1)
