"""The Compose files, the Dockerfile and the deployment doc keep the guide's promises: valid
Compose Specification documents, the guide's images, ports and variable names, commands that
exist, settings that load, and no secret written into any of them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cca_core.infra.config import load_settings
from cca_core.settings import Settings
from tests.support.deploy import (
    CCA_VAR,
    REPO,
    MissingVariable,
    check_command,
    dockerfile_instructions,
    environment,
    interpolate,
    load_compose,
    published,
    references,
    setting_for,
)

DEV, PROD = REPO / "docker-compose.yml", REPO / "docker-compose.prod.yml"
DOCKERFILE, DOCS = REPO / "Dockerfile", REPO / "docs/deployment.md"
# compose-spec's own schema, byte for byte as check-jsonschema 0.39.0 (PyPI) vendors it.
SCHEMA = REPO / "tests/data/compose-spec.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
SECRETS = {"POSTGRES_PASSWORD": "pg-secret", "API_KEYS": "key-one-0123456789,key-two-0123456789",
           "FLOWER_PASSWORD": "flower-secret", "ANTHROPIC_API_KEY": "sk-test",
           "REDIS_PASSWORD": "redis-secret"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|BASIC_AUTH")
CCA_SERVICES = {DEV: {"migrate", "api", "worker", "beat", "flower"},
                PROD: {"migrate", "cca-api-1", "cca-api-2", "worker", "beat", "flower"}}


def cca_services(path: Path) -> dict[str, dict[str, Any]]:
    """The services that run the cca image built from the Dockerfile."""
    services = load_compose(path)["services"]
    built = {name: service for name, service in services.items() if service.get("build") == "."}
    assert set(built) == CCA_SERVICES[path]
    return built


@pytest.mark.parametrize("path", [DEV, PROD], ids=lambda path: path.name)
def test_compose_files_are_valid_compose_specification_documents(path):
    schema_text = SCHEMA.read_bytes()
    assert hashlib.sha256(schema_text).hexdigest() == SCHEMA_SHA256, "the vendored schema changed"
    schema = json.loads(schema_text)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    document = load_compose(path)
    for candidate in (document, interpolate(document, SECRETS)):
        errors = [f"{'/'.join(map(str, error.path))}: {error.message}"
                  for error in validator.iter_errors(candidate)]
        assert errors == []
    assert list(validator.iter_errors({"services": {"x": {"helthcheck": {}}}})), "schema too lax"


def test_dev_compose_keeps_the_guides_servers_ports_and_volumes():
    document = load_compose(DEV)
    services = document["services"]
    assert services["postgres"]["image"] == "pgvector/pgvector:pg16"
    assert services["redis"]["image"] == "redis:7-alpine"
    assert published(services["postgres"]) == {5432: ("127.0.0.1", 5433)}
    assert published(services["redis"]) == {6379: ("127.0.0.1", 6380)}
    assert published(services["api"]) == {9200: ("127.0.0.1", 9200)}
    assert published(services["flower"]) == {5555: ("127.0.0.1", 5555)}
    assert "postgres_data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "redis_data:/data" in services["redis"]["volumes"]
    assert {"postgres_data", "redis_data"} <= set(document["volumes"])
    assert {name for name, s in services.items() if s.get("profiles") == ["fleet"]} == {
        "api", "worker", "beat", "flower"}
    assert all("profiles" not in services[name] for name in ("postgres", "redis", "migrate"))
    assert services["postgres"]["environment"]["POSTGRES_USER"] == "cca"
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "cca"


def test_prod_compose_puts_two_api_processes_behind_haproxy():
    services = load_compose(PROD)["services"]
    assert set(services) == {"haproxy", "cca-api-1", "cca-api-2", "worker", "beat", "flower",
                             "migrate", "postgres", "redis"}
    haproxy = services["haproxy"]
    assert haproxy["image"] == "haproxy:2.8"
    assert published(haproxy) == {9200: ("", 9200)}
    mount = "./ops/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"
    assert mount in haproxy["volumes"]
    config = (REPO / "ops/haproxy/haproxy.cfg").read_text()
    servers = re.findall(r"^\s*server\s+\S+\s+(\S+)", config, re.MULTILINE)
    assert sorted(servers) == ["cca-api-1:9200", "cca-api-2:9200"]
    assert re.search(r"^\s*option forwardfor", config, re.MULTILINE)  # trust_proxy relies on it
    for name in ("cca-api-1", "cca-api-2"):
        assert "ports" not in services[name] and services[name]["expose"] == ["9200"]
        assert services[name]["command"] == ["ccad"]
    assert published(services["flower"]) == {5555: ("127.0.0.1", 5555)}
    assert {"postgres", "redis"}.isdisjoint(name for name, s in services.items() if "ports" in s)
    assert "exec redis-server - --appendonly yes" in services["redis"]["command"][-1]
    assert "postgres_data:/var/lib/postgresql/data" in services["postgres"]["volumes"]


@pytest.mark.parametrize("path", [DEV, PROD], ids=lambda path: path.name)
def test_services_have_health_checks_restart_policies_and_wait_for_healthy_servers(path):
    services = load_compose(path)["services"]
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name, service in services.items():
        expected = "no" if name == "migrate" else ("always" if path == PROD else "unless-stopped")
        assert service.get("restart") == expected, name
    for name, service in cca_services(path).items():
        wanted = {"postgres": "service_healthy", "redis": "service_healthy",
                  "migrate": "service_completed_successfully"}
        if name == "migrate":
            wanted = {"postgres": "service_healthy"}
        assert {dep: cond["condition"] for dep, cond in service["depends_on"].items()} == wanted
        if service["command"] == ["ccad"]:
            probe = " ".join(service["healthcheck"]["test"])
            assert "http://127.0.0.1:9200/health" in probe, name
    assert "worker" in services and services["worker"]["stop_grace_period"] == "630s"


@pytest.mark.parametrize("path", [DEV, PROD], ids=lambda path: path.name)
def test_every_service_command_is_a_real_cca_command(path):
    commands = {name: service["command"] for name, service in cca_services(path).items()}
    assert commands["migrate"] == ["cca", "db", "upgrade"]
    assert commands["worker"] == ["cca", "worker"] and commands["beat"] == ["cca", "beat"]
    assert commands["flower"] == ["cca", "flower"]
    for argv in commands.values():
        check_command(argv)


def test_every_cca_variable_in_the_deploy_files_and_docs_names_a_real_setting():
    texts = [DEV, PROD, DOCKERFILE, DOCS, *sorted((REPO / "ops/systemd").glob("*.service"))]
    variables = {name for path in texts for name in CCA_VAR.findall(path.read_text())}
    variables.discard("CCA__SECTION__KEY")  # the doc's name for the pattern itself
    assert {"CCA__REDIS__URL", "CCA__POSTGRES__URL", "CCA__DAEMON__API_KEYS",
            "CCA__DAEMON__REQUIRE_AUTH"} <= variables
    for name in sorted(variables):
        setting_for(name)


def image_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in dockerfile_instructions(DOCKERFILE):
        if instruction == "ENV":
            env.update(pair.partition("=")[::2] for pair in args.split())
    return {name: value for name, value in env.items() if name.startswith("CCA")}


def settings_of(service: dict[str, Any], monkeypatch, tmp_path: Path) -> Settings:
    """The settings a container of this service loads: image ENV, then the service's."""
    for name in [name for name in os.environ if name.startswith("CCA")]:
        monkeypatch.delenv(name)
    config = tmp_path / "empty.toml"
    config.write_text("")
    monkeypatch.setenv("CCA_CONFIG", str(config))
    env = {**image_environment(), **environment(interpolate(service, SECRETS))}
    for name, value in env.items():
        if name.startswith("CCA"):
            monkeypatch.setenv(name, value)
    return load_settings()


