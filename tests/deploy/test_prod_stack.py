"""docker-compose.prod.yml as a user deploys it: two APIs behind HAProxy on :9200, a worker,
beat, Flower, Postgres with pgvector and Redis with AOF, all from the images built here.
A real `claude` in the worker container answers tasks from the scripted Messages API of
``tests/`` (on this machine, reached through the project network's gateway). The tests run in
order on one stack; the last one brings it down and checks nothing is left."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from cca_core.names import queue_keys
from tests.fakes.model_api import ModelAPI
from tests.support.compose import REPO, Built, Project
from tests.support.fleet import bash, script
from tests.support.waiting import wait_for

# The first test of a run builds cca's image (minutes from a cold cache).
pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]
SUBNET, GATEWAY = "172.30.93.0/24", "172.30.93.1"  # not the file's default: a test of its own
URL = "http://127.0.0.1:9200"
FLOWER = "http://127.0.0.1:5555"
SECRETS = {name: secrets.token_hex(16) for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_PASSWORD")}
ADMIN_KEY = f"deploy-admin-{secrets.token_hex(12)}"
HEADERS = {"X-API-Key": ADMIN_KEY}
TERMINAL = ("succeeded", "failed", "cancelled", "timed_out", "budget_exceeded")


@pytest.fixture(scope="module")
def model_api() -> Iterator[ModelAPI]:
    with ModelAPI(host="0.0.0.0") as api:
        yield api


@pytest.fixture(scope="module")
def prod(cca_image: Built, model_api: ModelAPI,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    port = model_api.url.rsplit(":", 1)[1]
    override = tmp_path_factory.mktemp("prod") / "compose.test.yml"
    # The one addition to the shipped file: where the worker's claude finds its model API.
    override.write_text(yaml.safe_dump({"services": {"worker": {"environment": {
        "ANTHROPIC_BASE_URL": f"http://{GATEWAY}:{port}"}}}}))
    project = Project("ccadeployprod", [REPO / "docker-compose.prod.yml", override], {
        **SECRETS, "API_KEYS": ADMIN_KEY, "ANTHROPIC_API_KEY": "deploy-model-key",
        "CCA_IMAGE": cca_image.image, "CCA_SUBNET": SUBNET, "MAX_AGENTS": "2"})
    project.down()  # what an interrupted earlier run left
    try:
        project.up()
    except AssertionError:
        print(project.logs())
        project.down()
        raise
    yield project
    project.down()


def submit(body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    headers = {**HEADERS, **({"Idempotency-Key": key} if key else {})}
    response = httpx.post(f"{URL}/api/v1/tasks", json=body, headers=headers, timeout=15)
    assert response.status_code in (200, 202), response.text
    return response.json()


def submit_until_accepted(body: dict[str, Any], key: str) -> str:
    """Submit as a client of the API should: repeat with the same Idempotency-Key while the
    connection fails or the API answers 502, 503 or 504 (a backend going away); the task's id."""
    for _ in range(60):
        try:
            response = httpx.post(f"{URL}/api/v1/tasks", json=body,
                                  headers={**HEADERS, "Idempotency-Key": key}, timeout=15)
        except httpx.TransportError:
            continue
        if response.status_code in (200, 202):
            return str(response.json()["id"])
        assert response.status_code in (502, 503, 504), response.text
    raise AssertionError(f"submission {key} never accepted")


def ended(task_id: str, timeout_s: float = 180) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        task = httpx.get(f"{URL}/api/v1/tasks/{task_id}", headers=HEADERS, timeout=15).json()
        return task if task["status"] in TERMINAL else None

    return wait_for(check, timeout_s=timeout_s, message=f"task {task_id} to end")


def psql(project: Project, query: str) -> str:
    return project.exec("postgres", "psql", "-U", "cca", "-d", "cca", "-tAc", query).stdout.strip()


def test_every_role_runs_from_the_image_as_its_unprivileged_user(prod):
    for service in ("cca-api-1", "cca-api-2", "worker", "beat", "flower"):
        assert prod.exec(service, "id", "-un").stdout.strip() == "cca", service
    assert prod.exec("worker", "claude", "--version").stdout.startswith("2.1.197")
    wait_for(lambda: "beat: leading" in prod.compose("logs", "beat").stdout, timeout_s=30,
             message="the beat to lead")


