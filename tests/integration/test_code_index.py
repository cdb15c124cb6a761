"""The code index on the real API, Postgres with pgvector and a real worker: a job indexes
a tree inside the allowed roots with progress, search finds code by meaning, re-indexing
touches only what changed, cancel and bad input, and the bridge's tools."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client

from cca_api import create_app
from cca_core.infra.api_client import CcaClient
from cca_mcp.server import make_server
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

FILES = {
    "billing/invoice.py": '''
def total_with_tax(lines, rate):
    """Sum the invoice lines and add sales tax at the given rate."""
    return sum(line.amount for line in lines) * (1 + rate)


class Invoice:
    """A bill sent to a customer."""

    def overdue(self, today):
        """Whether payment is late."""
        return today > self.due
''',
    "net/retry.go": '''package net

// Backoff waits longer after each failed attempt before trying the request again.
func Backoff(attempt int) int {
\treturn 100 << attempt
}
''',
    "web/src/auth.ts": '''export class Session {
  // Sign the user out and forget the token kept in the browser.
  logout(): void { localStorage.removeItem("token") }
}
''',
    "docs/setup.md": "# Setup\n\nInstall the toolchain, then run make.\nThe tests need Docker.\n",
    "node_modules/dep/index.js": "function ignored() {}\n",
    "image.png": "not code",
}


@pytest.fixture
def tree(config_data) -> Path:
    root = Path(config_data["agents"]["allowed_roots"][0]) / "shop"
    for name, content in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


@pytest.fixture
def client(make_settings):
    return create_app(make_settings()).test_client()


def index(client, path: Path, **extra) -> dict:
    response = client.post("/api/v1/code/index", json={"path": str(path), **extra})
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def finished(client, job_id: str) -> dict:
    def ended():
        job = client.get(f"/api/v1/code/index/{job_id}").get_json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(ended, timeout_s=90, message=f"index job {job_id}")


def search(client, query: str, **extra) -> list[dict]:
    response = client.post("/api/v1/code/search", json={"query": query, **extra})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["results"]


def test_a_tree_is_indexed_by_a_worker_and_searched_by_meaning(client, tree, start_worker):
    start_worker("w1")
    job = index(client, tree)
    assert job["status"] == "queued" and job["params"]["root"] == str(tree)
    done = finished(client, job["id"])
    assert done["status"] == "succeeded", done
    progress = done["progress"]
    assert (progress["files_total"], progress["files_indexed"], progress["errors"],
            progress["percent"]) == (4, 4, 0, 100.0)  # node_modules and .png left out
    assert progress["chunks"] >= 6 and progress["embedding_seconds"] > 0
    stats = client.get("/api/v1/code/stats").get_json()
    assert stats["files"] == 4 and stats["embedded"] == stats["chunks"] == progress["chunks"]
    assert set(stats["by_language"]) == {"python", "go", "typescript", "markdown"}

    assert (search(client, "how long to wait before trying the call once more", limit=1)[0]
            ["symbol"]) == "Backoff"
    hit = search(client, "is the customer late paying", limit=1)[0]
    assert (hit["path"], hit["symbol"], hit["kind"]) == ("billing/invoice.py", "Invoice.overdue", "method")
    assert hit["start_line"] == 10 and "return today > self.due" in hit["content"]
    only_ts = search(client, "end the user's session", language="typescript")
    assert only_ts and {h["language"] for h in only_ts} == {"typescript"}
    assert {h["path"] for h in search(client, "tax", path_prefix="billing/")} == {"billing/invoice.py"}
    assert client.get("/api/v1/code/index").get_json()["jobs"][0]["id"] == job["id"]


def test_reindexing_touches_only_changed_files_and_drops_deleted_ones(client, tree, start_worker):
    start_worker("w1")
    assert finished(client, index(client, tree)["id"])["status"] == "succeeded"
    (tree / "net/retry.go").unlink()
    (tree / "billing/invoice.py").write_text(FILES["billing/invoice.py"] + '''

def refund(invoice):
    """Give the customer their money back."""
    return -invoice.total
''')
    again = finished(client, index(client, tree)["id"])
    progress = again["progress"]
    assert (progress["files_total"], progress["files_indexed"], progress["files_unchanged"],
            progress["files_deleted"]) == (3, 1, 2, 1)
    assert search(client, "give money back to the buyer", limit=1)[0]["symbol"] == "refund"
    assert "Backoff" not in {h["symbol"] for h in search(client, "wait before retrying")}


def test_bad_requests_name_the_field_and_a_queued_job_cancels_at_once(client, tree, tmp_path):
    outside = client.post("/api/v1/code/index", json={"path": str(tmp_path)})
    assert outside.status_code == 422 and outside.get_json()["error"]["field"] == "path"
    assert "outside the allowed roots" in outside.get_json()["error"]["message"]
    relative = client.post("/api/v1/code/index", json={"path": "shop"})
    assert relative.status_code == 422 and relative.get_json()["error"]["field"] == "path"
    bad_ext = client.post("/api/v1/code/index", json={"path": str(tree), "extensions": ["py"]})
    assert bad_ext.status_code == 422 and bad_ext.get_json()["error"]["field"] == "extensions"
    assert client.get("/api/v1/code/index/not-a-job").status_code == 404
    job = index(client, tree)  # no worker runs: it stays queued
    cancelled = client.post(f"/api/v1/code/index/{job['id']}/cancel").get_json()
    assert (cancelled["status"], cancelled["cancel_requested"]) == ("cancelled", True)
    again = client.post(f"/api/v1/code/index/{job['id']}/cancel")
    assert again.status_code == 409


def test_the_bridge_indexes_and_searches(make_settings, tree, start_worker):
    start_worker("w1")
    app = create_app(make_settings())
    server = make_server(CcaClient("http://cca.test", transport=httpx.WSGITransport(app=app)),
                         parent_id="")

    async def go():
        async with Client(server) as mcp:
            indexed = await mcp.call_tool("cca_index_codebase", {"path": str(tree), "wait_seconds": 60})
            found = await mcp.call_tool("cca_search_code", {"query": "add sales tax to a bill"})
            outside = await mcp.call_tool("cca_index_codebase", {"path": "/etc"})
            return indexed, found, outside

    indexed, found, outside = anyio.run(go)
    assert indexed.structured_content["status"] == "succeeded", indexed.content
    assert found.structured_content["results"][0]["symbol"] == "total_with_tax"
    assert outside.is_error and "outside the allowed roots" in outside.content[0].text