@pytest.mark.parametrize("path", [DEV, PROD], ids=lambda path: path.name)
def test_each_cca_service_loads_the_settings_it_means(path, monkeypatch, tmp_path):
    password = SECRETS["POSTGRES_PASSWORD"]
    for name, service in cca_services(path).items():
        settings = settings_of(service, monkeypatch, tmp_path)
        assert settings.redis.url == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0", name
        assert settings.postgres.url == f"postgres://cca:{password}@postgres:5432/cca", name
        assert settings.daemon.bind_address == "0.0.0.0:9200"
        assert settings.data_dir == Path("/var/lib/cca")
        if name == "flower":
            assert settings.flower.address == "0.0.0.0" and settings.flower.port == 5555
            assert settings.flower.basic_auth, "cca flower refuses 0.0.0.0 without basic auth"
        if path == PROD and service["command"] == ["ccad"]:
            assert settings.daemon.require_auth is True
            assert settings.daemon.api_keys == SECRETS["API_KEYS"].split(",")
            assert settings.security.trust_proxy is True
            assert settings.security.trusted_proxies == ["172.30.92.0/24"]
            assert settings.daemon.log_format == "json"


@pytest.mark.parametrize("variable", ["POSTGRES_PASSWORD", "REDIS_PASSWORD", "API_KEYS",
                                      "FLOWER_PASSWORD"])
def test_prod_compose_refuses_to_start_without_each_secret(variable):
    env = {name: value for name, value in SECRETS.items() if name != variable}
    with pytest.raises(MissingVariable, match=variable):
        interpolate(load_compose(PROD), env)
    interpolate(load_compose(PROD), {**env, variable: "x"})


