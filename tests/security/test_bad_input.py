"""Every class of bad input against every route of the OpenAPI document: each is refused with
the one JSON error shape (a stable code, a message, the field where there is one), never a
traceback, and changes nothing. The route list comes from the document, which a test keeps
equal to the app's routes (tests/integration/test_openapi_document.py)."""

from __future__ import annotations

import pytest

from cca_api import create_app, routes
from cca_api.openapi import build_spec

pytestmark = [pytest.mark.integration, pytest.mark.attack]
ADMIN = "bad-input-admin-key-0123456789"
ADMIN_HEADERS = {"X-API-Key": ADMIN}
BAD_ID = "not-an-id%00'--"
PATH_VALUES = {"task_id": "3f1c2d4e-0000-4000-8000-000000000000", "schedule_id":
               "3f1c2d4e-0000-4000-8000-000000000000", "name": "nobody",
               "workflow_id": "3f1c2d4e-0000-4000-8000-000000000000",
               "job_id": "3f1c2d4e-0000-4000-8000-000000000000",
               "webhook_id": "3f1c2d4e-0000-4000-8000-000000000000"}


def operations(*, with_body: bool = False, with_path: bool = False,
               with_query: bool = False, needing_a_key: bool = False) -> list[tuple[str, str]]:
    found = []
    for path, ops in build_spec(routes())["paths"].items():
        for method, op in ops.items():
            params = op.get("parameters", [])
            if needing_a_key and op.get("security") == []:
                continue
            if with_body and "requestBody" not in op:
                continue
            if with_path and not any(p["in"] == "path" for p in params):
                continue
            if with_query and not any(p["in"] == "query" for p in params):
                continue
            found.append((method, path))
    return found


def url(path: str, **values: str) -> str:
    return path.format(**{**PATH_VALUES, **values})


@pytest.fixture
def client(make_settings):
    settings = make_settings(daemon={"require_auth": True, "api_keys": [ADMIN]},
                             security={"rate_limit_per_minute": 0, "ip_rate_limit_per_minute": 0})
    return create_app(settings).test_client()


def assert_error(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "<html" not in text.lower()
    error = response.get_json()["error"]
    assert error["code"] and error["message"]
    if field is not None:
        assert error.get("field") == field, error
    return error


@pytest.mark.parametrize(("method", "path"), operations(needing_a_key=True))
def test_a_request_without_a_key_is_refused(client, method, path):
    assert_error(client.open(url(path), method=method.upper()), 401)


@pytest.mark.parametrize(("method", "path"), operations(needing_a_key=True))
def test_a_request_with_a_wrong_key_is_refused(client, method, path):
    response = client.open(url(path), method=method.upper(),
                           headers={"Authorization": "Bearer ccat_forged_token"})
    assert_error(response, 401)


@pytest.mark.parametrize(("method", "path"), operations(with_body=True))
def test_a_body_that_is_not_json_is_refused(client, method, path):
    response = client.open(url(path), method=method.upper(), headers=ADMIN_HEADERS,
                           data="prompt=x", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415)


@pytest.mark.parametrize(("method", "path"), operations(with_body=True))
def test_malformed_json_is_refused(client, method, path):
    response = client.open(url(path), method=method.upper(), headers=ADMIN_HEADERS,
                           data='{"prompt": "x",', content_type="application/json")
    assert_error(response, 400)


@pytest.mark.parametrize(("method", "path"), operations(with_body=True))
def test_json_that_is_not_an_object_is_refused(client, method, path):
    response = client.open(url(path), method=method.upper(), headers=ADMIN_HEADERS,
                           json=["prompt", "x"])
    assert_error(response, 400)


@pytest.mark.parametrize(("method", "path"), operations(with_body=True))
def test_an_unknown_field_is_refused_by_name(client, method, path):
    response = client.open(url(path), method=method.upper(), headers=ADMIN_HEADERS,
                           json={"__proto__": {"admin": True}})
    error = assert_error(response, 422)
    assert error.get("field"), error


@pytest.mark.parametrize(("method", "path"), operations(with_body=True))
def test_an_oversized_body_is_refused(client, method, path):
    response = client.open(url(path), method=method.upper(), headers=ADMIN_HEADERS,
                           data='{"prompt": "' + "x" * (2 * 1024 * 1024) + '"}',
                           content_type="application/json")
    assert_error(response, 413)


@pytest.mark.parametrize(("method", "path"), operations(with_path=True))
def test_a_hostile_id_in_the_path_is_not_found(client, method, path):
    values = {name: BAD_ID for name in PATH_VALUES}
    response = client.open(url(path, **values), method=method.upper(), headers=ADMIN_HEADERS,
                           json={} if method in ("post", "patch") else None)
    assert_error(response, 404)


@pytest.mark.parametrize(("method", "path"), operations(with_query=True))
def test_an_unknown_query_parameter_is_refused_by_name(client, method, path):
    response = client.open(url(path) + "?evil=1", method=method.upper(), headers=ADMIN_HEADERS)
    assert_error(response, 422, field="evil")


@pytest.mark.parametrize(("method", "path"), operations(with_query=True))
def test_an_out_of_range_limit_is_refused_by_name(client, method, path):
    response = client.open(url(path) + "?limit=100000000000000000000", method=method.upper(),
                           headers=ADMIN_HEADERS)
    if response.status_code == 422:
        assert_error(response, 422, field="limit")
    else:
        assert_error(response, 404)  # the path's id does not exist: checked before the query


def test_bad_input_leaves_no_task_behind(client):
    for body in ({"prompt": ""}, {"prompt": "x", "priority": "urgent"},
                 {"prompt": "x", "token_budget": -1}, {"prompt": "x", "evil": 1}):
        assert_error(client.post("/api/v1/tasks", json=body, headers=ADMIN_HEADERS), 422)
    assert client.get("/api/v1/tasks", headers=ADMIN_HEADERS).get_json()["tasks"] == []
