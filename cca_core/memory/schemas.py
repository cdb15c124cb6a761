"""The API shapes of memory."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cca_core.search.schemas import SearchInfo, SearchModeName


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _tags(value: list[str]) -> list[str]:
    for tag in value:
        if not tag or len(tag) > 64 or not all(c.isalnum() or c in "_-.:/" for c in tag):
            raise ValueError("each tag is 1-64 letters, digits or _ - . : /")
    return value


class MemoryCreate(_Body):
    content: str = Field(min_length=1, max_length=20_000)
    kind: str = Field("note", min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_-]*$")
    tags: list[str] = Field(default_factory=list, max_length=20)

    _check_tags = field_validator("tags")(_tags)


class MemoryImport(_Body):
    memories: list[MemoryCreate] = Field(max_length=1000)


class MemorySearch(_Body):
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(5, ge=1, le=50)
    kind: str | None = Field(None, max_length=40)
    tags: list[str] = Field(default_factory=list, max_length=20)
    mode: SearchModeName = "hybrid"

    _check_tags = field_validator("tags")(_tags)


class MemoryView(BaseModel):
    id: UUID
    kind: str
    content: str
    tags: list[str]
    source_task_id: UUID | None
    successes: int
    failures: int
    created_at: datetime
    score: float | None = None  # fused rank score of a search (higher is better)


class MemoryStored(BaseModel):
    ids: list[UUID]
    degraded: str | None = None  # why they were stored without vectors, if they were


class MemoryResults(SearchInfo):
    results: list[MemoryView]


class MemoryStats(BaseModel):
    total: int
    by_kind: dict[str, int]
    by_space: dict[str, int]
    space: str  # the vector space searches use now
    embedded: int  # memories with a vector in it
    not_embedded: int  # found by full text only until `cca memory reembed`


def memory_view(row: dict[str, Any]) -> MemoryView:
    return MemoryView(**{name: row.get(name) for name in MemoryView.model_fields})
