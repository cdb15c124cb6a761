"""Remove secrets from text before anyone else sees it: logs, monitoring (Flower), task events,
results and error messages.

One rule for every place: :class:`Redactor` replaces the exact secret values a process knows
(the keys it was configured with, the task token it handed an agent, the model API key in the
agent's environment) and anything that looks like a secret (cca keys and task tokens,
provider keys, ``NAME=value`` for secret-looking names, credentials in URLs) with
``[redacted]``. :func:`redact` is the same rule with no known values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from cca_core.settings import Settings

MASK = "[redacted]"
PREVIEW_CHARS = 60
# Shorter known values are not replaced: "1" or "true" would blank out every such word.
MIN_SECRET_CHARS = 8
# Environment names whose values are credentials (ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN,
# CCA_API_KEY, AWS_SECRET_ACCESS_KEY...).
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|AUTH|CREDENTIAL", re.IGNORECASE)

# Values that are secrets wherever they appear.
_VALUES = (
    r"ccat_[0-9a-fA-F-]+_[\w-]+"              # a task token (cca_core.access.task_tokens)
    r"|cca_[0-9a-f]+_[\w-]+"                  # a managed API key (cca_core.access.keys)
    r"|cca-local-[\w-]+"                      # the local admin key of `cca up` (cca_core.infra.local_secrets)
    r"|sk-ant-[\w-]+|sk-[\w-]{16,}|gh[pousr]_\w{20,}|github_pat_\w+|xox[abpr]-[\w-]+"
    r"|AKIA[0-9A-Z]{16}|eyJ[\w-]+\.[\w-]+\.[\w-]+"
)
# ``name=value`` / ``name: value`` where the name ends in a word that says the value is a
# secret (``input_tokens: 5`` is not one). Only that word is matched, so the rest of the name is
# kept without being scanned (a scan of every word's prefix cost 20 times more). A file name
# is not a name (``cat: /etc/cca/api-key: No such file``).
_ASSIGNMENTS = (
    r"(?P<name>\bANTHROPIC_\w*|(?<!/)(?i:password|passwd|secret|token|api[_-]?key|authorization))"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<value>(?i:(?:bearer|basic)\s+)?[^\s\"',;&]+)"
)
_BEARER = r"(?P<bearer>(?i:bearer)\s+)[\w.~+/=-]+"
_URL_CREDENTIALS = r"(?P<scheme>://)[^/\s:@]*:[^@\s/]+@"
_PATTERN = re.compile(f"{_ASSIGNMENTS}|{_BEARER}|{_URL_CREDENTIALS}|{_VALUES}")
# What every match of _PATTERN contains, lower-cased. Python's re scans case-insensitive
# alternations slowly (~40 us per event); this case-sensitive search of the lower-cased text
# (~7 us) lets the full pattern run only on text that may hold a secret.
_TRIGGER = re.compile(r"password|passwd|secret|token|api[_-]?key|authorization|anthropic_|bearer"
                      r"|://|cca|sk-|gh[pousr]_|github_pat_|xox[abpr]-|akia|eyj")


def _mask(match: re.Match[str]) -> str:
    if match.group("value") is not None:
        return f"{match.group('name')}{match.group('sep')}{MASK}"
    if match.group("bearer") is not None:
        return f"{match.group('bearer')}{MASK}"
    if match.group("scheme") is not None:
        return f"://{MASK}@"
    return MASK


class Redactor:
    """Redacts the given known secret values and every secret-looking substring."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        known = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len,
                       reverse=True)  # longest first: a secret that contains another
        self._known = re.compile("|".join(map(re.escape, known))) if known else None

    def text(self, text: str) -> str:
        """``text`` with every secret replaced by ``[redacted]``."""
        if self._known is not None:
            text = self._known.sub(MASK, text)
        return _PATTERN.sub(_mask, text) if _TRIGGER.search(text.lower()) else text

    def value(self, value: Any) -> Any:
        """A JSON-like value (dicts, lists, strings, numbers) with every string redacted;
        keys of dicts are kept (they are names, not values)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value


_PATTERNS_ONLY = Redactor()


def redact(text: str) -> str:
    """Replace secret-looking substrings with ``[redacted]`` (no known values)."""
    return _PATTERNS_ONLY.text(text)


def secret_env_values(env: Mapping[str, str]) -> list[str]:
    """The values of ``env`` whose names say they are credentials, and every ``ANTHROPIC_*``
    value that is not a URL or a model name."""
    return [value for name, value in env.items()
            if SECRET_NAME.search(name) or (name.startswith("ANTHROPIC_")
                                            and not name.endswith(("_URL", "_MODEL")))]


def url_password(url: str) -> str | None:
    """The password in a server URL (``redis://:pw@host``, ``postgres://u:pw@host/db``)."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


# In a preview, any long run of letters and digits may be a credential of a form no pattern
# knows (an admin key of the configuration): a preview says what a task is about without it.
_OPAQUE = re.compile(r"(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{20,}")


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """One line of at most ``limit`` characters, secrets and opaque tokens removed."""
    flat = " ".join(_OPAQUE.sub(MASK, redact(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def settings_secrets(settings: Settings) -> list[str]:
    """The secret values a process's configuration holds: API keys, the task-token secret,
    the model credentials, the passwords in the server URLs and Flower's ``user:password``
    pairs."""
    passwords = [url_password(url) for url in (settings.redis.url, settings.postgres.url)]
    pairs = settings.flower.basic_auth
    credentials = [credential.api_key or credential.auth_token
                   for credential in settings.credentials.values()]
    return [*settings.daemon.api_keys, settings.daemon.task_token_secret, settings.embeddings.api_key,
            *credentials,
            *(password for password in passwords if password), *pairs,
            *(pair.partition(":")[2] for pair in pairs)]
