"""The MCP bridge in-process (the SDK's Client(server)) against the real Flask app, and over
stdio against a real API process."""

from __future__ import annotations

import json
import sys
import uuid

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters

from cca_api import create_app
from cca_core.infra.api_client import ApiError, CcaClient
from cca_core.infra.db import transaction
from cca_core.infra.embedded import free_port
from cca_core.tasks import store
from cca_mcp.errors import explain
from cca_mcp.server import make_server

pytestmark = pytest.mark.integration
TOOLS = {"cca_task", "cca_wait", "cca_continue", "cca_status", "cca_cancel", "cca_tasks", "cca_events",
         "cca_agents", "cca_activity", "cca_schedule_create", "cca_schedules", "cca_schedule_delete",
         "cca_roles", "cca_workflow", "cca_workflow_status", "cca_memory_search",
         "cca_memory_store", "cca_index_codebase", "cca_index_status", "cca_search_code",
         "cca_token_metrics", "cca_token_recommendations"}


def script(*steps: dict) -> str:
    return f"[[script:{json.dumps({'steps': list(steps)})}]]"


@pytest.fixture
def app(make_settings):
    return create_app(make_settings())


@pytest.fixture
def api_client(app) -> CcaClient:
    return CcaClient("http://cca.test", transport=httpx.WSGITransport(app=app))


def run(coro_fn):
    return anyio.run(coro_fn)


def call(server, name: str, arguments: dict | None = None, progress: list | None = None):
    async def go():
        async with Client(server) as client:
            async def on_progress(done, total, message):
                progress.append((done, total, message))

            return await client.call_tool(name, arguments or {},
                                          progress_callback=on_progress if progress is not None else None)

    return run(go)


def test_every_tool_is_listed_with_a_description_and_schemas(api_client):
    async def go():
        async with Client(make_server(api_client, parent_id="")) as client:
            return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in run(go)}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 40
        assert tool.output_schema is not None
    assert tools["cca_task"].input_schema["required"] == ["prompt"]


def test_cca_task_returns_the_id_at_once(api_client, app):
    result = call(make_server(api_client, parent_id=""), "cca_task",
                  {"prompt": "review the diff", "priority": "high", "metadata": {"pr": 7}})
    assert not result.is_error
    task = result.structured_content
    assert task["status"] == "queued" and task["done"] is False and "cca_wait" in task["note"]
    assert api_client.task(task["id"])["priority"] == "high"
    assert task["id"] in result.content[0].text


def test_a_bridge_inside_a_fleet_task_records_the_parent(api_client):
    parent = api_client.submit({"prompt": "outer"})
    result = call(make_server(api_client, parent_id=parent["id"]), "cca_task", {"prompt": "inner"})
    assert result.structured_content["parent_id"] == parent["id"]
    children = api_client.tasks(parent_id=parent["id"])["tasks"]
    assert [child["id"] for child in children] == [result.structured_content["id"]]


def test_the_parent_comes_from_the_environment(api_client, monkeypatch):
    parent = api_client.submit({"prompt": "outer"})
    monkeypatch.setenv("CCA_TASK_ID", parent["id"])
    result = call(make_server(api_client), "cca_task", {"prompt": "inner"})
    assert result.structured_content["parent_id"] == parent["id"]


def test_cca_wait_reports_progress_and_returns_the_result(api_client, start_worker):
    start_worker("w1")
    server = make_server(api_client, parent_id="")
    submitted = call(server, "cca_task", {"prompt": script(
        {"tool_use": {"name": "Bash", "input": {"command": "git --version"}}, "delay": 0.3},
        {"text": "the inner result"})})
    progress: list = []
    result = call(server, "cca_wait", {"task_id": submitted.structured_content["id"],
                                       "timeout_seconds": 60}, progress)
    task = result.structured_content
    assert task["status"] == "succeeded" and task["result"] == "the inner result"
    assert task["done"] and task["cost_usd"] > 0 and task["input_tokens"] > 0
    assert progress, "no progress notification arrived"
    assert all(total == 60 for _, total, _ in progress)
    assert progress[-1][2].startswith("succeeded · turns")
    # From the live stream: the run's first turn was seen while it ran, with its tokens.
    running = [message for _, _, message in progress if message.startswith("running · turns 1 ")]
    assert running and " · tokens 0 " not in running[0], progress


def test_cca_task_can_wait_itself(api_client, start_worker):
    start_worker("w1")
    result = call(make_server(api_client, parent_id=""), "cca_task",
                  {"prompt": script({"text": "quick"}), "wait_seconds": 60}, [])
    assert result.structured_content["result"] == "quick"


