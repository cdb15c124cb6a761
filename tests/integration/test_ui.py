"""The dashboard's server side with the real Flask app, Postgres and Redis: sign-in makes an
HttpOnly, SameSite=Strict session scoped to /ui (the key is never stored), every page renders
for a signed-in key and redirects otherwise, a form without the session's CSRF token changes
nothing, a tenant sees only its own tasks, keys are for admins, a revoked key's session ends,
and the sign-in's next page is never another site."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Engine

from cca_api import create_app
from cca_core.access.keys import create_key, revoke_key
from cca_core.infra.db import make_session_factory, transaction

pytestmark = pytest.mark.integration
ADMIN = "admin-key-0123456789"
PAGES = ("/ui/tasks", "/ui/workflows", "/ui/workers", "/ui/queues", "/ui/schedules", "/ui/plots",
         "/ui/plots?by=model&hours=72", "/ui/keys")


@pytest.fixture
def app(make_settings):
    return create_app(make_settings(daemon={"require_auth": True, "api_keys": [ADMIN]}))


def sign_in(client, key: str) -> None:
    page = client.get("/ui/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    answer = client.post("/ui/login", data={"api_key": key, "login_token": token, "next": "/ui/tasks"})
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/ui/tasks"), answer.headers


def csrf(client, path: str = "/ui/tasks") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def test_sign_in_makes_a_strict_http_only_session_and_every_page_renders(app):
    client = app.test_client()
    assert client.get("/ui/tasks").headers["Location"].startswith("/ui/login?next=/ui/tasks")
    sign_in(client, ADMIN)
    cookie = client.get_cookie("cca_session", path="/ui")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict" and cookie.path == "/ui"
    assert ADMIN not in cookie.value
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
        assert "<main" in answer.get_data(as_text=True)
    assert client.get("/ui/static/vendor/chart-4.6.1.umd.min.js").status_code == 200
    assert client.post("/ui/logout", data={"csrf_token": csrf(client)}).status_code == 303
    assert client.get("/ui/tasks").status_code == 302


def test_forms_need_the_sessions_csrf_token(app):
    client = app.test_client()
    sign_in(client, ADMIN)
    refused = client.post("/ui/tasks", data={"prompt": "sneaky"})
    assert refused.status_code == 403 and "expired" in refused.get_data(as_text=True)
    assert client.post("/ui/tasks", data={"prompt": "sneaky", "csrf_token": "forged"}).status_code == 403
    assert "sneaky" not in client.get("/ui/tasks").get_data(as_text=True)
    made = client.post("/ui/tasks", data={"prompt": "from the dashboard", "csrf_token": csrf(client),
                                          "priority": "high"})
    assert made.status_code == 303 and "/ui/tasks/" in made.headers["Location"]
    page = client.get(made.headers["Location"]).get_data(as_text=True)
    assert "from the dashboard" in page and "Cancel task" in page
    bad = client.post("/ui/tasks", data={"prompt": "x", "token_budget": "-5", "csrf_token": csrf(client)})
    assert "token_budget" in client.get(bad.headers["Location"]).get_data(as_text=True)
    # A sign-in form without its own token is refused (login CSRF).
    stranger = app.test_client()
    assert "expired" in stranger.post("/ui/login", data={"api_key": ADMIN}).headers["Location"]


def test_tenants_see_their_own_tasks_and_keys_are_for_admins(app, engine: Engine):
    with transaction(make_session_factory(engine)) as session:
        alpha = create_key(session, "alpha", "submitter", tenant="alpha")[1]
        beta = create_key(session, "beta", "submitter", tenant="beta")[1]
    clients = {}
    for name, key in (("alpha", alpha), ("beta", beta)):
        clients[name] = app.test_client()
        sign_in(clients[name], key)
        clients[name].post("/ui/tasks", data={"prompt": f"task of {name}", "csrf_token": csrf(clients[name])})
    alpha_page = clients["alpha"].get("/ui/tasks").get_data(as_text=True)
    assert "task of alpha" in alpha_page and "task of beta" not in alpha_page
    assert clients["alpha"].get("/ui/keys").status_code == 403
    with transaction(make_session_factory(engine)) as session:
        revoke_key(session, "beta")
    assert clients["beta"].get("/ui/tasks").status_code == 302  # signed out by the revocation


def test_a_wrong_key_and_a_foreign_next_page_are_refused(app):
    client = app.test_client()
    page = client.get("/ui/login").get_data(as_text=True)
    token = re.search(r'name="login_token" value="([^"]+)"', page).group(1)
    wrong = client.post("/ui/login", data={"api_key": "nope", "login_token": token})
    assert "Not+signed+in" in wrong.headers["Location"] or "Not%20signed%20in" in wrong.headers["Location"]
    answer = client.post("/ui/login", data={"api_key": ADMIN, "login_token": token,
                                            "next": "https://evil.example/"})
    assert answer.headers["Location"] == "/ui/tasks"
