"""Safe defaults: an API open to the network without keys, or bridges that could not
authenticate, refuse to start (real `cca` processes); an API that requires keys and has none
makes one; the image and the compose files require keys."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cca_core.infra.embedded import free_port
from tests.conftest import start_api_process
from tests.support.cli import cca
from tests.support.deploy import environment, load_compose

pytestmark = [pytest.mark.integration, pytest.mark.attack]
REPO = Path(__file__).resolve().parents[2]



@pytest.mark.parametrize("command", [("api", "--bind", "0.0.0.0:{port}"), ("config", "check")])
def test_an_api_open_to_the_network_without_keys_refuses_to_start(fleet_env, command):
    env = {**fleet_env, "CCA__DAEMON__BIND_ADDRESS": "0.0.0.0:9200"}
    result = cca(*(part.format(port=free_port()) for part in command), env=env)
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "daemon.require_auth is false" in said and "0.0.0.0" in said
    assert "Traceback" not in said


@pytest.mark.parametrize("command", [("worker",), ("api",), ("config", "check")])
def test_bridges_without_a_task_token_secret_refuse_to_start(fleet_env, command):
    env = {**fleet_env, "CCA__DAEMON__REQUIRE_AUTH": "true",
           "CCA__DAEMON__API_KEYS": "an-admin-key-0123456789",
           "CCA__AGENTS__BRIDGE_URL": "http://127.0.0.1:9200"}
    result = cca(*command, env=env)
    assert result.returncode != 0
    assert "daemon.task_token_secret" in result.stdout + result.stderr


def test_doctor_fails_on_an_unsafe_setting(fleet_env):
    result = cca("doctor", env={**fleet_env, "CCA__DAEMON__BIND_ADDRESS": "0.0.0.0:9200"})
    assert result.returncode == 1 and "FAIL config" in result.stdout
    assert "set daemon.require_auth" in result.stdout


def test_an_api_that_requires_keys_and_has_none_makes_an_admin_key(config_data, tmp_path):
    data = tmp_path / "api-data"
    url = start_api_process(tmp_path, {**config_data, "daemon": {"require_auth": True},
                                       "embedded": {"data_dir": str(data)}})
    key = (data / "api-key").read_text().strip()
    assert (data / "api-key").stat().st_mode & 0o077 == 0
    assert httpx.get(f"{url}/api/v1/tasks", timeout=5).status_code == 401
    assert httpx.get(f"{url}/api/v1/tasks", headers={"X-API-Key": key}, timeout=5).status_code == 200


def test_the_image_and_the_compose_files_require_keys():
    assert "CCA__DAEMON__REQUIRE_AUTH=true" in (REPO / "Dockerfile").read_text()
    for name in ("docker-compose.yml", "docker-compose.prod.yml"):
        for service in load_compose(REPO / name)["services"].values():
            # the image's default holds unless a service says true again; none turns it off
            assert environment(service).get("CCA__DAEMON__REQUIRE_AUTH", "true") == "true"
    api = load_compose(REPO / "docker-compose.yml")["services"]["api"]
    assert "api_data:/var/lib/cca" in api["volumes"]  # where it keeps the admin key it makes
