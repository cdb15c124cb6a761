"""Workflows on real workers: real `claude` runs against the scripted Messages API, the real
API, Postgres and Redis. Dependents start when their dependencies succeeded and see their
results; the failure policies, cancel and the tree's budget hold; a step re-run after its
worker died runs alone."""

from __future__ import annotations

import pytest

from cca_api import create_app
from tests.support.fleet import FleetAPI, bash, script, steps_by_name, ts

pytestmark = pytest.mark.integration


def step(name: str, *steps: dict, depends_on: tuple[str, ...] = (), **extra) -> dict:
    return {"name": name, "prompt": f"{name}: " + script(*steps), "depends_on": list(depends_on),
            **extra}


@pytest.fixture
def api(make_settings) -> FleetAPI:
    return FleetAPI(create_app(make_settings()).test_client())


def main_request_of(model_api, name: str) -> str:
    """The first message of the main request a step's agent made (it starts with its prompt)."""
    for body in model_api.requests:
        first = body["messages"][0]["content"]
        text = first if isinstance(first, str) else "".join(b.get("text", "") for b in first)
        if body.get("tools") and f"{name}: [[script:" in text:
            return text[text.index(f"{name}: [[script:"):]
    raise AssertionError(f"no request of step {name}")


def test_a_diamond_runs_its_middle_in_parallel_and_the_join_sees_both_results(
        api, start_worker, model_api):
    start_worker("w1", daemon={"max_agents": 1})
    start_worker("w2", daemon={"max_agents": 1})
    submitted = api.submit_workflow(name="diamond", tasks=[
        step("root", {"text": "root says go"}),
        step("left", bash("sleep 2"), {"text": "left found 3 bugs"}, depends_on=("root",)),
        step("right", bash("sleep 2"), {"text": "right wrote 2 tests"}, depends_on=("root",)),
        step("join", {"text": "joined"}, depends_on=("left", "right"), role="qa"),
    ])
    waiting = steps_by_name(submitted)["join"]
    assert (waiting["status"], waiting["waiting_for"]) == ("queued", "dependencies")
    assert waiting["depends_on"] == ["left", "right"]
    task = api.get(waiting["task_id"])
    assert (task["workflow_id"], task["step"], task["waiting_for"]) == (
        submitted["id"], "join", "dependencies")

    done = api.wait_workflow(submitted["id"])
    steps = steps_by_name(done)
    assert done["status"] == "succeeded", done
    assert [s["name"] for s in done["tasks"]][0] == "root" and done["tasks"][-1]["name"] == "join"
    assert all(s["status"] == "succeeded" and s["attempts"] == 1 for s in steps.values())
    left, right = steps["left"], steps["right"]
    assert {left["worker"], right["worker"]} == {"w1@test", "w2@test"}
    assert ts(left["started_at"]) < ts(right["finished_at"])
    assert ts(right["started_at"]) < ts(left["finished_at"]), "left and right did not overlap"
    assert ts(steps["join"]["started_at"]) >= max(ts(left["finished_at"]), ts(right["finished_at"]))
    assert done["usage"]["input_tokens"] == sum(s["usage"]["input_tokens"] for s in steps.values())
    assert done["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in steps.values()))

    joined = main_request_of(model_api, "join")
    assert '<cca-step name="left" role="" status="succeeded">\nleft found 3 bugs\n</cca-step>' \
        in joined
    assert "right wrote 2 tests" in joined and "root says go" not in joined
    assert "root says go" in main_request_of(model_api, "left")
    listed = api.client.get(f"/api/v1/tasks?workflow_id={submitted['id']}").get_json()["tasks"]
    assert {t["step"] for t in listed} == {"root", "left", "right", "join"}


def test_fail_fast_stops_the_running_sibling_and_cancels_what_waits(api, start_worker):
    start_worker("w1")
    submitted = api.submit_workflow(name="ff", tasks=[
        step("slow", bash("sleep 60"), {"text": "never"}),
        step("broken", {"error": 400}),
        step("after", {"text": "never"}, depends_on=("broken",)),
    ])
    done = api.wait_workflow(submitted["id"], timeout_s=60)
    steps = steps_by_name(done)
    assert done["status"] == "failed"
    assert steps["broken"]["status"] == "failed"
    assert (steps["slow"]["status"], steps["slow"]["error"]["code"]) == (
        "cancelled", "dependency_failed")
    assert (steps["after"]["status"], steps["after"]["error"]["code"]) == (
        "cancelled", "dependency_failed")
    assert steps["after"]["started_at"] is None


def test_continue_runs_what_still_can(api, start_worker):
    start_worker("w1")
    submitted = api.submit_workflow(name="cont", failure_policy="continue", tasks=[
        step("broken", {"error": 400}),
        step("after", {"text": "never"}, depends_on=("broken",)),
        step("later", {"text": "never"}, depends_on=("after",)),
        step("fine", {"text": "fine"}),
        step("fine2", {"text": "fine too"}, depends_on=("fine",)),
    ])
    steps = steps_by_name(api.wait_workflow(submitted["id"], timeout_s=60))
    assert [steps[n]["status"] for n in ("broken", "after", "later", "fine", "fine2")] == [
        "failed", "cancelled", "cancelled", "succeeded", "succeeded"]
    assert steps["later"]["error"]["code"] == "dependency_failed"
    assert api.workflow(submitted["id"])["status"] == "failed"


def test_cancelling_a_workflow_cancels_every_step_and_leaves_nothing_running(api, start_worker):
    start_worker("w1")
    submitted = api.submit_workflow(name="stop", tasks=[
        step("long", bash("sleep 60"), {"text": "never"}),
        step("next", {"text": "never"}, depends_on=("long",)),
    ])
    api.wait_running(steps_by_name(submitted)["long"]["task_id"])
    answer = api.client.post(f"/api/v1/workflows/{submitted['id']}/cancel")
    assert answer.status_code == 200, answer.get_json()
    assert steps_by_name(answer.get_json())["next"]["status"] == "cancelled"
    done = api.wait_workflow(submitted["id"], timeout_s=30)
    assert done["status"] == "cancelled"
    assert {s["status"] for s in done["tasks"]} == {"cancelled"}
    again = api.client.post(f"/api/v1/workflows/{submitted['id']}/cancel")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_finished"


def test_a_spent_budget_stops_the_tree_at_the_next_heartbeat(api, start_worker):
    start_worker("w1")
    costly = {**bash("sleep 30"), "usage": {"input_tokens": 5000, "output_tokens": 10}}
    submitted = api.submit_workflow(name="budget", token_budget=1000, tasks=[
        step("costly", costly, {"text": "never"}),
        step("other", bash("sleep 30"), {"text": "never"}),
        step("next", {"text": "never"}, depends_on=("costly",)),
    ])
    done = api.wait_workflow(submitted["id"], timeout_s=60)
    steps = steps_by_name(done)
    assert done["status"] == "budget_exceeded", done
    assert {s["status"] for s in done["tasks"]} == {"cancelled"}
    assert {s["error"]["code"] for s in done["tasks"]} == {"budget_exceeded"}
    assert steps["costly"]["usage"]["input_tokens"] >= 5000 and steps["next"]["started_at"] is None
    assert done["usage"]["input_tokens"] >= 5000


def test_a_step_rerun_after_its_worker_died_runs_alone(api, start_worker):
    doomed = start_worker("doomed", agents={"lease_seconds": 3})
    first = api.submit_workflow(name="rerun", tasks=[
        step("quick", {"text": "quick done"}),
        step("slow", bash("sleep 4"), {"text": "slow done"}),
        step("after", {"text": "after done"}, depends_on=("quick", "slow")),
    ])
    ids = {name: s["task_id"] for name, s in steps_by_name(first).items()}
    api.wait_terminal(ids["quick"])
    api.wait_running(ids["slow"])
    doomed.kill()
    start_worker("rescuer", agents={"lease_seconds": 3})
    done = api.wait_workflow(first["id"], timeout_s=90)
    steps = steps_by_name(done)
    assert done["status"] == "succeeded", done
    assert (steps["quick"]["attempts"], steps["quick"]["worker"]) == (1, "doomed@test")
    assert (steps["slow"]["attempts"], steps["slow"]["worker"]) == (2, "rescuer@test")
    assert steps["after"]["attempts"] == 1


@pytest.mark.parametrize(("tasks", "field"), [
    ([{"name": "a", "prompt": "x", "depends_on": ["b"]},
      {"name": "b", "prompt": "x", "depends_on": ["a"]}], "tasks"),
    ([{"name": "a", "prompt": "x"}, {"name": "b", "prompt": "x", "depends_on": ["nope"]}],
     "tasks[1].depends_on"),
    ([{"name": "a", "prompt": "x"}, {"name": "a", "prompt": "y"}], "tasks[1].name"),
    ([{"name": "a", "prompt": "x"}, {"name": "b", "prompt": "x", "role": "reviewer"}],
     "tasks[1].role"),
    ([{"name": "a", "prompt": "x", "queue": "nowhere"}], "tasks[0].queue"),
    ([], "tasks"),
])
def test_a_bad_workflow_is_refused_naming_the_field_and_stores_nothing(api, tasks, field):
    answer = api.client.post("/api/v1/workflows", json={"name": "bad", "tasks": tasks})
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["error"]["field"] == field
    assert api.client.get("/api/v1/workflows").get_json()["workflows"] == []


def test_workflows_are_listed_newest_first_and_counted_in_metrics(api, start_worker):
    start_worker("w1")
    first = api.submit_workflow(name="one", tasks=[step("a", {"text": "a"})])
    second = api.submit_workflow(name="two", tasks=[step("a", {"text": "a"})])
    api.wait_workflow(first["id"])
    api.wait_workflow(second["id"])
    page = api.client.get("/api/v1/workflows?limit=1").get_json()
    assert [w["name"] for w in page["workflows"]] == ["two"]
    rest = api.client.get(f"/api/v1/workflows?cursor={page['next_cursor']}").get_json()
    assert [w["name"] for w in rest["workflows"]] == ["one"]
    metrics = api.client.get("/metrics").get_data(as_text=True)
    assert 'cca_workflows{status="succeeded"} 2.0' in metrics
    assert 'cca_workflows{status="running"} 0.0' in metrics


def test_a_bad_list_query_is_refused_naming_the_field(api):
    for query, field in (("status=done", "status"), ("parent_task_id=x", "parent_task_id"),
                         ("limit=0", "limit"), ("cursor=zz", "cursor")):
        answer = api.client.get(f"/api/v1/workflows?{query}")
        assert answer.status_code == 422 and answer.get_json()["error"]["field"] == field, query
    assert api.client.get("/api/v1/workflows/nope").status_code == 404
    assert api.client.post("/api/v1/workflows/nope/cancel").status_code == 404
