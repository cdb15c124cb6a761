"""When a rate-limited credential is free again, from the model API's headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cca_core.credentials import fleet_credentials
from cca_core.credentials.limits import rate_limit_headers, reset_of
from cca_core.settings import ANTHROPIC_API, Settings

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def test_retry_after_alone_is_the_reset():
    assert reset_of({"Retry-After": "42"}, NOW) == NOW + timedelta(seconds=42)
    assert reset_of({"retry-after": "Fri, 04 Dec 2026 10:05:00 GMT"}, NOW) == NOW + timedelta(minutes=5)


def test_the_latest_reset_of_an_exhausted_limit_wins_over_a_short_retry_after():
    headers = {"retry-after": "5",
               "anthropic-ratelimit-tokens-remaining": "0", "anthropic-ratelimit-tokens-reset": at(300),
               "anthropic-ratelimit-requests-remaining": "17", "anthropic-ratelimit-requests-reset": at(900)}
    assert reset_of(headers, NOW) == NOW + timedelta(seconds=300)  # not the requests' (not exhausted)


def test_without_retry_after_any_reset_is_used_and_unix_seconds_are_read():
    assert reset_of({"anthropic-ratelimit-input-tokens-reset": at(60)}, NOW) == NOW + timedelta(seconds=60)
    epoch = (NOW + timedelta(hours=5)).timestamp()
    headers = {"anthropic-ratelimit-unified-5h-reset": str(int(epoch)),
               "anthropic-ratelimit-unified-5h-remaining": "0"}
    assert reset_of(headers, NOW) == NOW + timedelta(hours=5)


def test_headers_that_say_nothing_give_no_reset():
    assert reset_of({}, NOW) is None
    assert reset_of({"retry-after": "soon", "anthropic-ratelimit-tokens-reset": "tomorrow"}, NOW) is None
    assert rate_limit_headers({"Content-Type": "x", "Anthropic-RateLimit-Tokens-Limit": "9",
                               "Retry-After": "1"}) == {"anthropic-ratelimit-tokens-limit": "9",
                                                        "retry-after": "1"}


def test_the_environment_gives_one_uncapped_credential_unless_credentials_are_configured():
    env = {"ANTHROPIC_API_KEY": "sk-env", "ANTHROPIC_BASE_URL": "http://gw:4000/"}
    (name, credential), = fleet_credentials(Settings(), env).items()
    assert (credential.api_key, credential.base_url, credential.max_agents) == ("sk-env", "http://gw:4000", 0)
    token = fleet_credentials(Settings(), {"ANTHROPIC_AUTH_TOKEN": "tok"})[name]
    assert (token.api_key, token.auth_token, token.base_url) == ("", "tok", ANTHROPIC_API)
    assert fleet_credentials(Settings(), {"PATH": "/bin"}) == {}
    configured = Settings(credentials={"team-a": {"api_key": "sk-a", "max_agents": 2}})
    assert list(fleet_credentials(configured, env)) == ["team-a"]
