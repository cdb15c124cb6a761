"""The `cca` command line as a user runs it: real processes, real API, real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cca_core.infra.embedded import free_port
from tests.support.cli import cca
from tests.support.fleet import bash
from tests.support.procs import processes_running
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]



def test_config_show_masks_secrets(fleet_env):
    env = {**fleet_env, "CCA__DAEMON__API_KEYS": "very-secret-key-123,other-secret-key-456",
           "CCA__AGENTS__ENV__ANTHROPIC_API_KEY": "sk-ant-should-not-show"}
    result = cca("config", "show", env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["settings"]["daemon"]["api_keys"] == ["********", "********"]
    assert "very-secret-key" not in result.stdout and "sk-ant-should-not-show" not in result.stdout


def test_config_check_warns_about_rules_the_cli_ignores(fleet_env, tmp_path):
    config = tmp_path / "check.toml"
    config.write_text('[agents.permissions]\nallowed_tools = ["Read", "Write(src/**)"]\n'
                      '[daemon]\nbind_address = "0.0.0.0:9200"\n')
    result = cca("config", "check", env={**fleet_env, "CCA_CONFIG": str(config)})
    assert result.returncode == 1, result.stderr  # an open API on 0.0.0.0 is an error
    assert "Write(src/**) is ignored by the claude CLI" in result.stdout
    assert "Edit(src/**)" in result.stdout
    assert "error: daemon.require_auth is false but the API would listen on 0.0.0.0" in result.stdout


def test_a_bad_config_key_is_named_without_a_traceback(base_env, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[daemon]\nmax_agents = -3\n")
    result = cca("config", "show", env={**base_env, "CCA_CONFIG": str(config)})
    assert result.returncode == 2
    assert "daemon.max_agents" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_without_servers_says_what_to_set(base_env):
    result = cca("worker", env=base_env)
    assert result.returncode == 2
    assert "redis.url is not set" in result.stderr and "cca up" in result.stderr


def test_unreachable_api_is_one_clear_line(base_env):
    result = cca("--api-url", f"http://127.0.0.1:{free_port()}", "status", env=base_env)
    assert result.returncode == 1
    assert "not reachable" in result.stderr and "Traceback" not in result.stderr


def test_db_upgrade_is_idempotent(fleet_env):
    result = cca("db", "upgrade", env=fleet_env)
    assert result.returncode == 0 and "head" in result.stdout


def test_submit_wait_prints_result_turns_tokens_and_cost(fleet_env, api_url, start_worker):
    start_worker("w1")
    script = json.dumps({"steps": [{"text": "all tests pass now",
                                    "usage": {"input_tokens": 321, "output_tokens": 45}}]})
    result = cca("--api-url", api_url, "submit", f"fix it [[script:{script}]]", "--wait",
                 env=fleet_env)
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout and "all tests pass now" in result.stdout
    assert "turns 1" in result.stdout and "$0." in result.stdout
    listed = cca("--api-url", api_url, "tasks", "list", "--json", env=fleet_env)
    task = json.loads(listed.stdout)["tasks"][0]
    assert task["usage"]["input_tokens"] >= 321 and task["status"] == "succeeded"
    shown = cca("--api-url", api_url, "tasks", "show", task["id"], "--json", env=fleet_env)
    assert json.loads(shown.stdout)["result"] == "all tests pass now"
    events = cca("--api-url", api_url, "tasks", "events", task["id"], env=fleet_env)
    types = [json.loads(line)["type"] for line in events.stdout.splitlines()]
    assert types[0] == "system" and types[-1] == "result"
    status = cca("--api-url", api_url, "status", "--json", env=fleet_env)
    assert json.loads(status.stdout)["workers"]["online"] == 1
    attempts = cca("--api-url", api_url, "tasks", "attempts", task["id"], "--json", env=fleet_env)
    [run] = json.loads(attempts.stdout)["attempts"]
    assert (run["attempt"], run["status"], run["worker"]) == (1, "succeeded", "w1@test")
    follow_up = cca("--api-url", api_url, "tasks", "continue", task["id"], "and now the docs",
                    "--wait", env=fleet_env)
    assert follow_up.returncode == 0, follow_up.stderr
    assert "succeeded" in follow_up.stdout
    latest = json.loads(cca("--api-url", api_url, "tasks", "list", "--json", env=fleet_env).stdout)
    assert latest["tasks"][0]["continues"] == task["id"]
    spent = json.loads(cca("--api-url", api_url, "tokens", "--json", env=fleet_env).stdout)
    assert sum(row["input_tokens"] for row in spent["metrics"]["rows"]) >= 321  # the CLI's own count
    assert spent["recommendations"]["tasks_examined"] == 2
    turns = cca("--api-url", api_url, "tokens", "--task", task["id"], env=fleet_env)
    assert turns.returncode == 0 and "context peak" in turns.stdout, turns.stderr
    unknown = cca("--api-url", api_url, "tasks", "continue", "00000000-0000-4000-8000-000000000000",
                  "x", env=fleet_env)
    assert unknown.returncode == 1 and "not found" in unknown.stderr and "Traceback" not in unknown.stderr


def test_submit_follow_shows_the_run_live_and_follow_replays_it(fleet_env, api_url, start_worker):
    start_worker("w1")
    script = json.dumps({"steps": [
        {"tool_use": {"name": "Bash", "input": {"command": "echo followed-" + "x" * 200}},
         "usage": {"input_tokens": 200, "output_tokens": 20}},
        {"text": "done following", "usage": {"input_tokens": 300, "output_tokens": 30}}]})
    result = cca("--api-url", api_url, "submit", f"go [[script:{script}]]", "--follow", "--no-repo",
                 env=fleet_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    tool = next(line for line in lines if line.startswith("⚙ Bash"))
    assert "echo followed-" in tool and tool.endswith("…") and len(tool) < 120  # input shortened
    assert "done following" in lines and "[succeeded]" in lines
    assert any(line.strip().startswith("· tokens in") and "~$0." in line for line in lines), lines
    task_id = json.loads(cca("--api-url", api_url, "tasks", "list", "--json",
                             env=fleet_env).stdout)["tasks"][0]["id"]
    replay = cca("--api-url", api_url, "tasks", "follow", task_id, "--json", env=fleet_env)
    assert replay.returncode == 0, replay.stderr
    kinds = [json.loads(line)["event"] for line in replay.stdout.splitlines()]
    assert kinds[0] == "event" and kinds[-2:] == ["status", "end"]
    unknown = cca("--api-url", api_url, "tasks", "follow", "00000000-0000-4000-8000-000000000000",
                  env=fleet_env)
    assert unknown.returncode == 1 and "not found" in unknown.stderr and "Traceback" not in unknown.stderr


def test_cli_errors_from_the_api_name_the_field(fleet_env, api_url):
    result = cca("--api-url", api_url, "submit", "", env=fleet_env)
    assert result.returncode == 1
    assert "prompt" in result.stderr and "Traceback" not in result.stderr
    missing = cca("--api-url", api_url, "tasks", "show", "00000000-0000-0000-0000-000000000000",
                  env=fleet_env)
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_submit_inside_a_repository_works_on_it_and_diff_shows_what_changed(
        fleet_env, api_url, start_worker, config_data, tmp_path):
    start_worker("w1")
    repo = Path(config_data["agents"]["allowed_roots"][0]) / "app"
    (repo / "src").mkdir(parents=True)
    for args in (["init", "-q", "-b", "main"], ["-c", "user.name=dev", "-c", "user.email=d@e",
                                                 "commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    script = json.dumps({"steps": [bash("git commit -q --allow-empty -m 'agent was here'"),
                                   {"text": "committed"}]})
    inside = {**fleet_env, "CCA_TEST_CWD": str(repo / "src")}  # anywhere in the repository
    result = cca("--api-url", api_url, "submit", f"[[script:{script}]]", "--wait", "--json", env=inside)
    assert result.returncode == 0, result.stderr
    task = json.loads(result.stdout)
    assert (task["status"], task["repo"], task["branch"]) == ("succeeded", str(repo), f"cca/{task['id']}")
    diff = cca("--api-url", api_url, "tasks", "diff", task["id"], "--stat", env=fleet_env)
    assert diff.returncode == 0, diff.stderr
    assert f"cca/{task['id']}" in diff.stdout and "agent was here" in diff.stdout

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=elsewhere, check=True)
    outside = {**fleet_env, "CCA_TEST_CWD": str(elsewhere)}
    refused = cca("--api-url", api_url, "submit", "p", env=outside)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "outside the allowed roots" in refused.stderr and "--no-repo" in refused.stderr
    plain = cca("--api-url", api_url, "submit", "p", "--no-repo", "--json", env=outside)
    assert plain.returncode == 0 and json.loads(plain.stdout)["repo"] is None


def test_cca_up_restarts_a_dead_worker_stops_cleanly_and_reuses_its_data(
        base_env, tmp_path, model_api, claude_bin):
    data_dir = Path(base_env["HOME"]) / ".local/share/cca"  # the default: no flag needed
    port = free_port()
    env = {**base_env, "CCA__DAEMON__BIND_ADDRESS": f"127.0.0.1:{port}",
           "CCA__AGENTS__CLAUDE_PATH": claude_bin, "ANTHROPIC_BASE_URL": model_api.url,
           "ANTHROPIC_API_KEY": "test", "CCA__AGENTS__ENV__CLAUDE_CODE_MAX_RETRIES": "0"}
    url = f"http://127.0.0.1:{port}"

    log = tmp_path / "up.log"
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as output:
            process = subprocess.Popen([sys.executable, "-m", "cca_cli.main", "up"], env=env,
                                       stdout=output, stderr=subprocess.STDOUT, cwd=tmp_path)
        wait_for(lambda: _workers_online(url, data_dir) or process.poll() is not None, timeout_s=90,
                 message="cca up to serve with a worker online")
        started.append(process)
        assert process.poll() is None, log.read_text(errors="replace")[-4000:]
        return process

    def stop(process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        markers = (str(data_dir), "cca_cli.main worker --name cca-1@", "cca_cli.main api",
                   "cca_cli.main beat")
        wait_for(lambda: not any(processes_running(marker) for marker in markers), timeout_s=20,
                 message="every process of the fleet to exit")

    try:
        first = start()
        # it starts in tmp_path, which holds its data directory: tasks may not work there
        assert f"not letting tasks work in {tmp_path}" in log.read_text(errors="replace")
        script = json.dumps({"steps": [{"text": "done by the embedded fleet"}]})
        result = cca("--api-url", url, "submit", f"[[script:{script}]]", "--wait", "--json", env=env)
        assert result.returncode == 0, result.stderr
        task = json.loads(result.stdout)
        assert task["result"] == "done by the embedded fleet"
        join_the_running_fleet(base_env, data_dir, url, log, tmp_path)
        stop(first)

        second = start()
        # A worker killed as the OOM killer would: cca up starts another and keeps the rest.
        worker = _child_of(second.pid, "cca_cli.main worker --name cca-1@")
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: _child_of(second.pid, "cca_cli.main worker --name cca-1@") not in (None, worker),
                 timeout_s=30, message="cca up to restart the worker")
        assert second.poll() is None
        script = json.dumps({"steps": [{"text": "done after a restart"}]})
        result = cca("--api-url", url, "submit", f"[[script:{script}]]", "--wait", "--json", env=env)
        assert json.loads(result.stdout)["result"] == "done after a restart", result.stderr
        assert "worker-1 exited with code -9" in log.read_text(errors="replace")
        key = (data_dir / "api-key").read_text().strip()
        assert (data_dir / "api-key").stat().st_mode & 0o077 == 0
        assert data_dir.stat().st_mode & 0o066 == 0  # other local users cannot list or read it
        assert httpx.get(f"{url}/api/v1/tasks/{task['id']}", timeout=5).status_code == 401
        again = httpx.get(f"{url}/api/v1/tasks/{task['id']}", headers={"X-API-Key": key}, timeout=5).json()
        assert again["status"] == "succeeded"
        stop(second)
    finally:  # a failed assertion must not leave a fleet running
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
    assert all(process.poll() is not None for process in started)


def join_the_running_fleet(base_env: dict[str, str], data_dir: Path, url: str, log: Path,
                           tmp_path: Path) -> None:
    """Other commands find the running `cca up` by its data directory: client commands (no
    --api-url), a second worker on other queues, doctor; a second `cca up` is refused."""
    banner = log.read_text(errors="replace")
    assert f"API       {url}" in banner and "Redis     redis://" in banner and "Postgres  postgres" in banner
    assert f"cca --data-dir {data_dir} worker" in banner
    assert (data_dir / "fleet.json").stat().st_mode & 0o077 == 0
    elsewhere = {**base_env, "HOME": str(tmp_path / "another-home")}  # no default data dir there
    joined = cca("--data-dir", str(data_dir), "status", "--json", env=elsewhere)
    assert joined.returncode == 0, joined.stderr
    assert json.loads(joined.stdout)["workers"]["online"] == 1
    with (tmp_path / "extra.log").open("wb") as output:
        extra = subprocess.Popen([sys.executable, "-m", "cca_cli.main", "worker", "--data-dir", str(data_dir),
                                  "--queues", "extra", "--name", "extra@test"], env=elsewhere,
                                 stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def extra_online() -> bool:
            listed = json.loads(cca("--data-dir", str(data_dir), "workers", "--json", env=elsewhere).stdout)
            return any(w["hostname"] == "extra@test" and w["queues"] == ["extra"] for w in listed["workers"])

        wait_for(extra_online, timeout_s=60, message="the joined worker to announce itself")
        doctor = cca("doctor", "--data-dir", str(data_dir), "--json", env=elsewhere)
        checks = {check["name"]: check for check in json.loads(doctor.stdout)}
        assert checks["redis"]["ok"] and checks["postgres"]["ok"], doctor.stdout
        again = cca("up", "--data-dir", str(data_dir), env=elsewhere)
        assert again.returncode == 2 and "already up" in again.stderr, again.stderr
    finally:
        os.killpg(extra.pid, signal.SIGTERM)
        extra.wait(30)
    alone = cca("worker", env=elsewhere)  # its own default data dir runs no fleet
    assert alone.returncode == 2 and "no `cca up` fleet runs from" in alone.stderr


def _child_of(parent: int, marker: str) -> int | None:
    """The pid of ``parent``'s live child whose command line holds ``marker``."""
    for line in processes_running(marker):
        pid = int(line.split(":")[0])
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent:
            return pid
    return None