@pytest.mark.parametrize("path", [DEV, PROD], ids=lambda path: path.name)
def test_no_secret_is_written_into_a_compose_file(path):
    # The dev file may only carry the guide's local credentials (cca/cca) as defaults.
    allowed_defaults = {"", "cca"} if path == DEV else set()
    for name, service in load_compose(path)["services"].items():
        for variable, value in environment(service).items():
            credentials = re.findall(r"://[^:/@\s]+:([^@\s]+)@", value)
            secretish = [value] if SECRET_NAME.search(variable) else []
            for text in secretish + credentials:
                refs = references(text)
                assert refs, f"{name}: {variable} holds a literal secret"
                secret_refs = [ref for ref in refs if SECRET_NAME.search(ref[0])]
                assert secret_refs, f"{name}: {variable} takes no secret from the environment"
                for ref_name, operator, argument in secret_refs:
                    if operator in (":-", "-"):
                        assert argument in allowed_defaults, f"{name}: {ref_name} has a default"


def test_no_deploy_file_writes_a_password_key_or_token():
    files = [DEV, PROD, DOCKERFILE, REPO / ".dockerignore", REPO / "ops/backup",
             REPO / "ops/restore", *sorted((REPO / "ops/systemd").glob("*.service"))]
    literal = re.compile(r"(?im)(password|secret|token|api_keys?|basic_auth)[\"']?\s*[:=]\s*"
                         r"[\"']?([^\s\"',$…]{4,})(?=[\s\"',]|$)")
    for path in files:
        lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
        text = re.sub(r"\$\{[^}]*\}", "${}", "\n".join(lines))  # a reference is no literal
        hits = [match.group(0) for match in literal.finditer(text)]
        assert hits == [], f"{path.name}: {hits}"


def test_the_dockerfile_builds_in_stages_runs_as_cca_and_pins_claude():
    instructions = dockerfile_instructions(DOCKERFILE)
    args = dict(pair.split("=", 1) for kind, pair in instructions if kind == "ARG" and "=" in pair)
    stages = [args_ for kind, args_ in instructions if kind == "FROM"]
    assert len(stages) >= 2 and all(" AS " in stage.upper() for stage in stages)
    last = stages[-1].split()[0]
    assert re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], last) == "python:3.11-slim"
    final = instructions[max(i for i, (kind, _) in enumerate(instructions) if kind == "FROM"):]
    users = [value for kind, value in final if kind == "USER"]
    assert users == ["cca"]
    assert not any("nodejs" in value or "npm " in value for kind, value in final if kind == "RUN")
    setup = (REPO / "scripts/setup").read_text()
    pinned = re.search(r'CLAUDE_VERSION="([\d.]+)"', setup)
    assert pinned and args["CLAUDE_VERSION"] == pinned[1] == "2.1.197"
    assert any('@anthropic-ai/claude-code@${CLAUDE_VERSION}' in value
               for kind, value in instructions if kind == "RUN")
    assert ("EXPOSE", "9200") in final
    cmd = [json.loads(value) for kind, value in final if kind == "CMD"]
    assert cmd == [["ccad"]] and not [kind for kind, _ in final if kind == "ENTRYPOINT"]
    check_command(cmd[0])


@pytest.mark.parametrize("path", [DEV, PROD], ids=lambda path: path.name)
def test_agents_are_confined_and_the_servers_ask_for_passwords(path):
    services = interpolate(load_compose(path), SECRETS)["services"]
    assert "bubblewrap" in DOCKERFILE.read_text()
    for name, service in cca_services(path).items():
        # the worker may create bubblewrap's namespaces; nothing else loosens Docker's profile
        expected = (["seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"]
                    if name == "worker" else None)
        assert service.get("security_opt") == expected, name
        assert "AGENTS__CONFINEMENT" not in str(service.get("environment"))
    redis = services["redis"]
    assert "requirepass $REDISCLI_AUTH" in redis["command"][-1]
    assert environment(redis)["REDISCLI_AUTH"] == "redis-secret"


def test_the_image_gets_every_package_and_nothing_the_dockerignore_keeps_out():
    ignore = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", "send the build context by allow-list"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = []
    for kind, value in dockerfile_instructions(DOCKERFILE):
        if kind == "COPY" and not value.startswith("--from"):
            sources += value.split()[:-1]
    sources = [source.rstrip("/") for source in sources]
    for source in sources:
        assert (REPO / source).exists() and source in allowed, source
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {package.rstrip("*") for package in packages} <= set(sources)
    assert pyproject["project"]["readme"] in sources
    assert not allowed & {".git", ".venv", ".cache", "cca.toml", ".env", "tests"}


def test_the_deployment_doc_names_files_that_exist_and_the_readme_links_it():
    doc = DOCS.read_text()
    paths = set(re.findall(r"(?<![\w/.])((?:ops|docs|scripts)/[\w.@/-]*\w|docker-compose[\w.]*\.yml)",
                           doc))
    assert {"docker-compose.yml", "docker-compose.prod.yml", "ops/backup", "ops/restore"} <= paths
    links = set(re.findall(r"\]\(([^)#:]+)\)", doc))
    for path in paths | {str(Path("docs", link)) for link in links}:
        assert (REPO / path).resolve().exists(), path
    for port in ("5433", "6380", "9200", "5555"):
        assert port in doc
    assert "docs/deployment.md" in (REPO / "README.md").read_text()
