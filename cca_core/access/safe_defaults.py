"""Settings that would open the fleet to whoever can reach it: each is a start-up error of the
process it concerns (the API, a worker), and ``cca config check`` and ``cca doctor`` list them."""

from __future__ import annotations

from cca_core.errors import ConfigError
from cca_core.settings import Settings

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def unsafe_settings(settings: Settings, bind: str | None = None) -> list[ConfigError]:
    """What is unsafe about ``settings`` (with the API bound to ``bind``, its own by default)."""
    daemon = settings.daemon
    errors = []
    host = (bind or daemon.bind_address).rpartition(":")[0]
    if not daemon.require_auth and host not in LOOPBACK:
        errors.append(ConfigError(
            f"daemon.require_auth is false but the API would listen on {host}: anyone who can "
            "reach it could run agents. Set daemon.require_auth = true (with daemon.api_keys) "
            "or bind to 127.0.0.1", field="daemon.require_auth"))
    if daemon.require_auth and settings.agents.bridge_url and not daemon.task_token_secret:
        errors.append(ConfigError(
            "agents.bridge_url is set and daemon.require_auth is true but "
            "daemon.task_token_secret is empty: agents' bridges could not authenticate (and no "
            "cca key may be handed to an agent instead). Set daemon.task_token_secret",
            field="daemon.task_token_secret"))
    return errors


def refuse_unsafe(settings: Settings, bind: str | None = None) -> None:
    """Raise the first of :func:`unsafe_settings`."""
    if errors := unsafe_settings(settings, bind):
        raise errors[0]