def _workers_online(url: str, data_dir: Path) -> bool:
    try:
        key = (data_dir / "api-key").read_text().strip()
        status = httpx.get(f"{url}/api/v1/status", headers={"X-API-Key": key}, timeout=1)
        return status.json()["workers"]["online"] >= 1
    except (OSError, httpx.TransportError, ValueError, KeyError):
        return False


def test_doctor_names_each_failure_with_its_fix(fleet_env, start_worker):
    failing = cca("doctor", env=fleet_env)
    assert failing.returncode == 1
    assert "FAIL workers" in failing.stdout and "fix: start one: `cca worker`" in failing.stdout
    for healthy in ("ok   claude", "ok   confinement", "ok   redis", "ok   postgres",
                    "ok   pgvector", "ok   migrations"):
        assert healthy in failing.stdout, failing.stdout
    start_worker("w1")
    passing = cca("doctor", "--json", env=fleet_env)
    checks = {check["name"]: check for check in json.loads(passing.stdout)}
    assert passing.returncode == 0, passing.stdout
    assert checks["workers"]["detail"] == "1 online, 2 agent slots"
    assert "2.1.197" in checks["claude"]["detail"]
    assert checks["embeddings"]["detail"].startswith("local/all-MiniLM-L6-v2: 384 dimensions")
    down = {**fleet_env, "CCA__EMBEDDINGS__PROVIDER": "ollama", "CCA__EMBEDDINGS__URL": "http://127.0.0.1:9",
            "CCA__EMBEDDINGS__MAX_RETRIES": "0"}
    failing = cca("doctor", env=down)
    assert "FAIL embeddings" in failing.stdout and "fall back to full text" in failing.stdout


