"""Who holds which credential, shared by every worker in Redis.

A run takes a credential before it starts and gives it back when it ends: a lease (a holder
in the credential's sorted set, scored by when it expires) that the run's heartbeat renews,
so a dead worker's leases lapse on their own. A credential takes a holder while it has room
under its ``max_agents`` and is not parked; a rate limit with a reset parks it until then.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from cca_core.names import (
    credential_leases_key,
    credential_limits_key,
    credential_parked_key,
    credential_usage_key,
)
from cca_core.settings import CredentialSettings

USAGE_TTL_S = 8 * 86400
LIMITS_TTL_S = 86400
_NO_CAP = 1_000_000_000

# KEYS: leases and parked key of each credential, in turn. ARGV: now (ms), lease expiry (ms),
# holder, then each credential's cap. Takes the credential with the most room; else tells
# the earliest reset when every credential is parked, or 0 when some are merely full.
_ACQUIRE = """
local best, best_room, earliest, all_parked = 0, 0, nil, true
for i = 1, #KEYS / 2 do
  local leases, parked = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', ARGV[1])
  local reset = redis.call('GET', parked)
  if reset then
    if not earliest or tonumber(reset) < tonumber(earliest) then earliest = reset end
  else
    all_parked = false
    local room = tonumber(ARGV[3 + i]) - redis.call('ZCARD', leases)
    if room > best_room then best, best_room = i, room end
  end
end
if best > 0 then
  redis.call('ZADD', KEYS[2 * best - 1], ARGV[2], ARGV[3])
  return {best, '0'}
end
if all_parked and earliest then return {0, earliest} end
return {0, '0'}
"""


@dataclass(frozen=True)
class Lease:
    credential: str
    holder: str


@dataclass(frozen=True)
class Busy:
    """No credential has room. ``reset``: when the first parked one frees, if all are parked
    (a usage window); None when some are only full (a lease will be given back)."""

    reset: datetime | None


class CredentialPool:
    def __init__(self, client: redis.Redis, credentials: Mapping[str, CredentialSettings],
                 lease_s: int) -> None:
        self.client = client
        self.credentials = dict(credentials)
        self.lease_s = lease_s
        self._acquire = client.register_script(_ACQUIRE)
        self._keys = [key for name in self.credentials
                      for key in (credential_leases_key(name), credential_parked_key(name))]
        self._caps = [credential.max_agents or _NO_CAP for credential in self.credentials.values()]

    def acquire(self, holder: str) -> Lease | Busy:
        """Lease the credential with the most room to ``holder`` (unique per run)."""
        now_ms = int(time.time() * 1000)
        index, reset = self._acquire(keys=self._keys,
                                     args=[now_ms, now_ms + self.lease_s * 1000, holder, *self._caps])
        if int(index):
            return Lease(list(self.credentials)[int(index) - 1], holder)
        seconds = float(reset)
        return Busy(datetime.fromtimestamp(seconds, UTC) if seconds else None)

    def renew(self, lease: Lease) -> None:
        self.client.zadd(credential_leases_key(lease.credential),
                         {lease.holder: int((time.time() + self.lease_s) * 1000)}, xx=True)

    def release(self, lease: Lease) -> bool:
        """Give ``lease`` back; True when its credential now has room (it is not parked)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(credential_leases_key(lease.credential), lease.holder)
        pipe.exists(credential_parked_key(lease.credential))
        return not pipe.execute()[1]

    def park(self, name: str, until: datetime) -> None:
        """Hold credential ``name`` back until ``until`` (a rate limit's reset)."""
        until_ms = int(until.timestamp() * 1000)
        if until_ms > time.time() * 1000:
            self.client.set(credential_parked_key(name), str(until.timestamp()), pxat=until_ms)

    def parked(self) -> set[str]:
        """The credentials in a usage window now."""
        pipe = self.client.pipeline(transaction=False)
        for name in self.credentials:
            pipe.exists(credential_parked_key(name))
        return {name for name, parked in zip(self.credentials, pipe.execute(), strict=True) if parked}

    def parked_until(self, name: str) -> datetime | None:
        value = self.client.get(credential_parked_key(name))
        return datetime.fromtimestamp(float(value), UTC) if value else None

    def has_room(self) -> bool:
        """Whether some credential would take a holder now."""
        now_ms = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        for name in self.credentials:
            pipe.zcount(credential_leases_key(name), now_ms, "+inf")
            pipe.exists(credential_parked_key(name))
        replies = pipe.execute()
        return any(not replies[2 * i + 1] and replies[2 * i] < cap for i, cap in enumerate(self._caps))

    def next_free(self) -> datetime:
        """When some credential is next free of its window: now unless all are parked."""
        resets = [self.parked_until(name) for name in self.credentials]
        if any(reset is None for reset in resets):
            return datetime.now(UTC)
        return min(reset for reset in resets if reset is not None)

    def record(self, name: str, limits: Mapping[str, str], tokens: Mapping[str, int]) -> None:
        """A response through ``name``: its rate-limit headers (if any) and its tokens."""
        pipe = self.client.pipeline(transaction=False)
        if limits:
            pipe.delete(credential_limits_key(name))
            for header, value in limits.items():
                pipe.hset(credential_limits_key(name), header, value)
            pipe.expire(credential_limits_key(name), LIMITS_TTL_S)
        usage = credential_usage_key(name, datetime.now(UTC).strftime("%Y%m%d"))
        pipe.hincrby(usage, "requests", 1)
        for field, count in tokens.items():
            if count:
                pipe.hincrby(usage, field, count)
        pipe.expire(usage, USAGE_TTL_S)
        pipe.execute()


def describe(credentials: Mapping[str, CredentialSettings]) -> dict[str, dict[str, Any]]:
    """What a worker announces of its credentials: no secret."""
    return {name: {"base_url": credential.base_url, "max_agents": credential.max_agents or None}
            for name, credential in credentials.items()}


def credential_status(client: redis.Redis,
                      described: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each credential as the fleet sees it now: agents holding it, its window, the rate-limit
    headers of its last response, what went through it today."""
    now_ms = int(time.time() * 1000)
    day = datetime.now(UTC).strftime("%Y%m%d")
    pipe = client.pipeline(transaction=False)
    for name in described:
        pipe.zcount(credential_leases_key(name), now_ms, "+inf")
        pipe.get(credential_parked_key(name))
        pipe.hgetall(credential_limits_key(name))
        pipe.hgetall(credential_usage_key(name, day))
    replies = pipe.execute()
    rows: list[dict[str, Any]] = []
    for index, (name, about) in enumerate(described.items()):
        agents, parked, limits, usage = replies[4 * index: 4 * index + 4]
        rows.append({
            "name": name, **about, "agents": int(agents),
            "parked_until": datetime.fromtimestamp(float(parked), UTC).isoformat() if parked else None,
            "rate_limits": {_text(k): _text(v) for k, v in limits.items()},
            "today": {_text(k): int(v) for k, v in usage.items()},
        })
    return rows


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
