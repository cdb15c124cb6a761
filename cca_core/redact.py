"""Short previews of prompts for monitoring (Flower), with anything that looks like a secret
removed: monitoring shows what a task is about, never a credential pasted into it."""

from __future__ import annotations

import re

PREVIEW_CHARS = 60
_SECRETS = re.compile(
    r"(sk-ant-[\w-]+|sk-[\w-]{16,}|gh[pousr]_\w{20,}|github_pat_\w+|xox[abpr]-[\w-]+|AKIA[0-9A-Z]{16}"
    r"|eyJ[\w-]+\.[\w-]+\.[\w-]+|cca_[0-9a-f]+_[\w-]+"
    r"|(?i:(?:password|passwd|secret|token|api[_-]?key|authorization)\s*[:=]\s*\S+)"
    r"|(?i:bearer\s+\S+)|://[^/\s:@]+:[^@\s]+@)"
)


def redact(text: str) -> str:
    """Replace secret-looking substrings with ``[redacted]``."""
    return _SECRETS.sub("[redacted]", text)


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """One line of at most ``limit`` characters, secrets removed."""
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
