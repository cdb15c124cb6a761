"""The OpenAPI 3.1 document, built from the same pydantic models that validate requests."""

from __future__ import annotations

from html import escape
from typing import Any

from flask import Blueprint, Response
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from cca_api import schedules
from cca_api.keys import KeyCreate
from cca_api.tasks import EventsQuery, ListQuery
from cca_core import __version__
from cca_core.access.key_limits import KeyLimits
from cca_core.schedules.schemas import RunPage, ScheduleCreate, SchedulePage, ScheduleUpdate, ScheduleView
from cca_core.tasks.schemas import EventPage, TaskCreate, TaskPage, TaskView

bp = Blueprint("openapi", __name__)
REF = "#/components/schemas/{model}"
ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}},
}
ANY_OBJECT = {"type": "object", "additionalProperties": True}
TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
SCHEDULE_ID = {"name": "schedule_id", "in": "path", "required": True, "schema": {"type": "string"}}
KEY_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
REQUESTS = (TaskCreate, ScheduleCreate, ScheduleUpdate, KeyCreate)
KEY_VIEW: dict[str, Any] = {
    "type": "object", "required": ["name", "role", "tenant", *KeyLimits.model_fields],
    "additionalProperties": True,
    "properties": {"name": {"type": "string"}, "role": {"type": "string"},
                   "tenant": {"type": "string"},
                   **KeyLimits.model_json_schema(ref_template=REF)["properties"]}}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json({"$ref": REF.format(model="Error")}, "error") for code in codes}


def _query(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    return [{"name": name, "in": "query", "required": False, "schema": prop}
            for name, prop in schema["properties"].items()]


def _op(summary: str, ok: str, schema: dict[str, Any], *errors: int, **extra: Any) -> dict[str, Any]:
    return {"summary": summary,
            "responses": {ok: _json(schema, summary), **_errors(401, 429, *errors)}, **extra}


def build_spec() -> dict[str, Any]:
    """Return the OpenAPI document of the task and fleet API."""
    _, defs = models_json_schema(
        [(model, "validation" if model in REQUESTS else "serialization")
         for model in (TaskCreate, TaskView, TaskPage, EventPage, ScheduleCreate, ScheduleUpdate,
                       ScheduleView, SchedulePage, RunPage, KeyCreate)],
        ref_template=REF)
    schemas = {**defs["$defs"], "Error": ERROR_SCHEMA}
    tasks: dict[str, Any] = {
        "post": _op("Submit an agent task", "202", _ref(TaskView), 400, 403, 409, 413, 415, 422,
                    requestBody={"required": True,
                                 "content": {"application/json": {"schema": _ref(TaskCreate)}}},
                    parameters=[{"name": "Idempotency-Key", "in": "header", "required": False,
                                 "schema": {"type": "string", "maxLength": 200}}]),
        "get": _op("List tasks, newest first", "200", _ref(TaskPage), 422,
                   parameters=_query(ListQuery)),
    }
    tasks["post"]["responses"]["200"] = _json(_ref(TaskView), "the task an Idempotency-Key already made")
    paths = {
        "/api/v1/tasks": tasks,
        "/api/v1/tasks/{task_id}": {"get": _op("Get a task", "200", _ref(TaskView), 404,
                                               parameters=[TASK_ID])},
        "/api/v1/tasks/{task_id}/cancel": {"post": _op("Cancel a task", "200", _ref(TaskView), 404, 409,
                                                       parameters=[TASK_ID])},
        "/api/v1/tasks/{task_id}/events": {"get": _op(
            "Events recorded so far, in order", "200", _ref(EventPage), 404, 422,
            parameters=[TASK_ID, *_query(EventsQuery)])},
        "/health": {"get": {"summary": "Liveness of the API, Postgres, Redis and workers",
                            "security": [], "responses": {"200": _json(ANY_OBJECT, "up"),
                                                          "503": _json(ANY_OBJECT, "down"),
                                                          **_errors(429)}}},
        "/api/v1/status": {"get": _op("Fleet status", "200", ANY_OBJECT)},
        "/api/v1/workers": {"get": _op("Workers online", "200", ANY_OBJECT)},
        "/api/v1/redis/status": {"get": _op("Redis status", "200", ANY_OBJECT)},
        "/api/v1/postgres/status": {"get": _op("Postgres status", "200", ANY_OBJECT)},
        "/metrics": {"get": {"summary": "Prometheus metrics of the fleet", "responses": {
            "200": {"description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
            **_errors(401, 429)}}},
        "/api/v1/openapi.json": {"get": {"summary": "This document",
                                         "responses": {"200": _json(ANY_OBJECT, "OpenAPI 3.1")}}},
        "/api/v1/docs": {"get": {"summary": "A page listing every operation",
                                 "responses": {"200": {"description": "HTML", "content": {
                                     "text/html": {"schema": {"type": "string"}}}}}}},
        **schedule_paths(),
        **key_paths(),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "cca API", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"apiKey": []}, {"bearer": []}],
    }


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}


