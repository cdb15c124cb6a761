"""The local admin key of ``cca up``: made once per data directory, readable only by its
owner, found by the CLI and the MCP bridge without flags."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_FILE = "api-key"
TOKEN_SECRET = "task-token-secret"  # signs the task tokens of agents' bridges


def read_local_key(data_dir: Path, name: str = KEY_FILE) -> str | None:
    try:
        return (data_dir / name).read_text().strip() or None
    except OSError:
        return None


def ensure_local_key(data_dir: Path, name: str = KEY_FILE) -> str:
    """Return the data directory's secret ``name``, creating it (mode 0600) on first use."""
    existing = read_local_key(data_dir, name)
    if existing:
        return existing
    data_dir.mkdir(parents=True, exist_ok=True)
    key = f"cca-local-{secrets.token_urlsafe(32)}"
    fd = os.open(data_dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key
