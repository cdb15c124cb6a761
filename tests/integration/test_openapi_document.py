"""The OpenAPI document cannot drift from the routes: every route of the app is in it."""

from __future__ import annotations

import re

import pytest

from cca_api import create_app
from cca_api.openapi import build_spec

pytestmark = pytest.mark.integration


def app_operations(app) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        operations |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return operations


def document_operations() -> set[tuple[str, str]]:
    return {(method, path) for path, ops in build_spec()["paths"].items() for method in ops}


def test_every_route_of_the_app_is_in_the_openapi_document(make_settings):
    missing = app_operations(create_app(make_settings())) - document_operations()
    assert not missing, f"routes missing from the OpenAPI document: {sorted(missing)}"


def test_the_document_names_no_operation_the_app_does_not_have(make_settings):
    extra = document_operations() - app_operations(create_app(make_settings()))
    assert not extra, f"operations in the document that no route serves: {sorted(extra)}"