def schedule_paths() -> dict[str, Any]:
    """The schedule endpoints: recurring tasks fired by the beat."""
    one = [SCHEDULE_ID]
    return {
        "/api/v1/schedules": {
            "post": _op("Create a schedule", "201", _ref(ScheduleView), 400, 403, 409, 415, 422,
                        requestBody=_body(ScheduleCreate)),
            "get": _op("List schedules by name", "200", _ref(SchedulePage), 422,
                       parameters=_query(schedules.ListQuery)),
        },
        "/api/v1/schedules/{schedule_id}": {
            "get": _op("Get a schedule", "200", _ref(ScheduleView), 404, parameters=one),
            "patch": _op("Change a schedule (the fields given)", "200", _ref(ScheduleView), 400,
                         403, 404, 409, 415, 422, parameters=one, requestBody=_body(ScheduleUpdate)),
            "delete": {"summary": "Delete a schedule (its tasks stay)", "parameters": one,
                       "responses": {"204": {"description": "deleted"}, **_errors(401, 403, 404)}},
        },
        "/api/v1/schedules/{schedule_id}/run": {"post": _op(
            "Run a schedule's task now", "202", _ref(TaskView), 403, 404, 422, parameters=one)},
        "/api/v1/schedules/{schedule_id}/pause": {"post": _op(
            "Pause a schedule", "200", _ref(ScheduleView), 403, 404, parameters=one)},
        "/api/v1/schedules/{schedule_id}/resume": {"post": _op(
            "Resume a schedule", "200", _ref(ScheduleView), 403, 404, parameters=one)},
        "/api/v1/schedules/{schedule_id}/runs": {"get": _op(
            "Tasks a schedule created, latest fire first", "200", _ref(RunPage), 404, 422,
            parameters=[SCHEDULE_ID, *_query(schedules.RunsQuery)])},
    }


def key_paths() -> dict[str, Any]:
    """The managed-key endpoints (admin only): a new key's secret is shown once."""
    created = {**KEY_VIEW, "properties": {**KEY_VIEW["properties"], "key": {"type": "string"}}}
    return {
        "/api/v1/keys": {
            "post": _op("Create a managed key (its secret is in this answer only)", "201",
                        created, 400, 403, 409, 415, 422, requestBody=_body(KeyCreate)),
            "get": _op("List managed keys", "200", {
                "type": "object", "required": ["keys"],
                "properties": {"keys": {"type": "array", "items": KEY_VIEW}}}, 403),
        },
        "/api/v1/keys/{name}/revoke": {"post": _op(
            "Revoke a managed key (refused everywhere within seconds)", "200", KEY_VIEW, 403, 404,
            parameters=[KEY_NAME])},
    }


@bp.get("/api/v1/openapi.json")
def openapi() -> dict[str, Any]:
    return build_spec()


@bp.get("/api/v1/docs")
def docs() -> Response:
    """A self-contained page (no CDN: fleets often run offline) listing every operation."""
    rows = "".join(
        f"<tr><td><code>{escape(method.upper())}</code></td><td><code>{escape(path)}</code></td>"
        f"<td>{escape(op['summary'])}</td></tr>"
        for path, ops in build_spec()["paths"].items() for method, op in ops.items())
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>cca API</title></head><body>"
            f"<h1>cca API {escape(__version__)}</h1><p>Machine-readable: "
            f"<a href='/api/v1/openapi.json'>/api/v1/openapi.json</a> (OpenAPI 3.1).</p>"
            f"<table border='1' cellpadding='4'>{rows}</table></body></html>")
    return Response(page, mimetype="text/html")
