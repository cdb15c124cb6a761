"""The API shapes of the code index."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cca_core.search.schemas import SearchInfo, SearchModeName


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodeIndexCreate(_Body):
    path: str = Field(min_length=1, max_length=4096)
    extensions: list[str] | None = Field(None, max_length=100)  # default: code.extensions
    excludes: list[str] | None = Field(None, max_length=200)  # names or globs; default: code.excludes


class CodeSearch(_Body):
    query: str = Field(min_length=1, max_length=2000)
    language: str | None = Field(None, max_length=40)
    path_prefix: str | None = Field(None, max_length=4096)
    root: str | None = Field(None, max_length=4096)
    limit: int = Field(10, ge=1, le=50)
    mode: SearchModeName = "hybrid"


class CodeHit(BaseModel):
    root: str
    path: str
    language: str | None
    symbol: str | None
    kind: str
    start_line: int
    end_line: int
    content: str
    score: float


class CodeResults(SearchInfo):
    results: list[CodeHit]


class CodeStats(BaseModel):
    roots: list[dict[str, Any]]
    files: int
    chunks: int
    by_language: dict[str, int]
    space: str
    embedded: int
    not_embedded: int


def code_hit(row: dict[str, Any]) -> CodeHit:
    return CodeHit(**{name: row.get(name) for name in CodeHit.model_fields})