def test_a_worker_that_cannot_confine_agents_refuses_to_start(fleet_env, tmp_path):
    no_bwrap = tmp_path / "bin"
    no_bwrap.mkdir()
    (no_bwrap / "bwrap").symlink_to("/bin/false")  # a bubblewrap that cannot make namespaces
    result = cca("worker", env={**fleet_env, "PATH": f"{no_bwrap}:{fleet_env['PATH']}"},
                 timeout=60)
    assert result.returncode != 0
    assert "agents.confinement" in result.stderr and "bubblewrap" in result.stderr
    assert "Traceback" not in result.stderr


def test_unconfined_agents_are_flagged_by_config_check_and_doctor(fleet_env):
    env = {**fleet_env, "CCA__AGENTS__CONFINEMENT": "none"}
    assert "agents.confinement = none" in cca("config", "check", env=env).stdout
    doctor = cca("doctor", env=env)
    assert doctor.returncode == 1 and "FAIL confinement" in doctor.stdout
    assert "ok   confinement" in cca("doctor", env=fleet_env).stdout


def test_doctor_reports_unreachable_servers(base_env):
    env = {**base_env, "CCA__REDIS__URL": f"redis://127.0.0.1:{free_port()}/0",
           "CCA__POSTGRES__URL": f"postgres://u:secretpw@127.0.0.1:{free_port()}/cca"}
    result = cca("doctor", env=env)
    assert result.returncode == 1
    assert "FAIL redis" in result.stdout and "FAIL postgres" in result.stdout
    assert "secretpw" not in result.stdout and "Traceback" not in result.stdout