def test_cca_wait_returns_the_current_state_at_the_deadline(api_client):
    task = api_client.submit({"prompt": "nobody runs this"})
    progress: list = []
    result = call(make_server(api_client, parent_id=""), "cca_wait",
                  {"task_id": task["id"], "timeout_seconds": 1.2}, progress)
    assert not result.is_error
    assert result.structured_content["status"] == "queued"
    assert "call cca_wait again" in result.structured_content["note"]
    assert progress and progress[0][2].startswith("queued")


def test_status_of_a_task_and_of_the_fleet(api_client):
    task = api_client.submit({"prompt": "x"})
    one = call(make_server(api_client, parent_id=""), "cca_status", {"task_id": task["id"]})
    assert one.structured_content["task"]["id"] == task["id"]
    fleet = call(make_server(api_client, parent_id=""), "cca_status").structured_content["fleet"]
    assert fleet["tasks"]["queued"] == 1 and fleet["queues"] == {"cca": 1}
    assert fleet["workers_online"] == 0


def test_cancel_then_cancel_again_is_an_actionable_error(api_client):
    task = api_client.submit({"prompt": "x"})
    server = make_server(api_client, parent_id="")
    assert call(server, "cca_cancel", {"task_id": task["id"]}).structured_content["status"] == "cancelled"
    again = call(server, "cca_cancel", {"task_id": task["id"]})
    assert again.is_error and "already ended as cancelled" in again.content[0].text


def test_tasks_lists_with_filters_and_activity_shows_running(api_client, app):
    first = api_client.submit({"prompt": "a", "role": "qa"})
    api_client.submit({"prompt": "b"})
    with transaction(app.extensions["cca"].sessions) as session:
        store.claim_task(session.connection(), first["id"], worker="w9", pid=1, lease_s=60, max_attempts=3)
    server = make_server(api_client, parent_id="")
    listed = call(server, "cca_tasks", {"role": "qa"}).structured_content["tasks"]
    assert [task["id"] for task in listed] == [first["id"]]
    running = call(server, "cca_activity").structured_content["tasks"]
    assert [(task["id"], task["worker"]) for task in running] == [(first["id"], "w9")]


def test_events_are_summarised(api_client, app):
    task = api_client.submit({"prompt": "x"})
    events = [
        {"type": "system", "subtype": "init", "model": "m", "tools": ["Bash"], "mcp_servers": []},
        {"type": "stream_event", "event": {"type": "message_start"}},
        {"type": "assistant", "message": {"content": [
            {"type": "tool_use", "name": "Bash", "input": {"command": "touch x"}}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "is_error": True,
            "content": "Permission to use Bash has been denied."}]}},
        {"type": "result", "subtype": "success", "is_error": False, "num_turns": 2,
         "total_cost_usd": 0.01, "result": "could not touch"},
    ]
    with transaction(app.extensions["cca"].sessions) as session:
        store.append_events(session.connection(), task["id"], 1, events)
    summary = call(make_server(api_client, parent_id=""), "cca_events",
                   {"task_id": task["id"]}).structured_content
    assert summary["total_events"] == 5
    assert summary["lines"] == [
        "start: model m, 1 tools", 'tool Bash: {"command":"touch x"}',
        "denied: Permission to use Bash has been denied.",
        "result (ok, success, 2 turns, $0.01): could not touch"]
    last = call(make_server(api_client, parent_id=""), "cca_events", {"task_id": task["id"], "last": 1})
    assert len(last.structured_content["lines"]) == 1


def test_agents_lists_workers(api_client, start_worker):
    start_worker("w1")
    workers = call(make_server(api_client, parent_id=""), "cca_agents").structured_content["workers"]
    assert [(w["hostname"], w["slots_total"], w["slots_busy"]) for w in workers] == [("w1@test", 2, 0)]


def test_the_task_resource_holds_the_result(api_client):
    task = api_client.submit({"prompt": "x"})

    async def go():
        async with Client(make_server(api_client, parent_id="")) as client:
            return await client.read_resource(f"cca://tasks/{task['id']}")

    contents = run(go).contents
    assert json.loads(contents[0].text)["id"] == task["id"]


def test_token_metrics_and_recommendations(api_client):
    server = make_server(api_client, parent_id="")
    task = call(server, "cca_task", {"prompt": "count my tokens"}).structured_content
    fleet = call(server, "cca_token_metrics", {"days": 3}).structured_content
    assert fleet["fleet"]["days"] == 3 and fleet["fleet"]["rows"] == [] and fleet["task"] is None
    one = call(server, "cca_token_metrics", {"task_id": task["id"]}).structured_content
    assert one["task"]["task_id"] == task["id"] and one["task"]["turns"] == []
    advice = call(server, "cca_token_recommendations").structured_content
    assert advice["days"] == 7 and advice["findings"] == []


