"""Hybrid search on Postgres: pgvector HNSW nearest neighbours and full text, fused by
reciprocal rank (what memory and the code index share), and the background jobs that fill
them."""
