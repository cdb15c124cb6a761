"""The OpenAPI document cannot drift from the routes: it is built from them, every route of the
app is in it, and a view parses only the body and query it declares."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from pydantic import BaseModel

from cca_api import create_app, routes
from cca_api import operations as ops
from cca_api.openapi import UndeclaredRoute, build_spec, is_api
from cca_core.tasks.schemas import TaskCreate, TaskView

pytestmark = pytest.mark.integration


def app_operations(app) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        if not is_api(rule.endpoint):  # Flask's static files, the dashboard's pages
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        operations |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return operations


def document_operations(app) -> set[tuple[str, str]]:
    return {(method, path) for path, ops in build_spec(app)["paths"].items() for method in ops}


def test_the_document_has_exactly_the_routes_of_the_app(make_settings):
    app = create_app(make_settings())
    assert document_operations(app) == app_operations(app)
    assert document_operations(routes()) == app_operations(app)  # what clients are served
    assert ("get", "/metrics") in app_operations(app) and ("post", "/api/v1/keys") in app_operations(app)
    assert any(rule.rule == "/ui/tasks" for rule in app.url_map.iter_rules())  # served, not described


def test_a_route_that_declares_no_operation_fails_the_document():
    app = routes()
    app.add_url_rule("/api/v1/new", "new", lambda: {})
    with pytest.raises(UndeclaredRoute, match="/api/v1/new"):
        build_spec(app)


def test_a_view_may_parse_only_the_body_it_declares():
    class Other(BaseModel):
        prompt: str

    app = Flask("t")

    @app.post("/declared")
    @ops.operation("declared", TaskView, body=TaskCreate)
    def declared_view():
        return {"prompt": ops.body(TaskCreate).prompt}

    @app.post("/drifted")
    @ops.operation("drifted", TaskView, body=TaskCreate)
    def drifted_view():
        return {"prompt": ops.body(Other).prompt}

    with app.test_request_context("/declared", method="POST", json={"prompt": "hi"}):
        app.preprocess_request()
        assert declared_view() == {"prompt": "hi"}
    with app.test_request_context("/drifted", method="POST", json={"prompt": "hi"}), \
            pytest.raises(RuntimeError, match="parses its body as Other but declares TaskCreate"):
        drifted_view()


def test_the_models_a_route_declares_are_the_documents_schemas():
    spec = build_spec(routes())
    submit = spec["paths"]["/api/v1/tasks"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TaskCreate"}
    assert set(submit["responses"]) >= {"200", "202", "401", "422", "429"}
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert "TaskCreate" in spec["components"]["schemas"] and "Error" in spec["components"]["schemas"]
    assert spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"]