def test_json_logs_are_one_object_per_line(fleet_env):
    env = {**fleet_env, "CCA__DAEMON__LOG_FORMAT": "json"}
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "cca_cli.main", "api", "--bind",
                                f"127.0.0.1:{port}", "--processes", "1"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: _answers(f"http://127.0.0.1:{port}/health"), timeout_s=30,
             message="the API to answer")
    process.terminate()
    lines = [line for line in process.communicate(timeout=20)[0].splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]
    assert any("Listening at" in entry["message"] for entry in entries)
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code in (200, 503)
    except httpx.TransportError:
        return False


def test_webhooks_from_the_command_line(fleet_env, api_url):
    added = cca("--api-url", api_url, "webhooks", "add", "http://127.0.0.1:9/hook", "--event",
                "task.finished", "--event", "quota.reached", "--allow-private", env=fleet_env)
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and "not shown again" in added.stderr
    [hook] = json.loads(cca("--api-url", api_url, "webhooks", "list", "--json", env=fleet_env).stdout)
    assert hook["events"] == ["task.finished", "quota.reached"] and hook["secret"] is None
    page = json.loads(cca("--api-url", api_url, "webhooks", "deliveries", hook["id"], "--json",
                          env=fleet_env).stdout)
    assert page["deliveries"] == []
    refused = cca("--api-url", api_url, "webhooks", "add", "http://127.0.0.1:9/hook", "--event",
                  "task.finished", env=fleet_env)
    assert refused.returncode == 1 and "not a public address" in refused.stderr
    assert "Traceback" not in refused.stderr
    unknown = cca("--api-url", api_url, "webhooks", "add", "http://x/", "--event", "task.nope", env=fleet_env)
    assert unknown.returncode == 2 and "--event" in unknown.stderr
    assert cca("--api-url", api_url, "webhooks", "remove", hook["id"], env=fleet_env).returncode == 0
    assert json.loads(cca("--api-url", api_url, "webhooks", "list", "--json", env=fleet_env).stdout) == []