def test_a_task_through_haproxy_runs_a_real_claude_in_the_worker_container(prod, model_api):
    task = submit({"prompt": script({**bash("echo deploy-marker"), "usage": {"input_tokens": 900,
                                                                               "output_tokens": 40}},
                                    {"text": "saw: {tool_result}"}),
                   "allowed_tools": ["Bash(echo *)"]})
    done = ended(task["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == "saw: deploy-marker"
    assert done["usage"]["input_tokens"] >= 900 and done["usage"]["output_tokens"] >= 40
    assert done["cost_usd"] > 0 and done["num_turns"] == 2
    assert done["worker"] and done["attempts"] == 1
    assert any("deploy-marker" in str(body) for body in model_api.requests)


def test_stopping_an_api_container_loses_and_doubles_no_submission(prod):
    keys = [f"deploy-stop-{n}-{secrets.token_hex(4)}" for n in range(30)]
    accepted: dict[str, str] = {}
    lock = threading.Lock()

    def client(first: int) -> None:
        for key in keys[first::3]:
            task_id = submit_until_accepted({"prompt": f"stop test {key}"}, key)
            with lock:
                accepted[key] = task_id

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(accepted) >= 10, timeout_s=60, message="the first submissions")
    prod.compose("stop", "cca-api-2", timeout=120)
    for thread in threads:
        thread.join(300)
    try:
        assert len(accepted) == len(keys)
        made = psql(prod, "SELECT count(*) FROM tasks WHERE idempotency_key LIKE 'deploy-stop-%'")
        assert int(made) == len(keys)  # none twice
        assert submit_until_accepted({"prompt": f"stop test {keys[0]}"}, keys[0]) == accepted[keys[0]]
    finally:
        prod.compose("start", "cca-api-2", timeout=120)


def test_restarting_redis_with_queued_tasks_loses_and_doubles_none(prod, model_api):
    prod.compose("stop", "worker", timeout=120)
    tag = secrets.token_hex(4)
    ids = [submit({"prompt": script({"text": f"queued {tag} {n}"})})["id"] for n in range(6)]
    waiting = sum(int(prod.exec("redis", "redis-cli", "llen", key).stdout.strip())
                  for key in queue_keys("cca"))
    assert waiting >= len(ids)
    prod.compose("restart", "redis", timeout=120)
    prod.compose("start", "worker", timeout=120)
    done = [ended(task_id) for task_id in ids]
    assert [task["status"] for task in done] == ["succeeded"] * len(ids), done
    assert all(task["attempts"] == 1 for task in done)
    for n in range(len(ids)):  # each answered by one run of claude
        runs = [body for body in model_api.requests if f"queued {tag} {n}\"" in str(body)
                or f"queued {tag} {n}'" in str(body)]
        assert runs, f"task {n} never reached the model"
    results = psql(prod, "SELECT count(*) FROM task_events e JOIN tasks t ON t.id = e.task_id "
                         f"WHERE e.type = 'result' AND t.prompt LIKE '%queued {tag}%'")
    assert int(results) == len(ids)


def test_cca_doctor_in_the_worker_container_reports_clean(prod):
    run = prod.exec("worker", "cca", "doctor", check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "FAIL" not in run.stdout and run.stdout.count("ok") >= 5, run.stdout


def test_flower_asks_for_its_password_and_serves_metrics(prod):
    assert httpx.get(f"{FLOWER}/", timeout=10).status_code == 401
    auth = ("admin", SECRETS["FLOWER_PASSWORD"])
    assert httpx.get(f"{FLOWER}/", auth=("admin", "wrong"), timeout=10).status_code == 401
    assert httpx.get(f"{FLOWER}/", auth=auth, timeout=10).status_code == 200
    metrics = httpx.get(f"{FLOWER}/metrics", auth=auth, timeout=10)
    assert metrics.status_code == 200 and "flower_" in metrics.text
    # A busy worker may miss Flower's one-second inspects (then its entry lacks their parts):
    # ask until it answers them all.
    def answered() -> dict[str, Any] | None:
        workers = httpx.get(f"{FLOWER}/api/workers", params={"refresh": "1"}, auth=auth, timeout=30).json()
        return workers if workers and all("registered" in worker for worker in workers.values()) else None

    workers = wait_for(answered, timeout_s=90, message="Flower to see the worker")
    assert all(worker["registered"] for worker in workers.values()), workers


def test_an_agent_in_the_worker_container_holds_no_secret_and_cannot_use_the_servers(prod):
    # The boundary (docs/security.md): the network is shared, so an agent reaches Redis,
    # Postgres and the APIs, but holds none of their credentials and sees none of the worker's.
    python = "/opt/cca/bin/python -c"
    command = "; ".join([
        "cat /proc/1/environ /proc/*/environ 2>/dev/null | tr '\\0' '\\n'", "env",
        f"{python} \"import redis; print('REDIS', redis.Redis(host='redis', socket_timeout=5).ping())\" 2>&1 "
        "| tail -1",
        f"{python} \"import psycopg; psycopg.connect('host=postgres user=cca dbname=cca connect_timeout=5'); "
        f"print('POSTGRES-OPEN')\" 2>&1 | tail -1",
        f"{python} \"import httpx; print('api says', httpx.get('http://cca-api-1:9200/api/v1/tasks').status_code)\"",
    ])
    done = ended(submit({"prompt": script(bash(command), {"text": "saw: {tool_result}"}),
                         "allowed_tools": ["Bash"]})["id"])
    assert done["status"] == "succeeded", done
    seen = done["result"]
    assert "redis.exceptions.AuthenticationError" in seen and "REDIS True" not in seen, seen
    assert "no password supplied" in seen and "POSTGRES-OPEN" not in seen, seen
    assert "api says 401" in seen, seen
    for name, value in {**SECRETS, "API_KEYS": ADMIN_KEY}.items():
        assert value not in seen, f"{name} reached the agent"
    assert not re.search(r"CCA__|POSTGRES_PASSWORD|REDIS_PASSWORD|REDISCLI_AUTH", seen), seen


def test_bringing_the_stack_down_leaves_nothing(prod):
    prod.down()
    assert prod.leftovers() == {"containers": [], "networks": [], "volumes": []}
