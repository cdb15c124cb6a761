"""Configuration: files deep-merged, CCA__SECTION__KEY overrides, ${VAR}, validation, masking."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from cca_core.errors import ConfigError
from cca_core.infra.config import load_settings, masked


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated HOME and working directory, with no CCA variables inherited."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home/.config/cca").mkdir(parents=True)
    for name in list(__import__("os").environ):
        if name.startswith("CCA"):
            monkeypatch.delenv(name)
    return tmp_path


def test_defaults_match_the_guide(home):
    settings = load_settings()
    assert settings.daemon.bind_address == "127.0.0.1:9200"
    assert settings.agents.permissions.mode == "allowlist"
    assert settings.redis.context_ttl_seconds == 7200


def test_user_file_then_project_file_deep_merged(home):
    (home / "home/.config/cca/cca.toml").write_text(
        '[redis]\nurl = "redis://user:6380"\npool_size = 7\n[daemon]\nmax_agents = 3\n')
    (home / "cca.toml").write_text('[redis]\nurl = "redis://project:6380"\n')
    settings = load_settings()
    assert settings.redis.url == "redis://project:6380"
    assert settings.redis.pool_size == 7
    assert settings.daemon.max_agents == 3


def test_cca_config_names_one_file_instead(home, monkeypatch):
    (home / "cca.toml").write_text('[daemon]\nmax_agents = 3\n')
    other = home / "other.toml"
    other.write_text('[daemon]\nmax_agents = 9\n')
    monkeypatch.setenv("CCA_CONFIG", str(other))
    assert load_settings().daemon.max_agents == 9


def test_missing_cca_config_file_is_named(home, monkeypatch):
    monkeypatch.setenv("CCA_CONFIG", str(home / "nope.toml"))
    with pytest.raises(ConfigError, match="nope.toml"):
        load_settings()


def test_the_guides_environment_variables_work(home, monkeypatch):
    monkeypatch.setenv("CCA__REDIS__URL", "redis://redis-host:6379")
    monkeypatch.setenv("CCA__POSTGRES__URL", "postgres://user:pass@pg-host:5432/cca")
    monkeypatch.setenv("CCA__DAEMON__API_KEYS", "key1,key2,key3")
    monkeypatch.setenv("CCA__DAEMON__REQUIRE_AUTH", "true")
    monkeypatch.setenv("CCA__AGENTS__CLAUDE_PATH", "/usr/local/bin/claude")
    monkeypatch.setenv("CCA__DAEMON__BIND_ADDRESS", "0.0.0.0:9200")
    monkeypatch.setenv("CCA__DAEMON__MAX_AGENTS", "20")
    settings = load_settings()
    assert settings.redis.url == "redis://redis-host:6379"
    assert settings.postgres.url == "postgres://user:pass@pg-host:5432/cca"
    assert settings.daemon.api_keys == ["key1", "key2", "key3"]
    assert settings.daemon.require_auth is True
    assert settings.agents.claude_path == "/usr/local/bin/claude"
    assert settings.daemon.bind_address == "0.0.0.0:9200"
    assert settings.daemon.max_agents == 20


def test_environment_wins_over_files(home, monkeypatch):
    (home / "cca.toml").write_text('[daemon]\nmax_agents = 3\n')
    monkeypatch.setenv("CCA__DAEMON__MAX_AGENTS", "5")
    assert load_settings().daemon.max_agents == 5


def test_variables_in_strings_are_expanded(home, monkeypatch):
    (home / "cca.toml").write_text('[redis]\nurl = "${REDIS_URL}"\n[postgres]\nurl = "${DATABASE_URL}"\n')
    monkeypatch.setenv("REDIS_URL", "redis://r:1")
    monkeypatch.setenv("DATABASE_URL", "postgres://p/db")
    settings = load_settings()
    assert (settings.redis.url, settings.postgres.url) == ("redis://r:1", "postgres://p/db")


def test_an_unset_variable_names_the_key(home):
    (home / "cca.toml").write_text('[redis]\nurl = "${CCA_TEST_UNSET_VAR}"\n')
    with pytest.raises(ConfigError, match="redis.url.*CCA_TEST_UNSET_VAR") as error:
        load_settings()
    assert error.value.field == "redis.url"


@pytest.mark.parametrize(("text", "key"), [
    ('[daemon]\nmax_agents = "many"\n', "daemon.max_agents"),
    ('[daemon]\nmax_agent = 3\n', "daemon.max_agent"),
    ('[agents.permissions]\nmode = "yolo"\n', "agents.permissions.mode"),
    ('[daemon]\nbind_address = "9200"\n', "daemon.bind_address"),
    ('[redis]\ncontext_ttl_seconds = 0\n', "redis.context_ttl_seconds"),
    ('[credentials.a]\nmax_agents = 2\n', "credentials.a"),
    ('[credentials.a]\napi_key = "k"\nauth_token = "t"\n', "credentials.a"),
    ('[credentials.a]\napi_key = "k"\nbase_url = "api.example.com"\n', "credentials.a.base_url"),
    ('[credentials.a]\napi_key = "k"\nmax_agents = -1\n', "credentials.a.max_agents"),
    ('[credentials."a b"]\napi_key = "k"\n', "credentials"),
])
def test_bad_values_name_the_key(home, text, key):
    (home / "cca.toml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert error.value.field == key
    assert key in error.value.message


def test_a_broken_file_is_named(home):
    (home / "cca.toml").write_text("[daemon\n")
    with pytest.raises(ConfigError, match="cca.toml"):
        load_settings()


def test_agent_env_keeps_the_case_of_variable_names(home, monkeypatch):
    (home / "cca.toml").write_text('[agents.env]\nCLAUDE_CODE_MAX_RETRIES = 2\n')
    monkeypatch.setenv("CCA__AGENTS__ENV__API_TIMEOUT_MS", "5000")
    assert load_settings().agents.env == {"CLAUDE_CODE_MAX_RETRIES": "2", "API_TIMEOUT_MS": "5000"}


def test_a_credential_from_the_environment_is_masked_when_shown(home, monkeypatch):
    monkeypatch.setenv("CCA__CREDENTIALS__TEAM__API_KEY", "sk-ant-team-secret")
    monkeypatch.setenv("CCA__CREDENTIALS__TEAM__MAX_AGENTS", "3")
    settings = load_settings()
    assert (settings.credentials["team"].api_key, settings.credentials["team"].max_agents) == \
        ("sk-ant-team-secret", 3)
    shown = json.dumps(masked(settings))
    assert "sk-ant-team-secret" not in shown and '"max_agents": 3' in shown


def test_overrides_win(home):
    assert load_settings({"daemon": {"max_agents": 11}}).daemon.max_agents == 11


def test_show_masks_every_secret(home, monkeypatch):
    monkeypatch.setenv("CCA__DAEMON__API_KEYS", "super-secret-key-1,super-secret-key-2")
    monkeypatch.setenv("CCA__POSTGRES__URL", "postgres://cca:hunter2@db:5432/cca")
    monkeypatch.setenv("CCA__REDIS__URL", "redis://:redispw@r:6379/0")
    monkeypatch.setenv("CCA__AGENTS__ENV__ANTHROPIC_API_KEY", "sk-ant-xyz")
    text = json.dumps(masked(load_settings()))
    for secret in ("super-secret-key", "hunter2", "redispw", "sk-ant-xyz"):
        assert secret not in text
    assert "postgres://cca:********@db:5432/cca" in text


def test_the_example_file_is_valid_and_documents_every_key(home, monkeypatch):
    from cca_core.settings import Settings

    example = Path(__file__).resolve().parents[3] / "cca.toml.example"
    config = home / "cca.toml"  # the name it is copied to (dynaconf reads .toml files only)
    config.write_text(example.read_text())
    monkeypatch.setenv("CCA_CONFIG", str(config))
    settings = load_settings()
    assert settings.daemon.bind_address == "127.0.0.1:9200"
    assert settings.retries.rules and settings.memory.summary_chars == 1500  # the file was read
    text = example.read_text()
    for section, model in Settings.model_fields.items():
        assert f"[{section}]" in text, section
        # a table of named entries ([credentials.NAME]) documents the keys of one entry
        annotation = typing.get_args(model.annotation)[-1] if model.annotation is not None and \
            typing.get_origin(model.annotation) is dict else model.annotation
        for key in annotation.model_fields:  # type: ignore[union-attr]
            assert f"{key} =" in text or f"[{section}.{key}" in text, f"{section}.{key}"
