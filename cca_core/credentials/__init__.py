"""The model API credentials the fleet lends to agents: which there are (this module), when a
rate limit frees one again (:mod:`.limits`, pure) and who holds one now (:mod:`.pool`, Redis)."""

from __future__ import annotations

from collections.abc import Mapping

from cca_core.settings import ANTHROPIC_API, CredentialSettings, Settings

# The credential made of the ANTHROPIC_* environment when ``[credentials]`` names none.
ENVIRONMENT_CREDENTIAL = "default"


def fleet_credentials(settings: Settings, environ: Mapping[str, str]) -> dict[str, CredentialSettings]:
    """The credentials a worker lends: ``[credentials.NAME]``, or else the one its environment
    gives (``ANTHROPIC_API_KEY`` or ``ANTHROPIC_AUTH_TOKEN``, with ``ANTHROPIC_BASE_URL``;
    ``agents.env`` over the worker's own), uncapped. None at all: agents find their own."""
    if settings.credentials:
        return dict(settings.credentials)
    env = {**environ, **settings.agents.env}
    key, token = env.get("ANTHROPIC_API_KEY", ""), env.get("ANTHROPIC_AUTH_TOKEN", "")
    if not key and not token:
        return {}
    return {ENVIRONMENT_CREDENTIAL: CredentialSettings(
        api_key=key, auth_token="" if key else token,
        base_url=env.get("ANTHROPIC_BASE_URL") or ANTHROPIC_API)}
