"""Code search quality on the committed labelled set (tests/data/code_search_queries.yaml):
cca_core at a pinned commit of this repository, indexed with the local model into real
Postgres with pgvector. Hybrid recall@5 must reach 0.8; vector-only and full-text-only are
printed beside it (bench/code_search.py reports the same figures)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from cca_core.code.indexing import Tree, index_tree
from cca_core.embeddings.providers import embedder_for
from cca_core.infra.db import make_engine
from cca_core.search.fusion import any_of_words, words
from cca_core.settings import CodeSettings, EmbeddingSettings
from tests.support.code_quality import LABELS, pinned_tree, scores

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def indexed(pg_server, tmp_path_factory):
    name = "code_quality"
    pg_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "cca_template"')
    url = pg_server.url.replace("/cca_template?", f"/{name}?")
    engine = make_engine(url, pool_size=2)
    root = pinned_tree(tmp_path_factory.mktemp("pinned"))
    tree = Tree("quality", root, (".py",), tuple(CodeSettings().excludes))
    progress, cancelled = index_tree(engine, embedder_for(EmbeddingSettings()), tree, CodeSettings(),
                                     32, lambda _: False)
    assert not cancelled and progress.errors == 0 and progress.chunks > 300
    yield engine
    engine.dispose()
    pg_server.execute(f'DROP DATABASE "{name}"')


def test_the_set_is_big_enough_and_tests_meaning_not_spelling(indexed):
    queries = LABELS["queries"]
    assert len(queries) >= 40
    with indexed.connect() as connection:
        for item in queries:
            name = f"{item['symbol']} {Path(item['path']).stem}"
            shared = connection.execute(text(
                "SELECT to_tsvector('english', :name) @@ to_tsquery('english', :query)"),
                {"name": words(name), "query": any_of_words(item["query"])}).scalar_one()
            assert not shared, f"{item['query']!r} shares a word stem with {name}"
            exists = connection.execute(text(
                "SELECT count(*) FROM code_chunks WHERE path = :path AND symbol = :symbol"),
                {"path": item["path"], "symbol": item["symbol"]}).scalar_one()
            assert exists == 1, f"no chunk {item['symbol']} in {item['path']}"


def test_hybrid_recall_at_5_reaches_the_target(indexed):
    with indexed.begin() as connection:
        figures = scores(connection, embedder_for(EmbeddingSettings()), "quality")
    print({mode: f"recall@5 {r:.3f} MRR {m:.3f}" for mode, (r, m) in figures.items()})
    assert figures["hybrid"][0] >= 0.8, figures
    assert figures["hybrid"][0] >= figures["full_text"][0]