def test_unknown_task_and_bad_input_are_answers_not_crashes(api_client):
    server = make_server(api_client, parent_id="")
    missing = call(server, "cca_status", {"task_id": str(uuid.uuid4())})
    assert missing.is_error and "not found" in missing.content[0].text
    bad = call(server, "cca_task", {"prompt": "x", "cwd": "/etc"})
    assert bad.is_error and "field cwd" in bad.content[0].text


def test_an_unreachable_api_says_how_to_start_it():
    client = CcaClient(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    result = call(make_server(client, parent_id=""), "cca_status")
    assert result.is_error
    assert "not reachable" in result.content[0].text and "cca up" in result.content[0].text


def test_a_missing_key_says_which_setting_to_use(make_settings):
    app = create_app(make_settings(daemon={"require_auth": True, "api_keys": ["k" * 20]}))
    client = CcaClient("http://cca.test", transport=httpx.WSGITransport(app=app))
    result = call(make_server(client, parent_id=""), "cca_tasks")
    assert result.is_error and "CCA_API_KEY" in result.content[0].text
    keyed = CcaClient("http://cca.test", "k" * 20, transport=httpx.WSGITransport(app=app))
    assert not call(make_server(keyed, parent_id=""), "cca_tasks").is_error


@pytest.mark.parametrize(("status", "code", "words"), [
    (429, "quota_exceeded", "try again later"), (403, "forbidden", "may not"),
    (500, "internal_error", "failed (500"),
])
def test_other_failures_become_sentences(status, code, words):
    assert words in explain(ApiError(status, code, "msg"), "http://x")


def test_over_stdio_against_a_running_api(api_url, tmp_path):
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "cca_mcp", "--daemon-url", api_url],
                                   env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})

    async def go():
        async with Client(params) as client:
            submitted = await client.call_tool("cca_task", {"prompt": "over stdio"})
            status = await client.call_tool("cca_status", {"task_id": submitted.structured_content["id"]})
            return submitted, status

    submitted, status = run(go)
    assert not submitted.is_error and status.structured_content["task"]["prompt"] == "over stdio"


def test_a_recurring_job_is_created_listed_and_deleted_through_the_bridge(api_client):
    server = make_server(api_client, parent_id="")
    created = call(server, "cca_schedule_create", {
        "name": "weekday-review", "prompt": "review yesterday's commits", "cron": "0 7 * * 1-5",
        "timezone": "Europe/Berlin", "role": "qa", "overlap": "cancel_previous"})
    assert not created.is_error, created.content
    schedule = created.structured_content
    assert (schedule["cron"], schedule["overlap"], schedule["next_fire_at"] is not None) == (
        "0 7 * * 1-5", "cancel_previous", True)
    listed = call(server, "cca_schedules").structured_content
    assert [item["name"] for item in listed["schedules"]] == ["weekday-review"]
    assert not call(server, "cca_schedule_delete", {"schedule": "weekday-review"}).is_error
    assert call(server, "cca_schedules").structured_content["schedules"] == []


def test_a_bad_cron_expression_comes_back_as_an_error_naming_the_field(api_client):
    result = call(make_server(api_client, parent_id=""), "cca_schedule_create",
                  {"name": "bad", "prompt": "p", "cron": "every morning"})
    assert result.is_error
    assert "(field cron)" in result.content[0].text


def test_cca_workflow_runs_a_graph_and_cca_workflow_status_follows_it(api_client, start_worker):
    start_worker("w1")
    server = make_server(api_client, parent_id="")
    tasks = [{"name": "scan", "prompt": "scan: " + script({"text": "clean"}), "role": "security"},
             {"name": "report", "prompt": "report: " + script({"text": "reported"}),
              "depends_on": ["scan"]}]
    submitted = call(server, "cca_workflow", {"name": "review", "tasks": tasks})
    assert not submitted.is_error, submitted.content
    workflow = submitted.structured_content
    assert [(s["name"], s["status"]) for s in workflow["tasks"]] == [("scan", "queued"),
                                                                      ("report", "queued")]
    progress: list = []
    followed = call(server, "cca_workflow_status",
                    {"workflow_id": workflow["id"], "wait_seconds": 60}, progress)
    done = followed.structured_content
    assert done["status"] == "succeeded", done
    assert {s["role"] for s in done["tasks"]} == {"security", None}
    assert progress and progress[-1][2].startswith("succeeded · 2 succeeded")
    bad = call(server, "cca_workflow", {"name": "bad", "tasks": [
        {"name": "a", "prompt": "p", "depends_on": ["a"]}]})
    assert bad.is_error and "depends on itself" in bad.content[0].text
