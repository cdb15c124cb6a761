"""Where an agent works: a per-task directory under the workspace root, or the task's own
``cwd`` when it resolves (symlinks followed) inside an allowed root."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cca_core.errors import Invalid


def check_cwd(cwd: str, allowed_roots: Sequence[str], field: str = "cwd") -> Path:
    """Return the resolved ``cwd``; raise Invalid (naming ``field``) if it escapes every root."""
    if not os.path.isabs(cwd):
        raise Invalid(f"{field} must be an absolute path", field=field)
    resolved = Path(os.path.realpath(cwd))
    roots = [Path(os.path.realpath(os.path.expanduser(root))) for root in allowed_roots]
    if not any(resolved == root or root in resolved.parents for root in roots):
        allowed = ", ".join(str(root) for root in roots) or "none configured (agents.allowed_roots)"
        raise Invalid(f"{field} {cwd} is outside the allowed roots: {allowed}", field=field)
    return resolved


def prepare_workdir(
    task_id: str, cwd: str | None, workspace_root: Path, allowed_roots: Sequence[str]
) -> Path:
    """Create (if needed) and return the directory the agent runs in."""
    if cwd:
        path = check_cwd(cwd, allowed_roots)
        if not path.is_dir():
            raise Invalid(f"cwd {cwd} is not a directory", field="cwd")
        return path
    path = workspace_root / task_id
    path.mkdir(parents=True, exist_ok=True)
    return path
