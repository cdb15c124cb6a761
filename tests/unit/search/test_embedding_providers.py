"""The HTTP embedding providers against a local server speaking each wire format: batching,
order, the bearer key, retries on 429 and 5xx, no retry on 4xx, timeouts, bad answers."""

from __future__ import annotations

import pytest

from cca_core.embeddings import EmbeddingUnavailable
from cca_core.embeddings.providers import embedder_for
from cca_core.embeddings.remote import HttpEmbedder
from cca_core.settings import EmbeddingSettings
from tests.fakes.embedding_api import EmbeddingAPI, vector_of

TEXTS = ["retry with backoff", "a cat on a mat", "parse the config", "retry later", "x"]


@pytest.fixture
def service():
    with EmbeddingAPI(dimension=8) as api:
        yield api


def embedder(service: EmbeddingAPI, provider: str, **options) -> HttpEmbedder:
    url = service.url + ("/v1" if provider == "openai" else "")
    return HttpEmbedder(provider, url, "m", sleep=lambda _: None,
                        **{"batch_size": 2, "max_retries": 2, **options})


@pytest.mark.parametrize("provider,path", [("ollama", "/api/embed"), ("openai", "/v1/embeddings")])
def test_texts_go_in_batches_and_come_back_in_order(service, provider, path):
    found = embedder(service, provider, api_key="sk-test").embed(TEXTS)
    assert found == [vector_of(text, 8) for text in TEXTS]
    assert [r["path"] for r in service.requests] == [path] * 3  # 2 + 2 + 1
    assert [r["body"]["input"] for r in service.requests] == [TEXTS[0:2], TEXTS[2:4], TEXTS[4:]]
    assert {r["body"]["model"] for r in service.requests} == {"m"}
    assert {r["authorization"] for r in service.requests} == {"Bearer sk-test"}
    assert embedder(service, provider).dimension == 8


@pytest.mark.parametrize("provider", ["ollama", "openai"])
@pytest.mark.parametrize("status", [429, 500, 503])
def test_overload_and_server_errors_are_retried(service, provider, status):
    service.fail_next(status, times=2)
    assert embedder(service, provider).embed(["a"]) == [vector_of("a", 8)]
    assert len(service.requests) == 3


@pytest.mark.parametrize("provider", ["ollama", "openai"])
def test_the_last_failure_says_what_the_provider_said(service, provider):
    service.fail_next(500, times=3)
    with pytest.raises(EmbeddingUnavailable, match="answered 500: scripted failure 500"):
        embedder(service, provider).embed(["a"])
    assert len(service.requests) == 3


@pytest.mark.parametrize("provider", ["ollama", "openai"])
def test_a_client_error_is_not_retried(service, provider):
    service.fail_next(400)
    with pytest.raises(EmbeddingUnavailable, match="answered 400"):
        embedder(service, provider).embed(["a"])
    assert len(service.requests) == 1


def test_a_slow_provider_times_out(service):
    service.delay_s = 1.0
    with pytest.raises(EmbeddingUnavailable, match="unreachable: ReadTimeout"):
        embedder(service, "ollama", timeout_s=0.2, max_retries=1).embed(["a"])
    assert len(service.requests) == 2


def test_nothing_listening_is_unavailable_not_a_crash():
    down = HttpEmbedder("ollama", "http://127.0.0.1:9", "m", max_retries=1, sleep=lambda _: None)
    with pytest.raises(EmbeddingUnavailable, match="unreachable: ConnectError"):
        down.embed(["a"])


def test_a_dimension_other_than_configured_is_refused(service):
    with pytest.raises(EmbeddingUnavailable, match="gave 8 dimensions, embeddings.dimension says 4"):
        embedder(service, "openai", dimension=4).embed(["a"])


def test_the_settings_pick_the_provider_and_its_defaults():
    ollama = embedder_for(EmbeddingSettings(provider="ollama"))
    assert ollama.space == "ollama/nomic-embed-text"
    openai = embedder_for(EmbeddingSettings(provider="openai", model="text-embedding-3-large"))
    assert openai.space == "openai/text-embedding-3-large"
    with pytest.raises(EmbeddingUnavailable, match="provider is none"):
        embedder_for(EmbeddingSettings(provider="none")).embed(["a"])


def test_the_local_model_needs_no_service_and_places_meaning_near():
    local = embedder_for(EmbeddingSettings())
    retry, backoff, cat = local.embed(["retry a failed request later", "wait longer between "
                                       "attempts after an error", "the cat sat on the mat"])
    assert local.space == "local/all-MiniLM-L6-v2" and local.dimension == len(retry) == 384

    def cosine(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(retry, backoff) > cosine(retry, cat) + 0.1
    assert abs(cosine(cat, cat) - 1) < 1e-4
