"""Task tokens: what a fleet agent's MCP bridge authenticates with.

A worker gives the bridge of a running task ``ccat_<task id>_<mac>``, an HMAC of the task id
under ``daemon.task_token_secret`` (shared by the API processes and the workers). The API
accepts it only while that task runs, and only to submit children of that task and to read
its tenant's tasks: never one of cca's API keys in an agent's reach.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "ccat_"


def mint(secret: str, task_id: str) -> str:
    return f"{PREFIX}{task_id}_{_mac(secret, task_id)}"


def verify(secret: str, token: str) -> str | None:
    """The task id a token was minted for, or None for anything else."""
    if not secret or not token.startswith(PREFIX):
        return None
    task_id, _, mac = token[len(PREFIX):].partition("_")  # ids have no "_"; the mac may
    if not task_id or not hmac.compare_digest(mac, _mac(secret, task_id)):
        return None
    return task_id


def _mac(secret: str, task_id: str) -> str:
    digest = hmac.new(secret.encode(), task_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
