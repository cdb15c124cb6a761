"""Per-key quotas (concurrent tasks, tokens and USD per day), counted in Postgres from what
agents really spent. Checked for every task a key causes: submitted through the API, or
fired from a schedule the key created."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from cca_core.access.keys import Quotas
from cca_core.errors import QuotaExceeded
from cca_core.tasks.store import usage_today

CONCURRENT_RETRY_S = 5


def check_quotas(connection: Connection, key_name: str, quotas: Quotas) -> None:
    """Raise QuotaExceeded (naming the limit) when a new task would exceed a key's quota."""
    if quotas == Quotas():
        return
    active, tokens, cost = usage_today(connection, key_name)
    if quotas.max_concurrent is not None and active >= quotas.max_concurrent:
        raise QuotaExceeded(f"{active} tasks queued or running, the key's limit is "
                            f"{quotas.max_concurrent}", limit="max_concurrent",
                            retry_after_s=CONCURRENT_RETRY_S)
    if quotas.tokens_per_day is not None and tokens >= quotas.tokens_per_day:
        raise QuotaExceeded(f"{tokens} tokens used today, the key's limit is "
                            f"{quotas.tokens_per_day}", limit="tokens_per_day",
                            retry_after_s=_until_midnight())
    if quotas.usd_per_day is not None and cost >= quotas.usd_per_day:
        raise QuotaExceeded(f"${cost:.4f} spent today, the key's limit is ${quotas.usd_per_day}",
                            limit="usd_per_day", retry_after_s=_until_midnight())


def _until_midnight() -> int:
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((midnight - now).total_seconds()) + 1