def test_every_task_field_has_a_submit_flag(fleet_env, api_url, tmp_path):
    from cca_cli.tasks import submit
    from cca_core.tasks.schemas import TaskCreate

    flags = {param.name for param in submit.params} | {"memory"}  # --memory K is {"k": K}
    assert set(TaskCreate.model_fields) - {"prompt"} <= flags
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "object", "properties": {"ok": {"type": "boolean"}}}')
    parent = json.loads(cca("--api-url", api_url, "submit", "parent", "--no-repo", "--json",
                            env=fleet_env).stdout)
    result = cca("--api-url", api_url, "submit", "child", "--no-repo", "--json",
                 "--allowed-tool", "Bash(git *)", "--allowed-tool", "Read", "--denied-tool", "WebFetch",
                 "--permission-mode", "allowlist", "--max-budget-usd", "0.5",
                 "--json-schema", f"@{schema}", "--metadata", "ticket=PROJ-1", "--metadata", "team=core",
                 "--retries", '{"rate_limited": {"attempts": 5}}', "--parent", parent["id"], env=fleet_env)
    assert result.returncode == 0, result.stderr
    task = json.loads(result.stdout)
    assert task["allowed_tools"] == ["Bash(git *)", "Read"] and task["denied_tools"] == ["WebFetch"]
    assert task["permission_mode"] == "allowlist" and task["max_budget_usd"] == 0.5
    assert task["json_schema"]["properties"]["ok"] == {"type": "boolean"}
    assert task["metadata"] == {"ticket": "PROJ-1", "team": "core"} and task["parent_id"] == parent["id"]
    bad = cca("--api-url", api_url, "submit", "x", "--json-schema", "{nope", env=fleet_env)
    assert bad.returncode == 2 and "--json-schema" in bad.stderr and "Traceback" not in bad.stderr
    bad = cca("--api-url", api_url, "submit", "x", "--metadata", "novalue", env=fleet_env)
    assert bad.returncode == 2 and "--metadata" in bad.stderr
    bad = cca("--api-url", api_url, "submit", "x", "--no-repo", "--allowed-tool", "Bash(rm -rf /",
              env=fleet_env)
    assert bad.returncode == 1 and "allowed_tools[0]" in bad.stderr
