"""Each route declares its operation where it is: ``@operation(...)`` under its ``@bp.get``.

The OpenAPI document (``cca_api.openapi``) is built by walking the app's routes and reading
these declarations, so a route cannot be left out of it (building fails on an undeclared one)
and a view cannot parse a body or query other than the one it declares (:func:`body` and
:func:`query` check it).

Why not a library: flask-openapi3, spectree and APIFlask each validate requests themselves
and answer errors in their own format; cca's errors (422 JSON naming the field, NUL refused,
415 for a non-JSON body) are part of its API. A declaration and a walk of ``url_map`` are
all this needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import current_app, request
from pydantic import BaseModel

from cca_api.body import parse_json, parse_query

Model = TypeVar("Model", bound=BaseModel)
View = TypeVar("View", bound=Callable[..., Any])
Schema = type[BaseModel] | Mapping[str, Any] | None  # a model, a JSON schema, or no content
_ATTRIBUTE = "cca_operation"
REF = "#/components/schemas/{model}"  # where the document keeps the models' schemas
ANY_OBJECT: Mapping[str, Any] = {"type": "object", "additionalProperties": True}


@dataclass(frozen=True)
class Answer:
    """One success answer: its schema and media type."""

    schema: Schema
    description: str = "OK"
    media: str = "application/json"


@dataclass(frozen=True)
class Operation:
    """What a route takes and answers. ``errors`` lists the error statuses beyond those every
    operation may answer (401 without a key unless ``public``, 429 for rate limits)."""

    summary: str
    answers: Mapping[int, Answer]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    public: bool = False
    headers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> schema


def operation(summary: str, answer: Schema, *, status: int = 200, media: str = "application/json",
              more: Mapping[int, Answer] | None = None, **fields: Any) -> Callable[[View], View]:
    """Declare the view's operation: ``answer`` for ``status``, ``more`` answers, and the
    other :class:`Operation` fields."""
    declared = Operation(summary, {status: Answer(answer, summary, media), **(more or {})},
                         **fields)

    def declare(view: View) -> View:
        setattr(view, _ATTRIBUTE, declared)
        return view

    return declare


def declared(view: Callable[..., Any]) -> Operation | None:
    """The operation ``view`` declares, if any."""
    return getattr(view, _ATTRIBUTE, None)


def body(model: type[Model]) -> Model:
    """The request's JSON body as ``model``, which must be the body the view declares."""
    _check("body", model, _current().body)
    return parse_json(request, model)


def query(model: type[Model]) -> Model:
    """The request's query parameters as ``model``, which must be the query the view
    declares."""
    _check("query", model, _current().query)
    return parse_query(request, model)


def _current() -> Operation:
    view = current_app.view_functions[request.endpoint or ""]
    found = declared(view)
    if found is None:
        raise RuntimeError(f"{request.endpoint} declares no operation (cca_api.operations)")
    return found


def _check(part: str, model: type[BaseModel], declared_model: type[BaseModel] | None) -> None:
    if model is not declared_model:
        raise RuntimeError(f"{request.endpoint} parses its {part} as {model.__name__} but declares "
                           f"{getattr(declared_model, '__name__', None)}")
