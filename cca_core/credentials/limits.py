"""When a rate-limited credential is free again, read from the model API's headers (pure).

Anthropic's API answers a 429 with ``retry-after`` (seconds) and its limits' state in
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``
(resets as RFC 3339 times); a subscription's windows come as
``anthropic-ratelimit-unified-*-reset`` (Unix seconds). Gateways that speak the API pass
them on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

RATE_LIMIT_PREFIX = "anthropic-ratelimit-"


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit headers of a response (names lower-cased), ``retry-after`` included."""
    return {name.lower(): value for name, value in headers.items()
            if name.lower().startswith(RATE_LIMIT_PREFIX) or name.lower() == "retry-after"}


def reset_of(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """When a credential refused with these headers may be used again: the later of its
    ``retry-after`` and the resets of the limits it exhausted (any reset when it names no
    exhausted one); None when the headers say nothing."""
    limits = rate_limit_headers(headers)
    resets = {name.removesuffix("-reset"): when for name, value in limits.items()
              if name.endswith("-reset") and (when := _time(value)) is not None}
    exhausted = [when for limit, when in resets.items() if limits.get(f"{limit}-remaining") == "0"]
    after = _retry_after(limits.get("retry-after", ""), now)
    candidates = [*([after] if after else []), *(exhausted or ([] if after else resets.values()))]
    return max(candidates) if candidates else None


def _retry_after(value: str, now: datetime) -> datetime | None:
    try:
        return now + timedelta(seconds=max(0.0, float(value)))
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def _time(value: str) -> datetime | None:
    """An RFC 3339 time or Unix seconds."""
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError):
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
