"""The OpenAPI 3.1 document, built by walking the app's routes and the operation each declares
(``cca_api.operations``): a route cannot be missing from it, and its models are the ones that
validate requests."""

from __future__ import annotations

import re
from html import escape
from typing import Any

from flask import Blueprint, Flask, Response, current_app
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.routing import Rule

from cca_api.operations import ANY_OBJECT, REF, Answer, Operation, declared, operation
from cca_core import __version__

bp = Blueprint("openapi", __name__)
ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}},
}
ALWAYS = (429,)  # rate limits answer any operation
AUTH_ERRORS = (401,)  # and an operation that needs a key, without one
# What the HTTP server answers before the app sees the request, in its own HTML page.
SERVER_LIMITS = {"414": {"description": "the request line is longer than the server reads "
                                        "(gunicorn's limit_request_line, 4094 bytes)",
                         "content": {"text/html": {"schema": {"type": "string"}}}}}
_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


class UndeclaredRoute(RuntimeError):
    """A route of the app declares no operation, so the document would miss it."""


def is_api(endpoint: str) -> bool:
    """Whether a route belongs to the API (not Flask's static files, not the dashboard's HTML
    pages under /ui, which the document does not describe)."""
    return endpoint != "static" and not endpoint.startswith("ui.")


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of every route of ``app``. Raises UndeclaredRoute."""
    paths: dict[str, dict[str, Any]] = {}
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if not is_api(rule.endpoint):
            continue
        found = declared(app.view_functions[rule.endpoint])
        if found is None:
            raise UndeclaredRoute(f"{rule.rule} ({rule.endpoint}) declares no operation: add "
                                  "@operation(...) from cca_api.operations under its route")
        models |= _models(found)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):  # type: ignore[operator]
            paths.setdefault(_PARAMETER.sub(r"{\1}", rule.rule), {})[method.lower()] = \
                _operation(found, rule)
    _, defs = models_json_schema(sorted(models, key=lambda pair: (pair[0].__name__, pair[1])),
                                 ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "cca API", "version": __version__},
        "paths": paths,
        "components": {"schemas": {**defs.get("$defs", {}), "Error": ERROR_SCHEMA},
                       "securitySchemes": {
                           "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                           "bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"apiKey": []}, {"bearer": []}],
    }


def _models(found: Operation) -> set[tuple[type[BaseModel], JsonSchemaMode]]:
    """The models the operation names: what it reads is validated, what it answers serialised."""
    read: set[tuple[type[BaseModel], JsonSchemaMode]] = {
        (model, "validation") for model in (found.body,) if model is not None}
    answered: set[tuple[type[BaseModel], JsonSchemaMode]] = {
        (answer.schema, "serialization") for answer in found.answers.values()
        if isinstance(answer.schema, type)}
    return read | answered


def _schema(schema: Any) -> dict[str, Any]:
    if isinstance(schema, type):
        return {"$ref": REF.format(model=schema.__name__)}
    return dict(schema)


def _answer(answer: Answer) -> dict[str, Any]:
    if answer.schema is None:
        return {"description": answer.description}
    return {"description": answer.description,
            "content": {answer.media: {"schema": _schema(answer.schema)}}}


def _operation(found: Operation, rule: Rule) -> dict[str, Any]:
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in sorted(rule.arguments)]
    if found.query is not None:
        parameters += [{"name": name, "in": "query", "required": False, "schema": schema}
                       for name, schema in found.query.model_json_schema()["properties"].items()]
    parameters += [{"name": name, "in": "header", "required": False, "schema": dict(schema)}
                   for name, schema in found.headers.items()]
    errors = (*ALWAYS, *(() if found.public else AUTH_ERRORS), *found.errors)
    out: dict[str, Any] = {
        "summary": found.summary,
        "responses": {**{str(status): _answer(answer) for status, answer in found.answers.items()},
                      **{str(status): {"description": "error", "content": {"application/json": {
                          "schema": {"$ref": REF.format(model="Error")}}}}
                         for status in sorted(errors)},
                      **SERVER_LIMITS},
    }
    if parameters:
        out["parameters"] = parameters
    if found.body is not None:
        out["requestBody"] = {"required": True,
                              "content": {"application/json": {"schema": _schema(found.body)}}}
    if found.public:
        out["security"] = []
    return out


@bp.get("/api/v1/openapi.json")
@operation("This document", ANY_OBJECT)
def openapi() -> dict[str, Any]:
    return build_spec(current_app)


@bp.get("/api/v1/docs")
@operation("A page listing every operation", {"type": "string"}, media="text/html")
def docs() -> Response:
    """A self-contained page (no CDN: fleets often run offline) listing every operation."""
    rows = "".join(
        f"<tr><td><code>{escape(method.upper())}</code></td><td><code>{escape(path)}</code></td>"
        f"<td>{escape(op['summary'])}</td></tr>"
        for path, ops in build_spec(current_app)["paths"].items() for method, op in ops.items())
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>cca API</title></head><body>"
            f"<h1>cca API {escape(__version__)}</h1><p>Machine-readable: "
            f"<a href='/api/v1/openapi.json'>/api/v1/openapi.json</a> (OpenAPI 3.1).</p>"
            f"<table border='1' cellpadding='4'>{rows}</table></body></html>")
    return Response(page, mimetype="text/html")
