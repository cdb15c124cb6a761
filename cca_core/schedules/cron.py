"""When a schedule fires: 5-field cron expressions in a time zone, or fixed intervals (pure).

Every time is an aware UTC datetime. Cron expressions are matched against the wall clock of
their time zone, with the semantics of Debian's cron across DST changes (cronsim implements
them): a fixed-time job whose time is skipped by spring-forward runs once, right after the
jump; a fixed-time job in the repeated hour of fall-back runs once, in the first pass; a job
with a wildcard hour runs in both passes of the repeated hour. croniter 7 fires a 02:30 job
twice on a fall-back day, which is why cronsim is used.

Intervals form a grid ``anchor + k * interval`` (k >= 1), so every beat computes the same
fire times from the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

CRON_FIELDS = 5
ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Timing:
    """A cron expression with its time zone, or an interval on a grid starting at ``anchor``."""

    cron: str | None = None
    timezone: str = "UTC"
    interval_s: int | None = None
    anchor: datetime | None = None

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval_s is None):
            raise ValueError("a timing has either a cron expression or an interval")
        if self.interval_s is not None and (self.anchor is None or self.interval_s < 1):
            raise ValueError("an interval needs an anchor and at least one second")


def check_timezone(name: str) -> ZoneInfo:
    """Return the zone; raise ValueError for a name the IANA database does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as "
                         "'Europe/Berlin' or 'UTC'") from None


def check_cron(expression: str) -> str:
    """Return the expression normalised; raise ValueError saying what is wrong with it."""
    fields = expression.split()
    if len(fields) != CRON_FIELDS:
        raise ValueError(f"a cron expression has 5 fields (minute hour day-of-month month "
                         f"day-of-week), {expression!r} has {len(fields)}")
    normalised = " ".join(fields)
    try:
        next(CronSim(normalised, datetime(2000, 1, 1, tzinfo=UTC)))
    except CronSimError as exc:
        raise ValueError(f"not a valid cron expression {expression!r}: {exc}") from None
    except StopIteration:
        raise ValueError(f"the cron expression {expression!r} never fires") from None
    return normalised


def next_fire(timing: Timing, after: datetime) -> datetime:
    """The first fire time strictly after ``after``."""
    if timing.interval_s is not None:
        return _next_on_grid(timing.anchor, timing.interval_s, after)  # type: ignore[arg-type]
    zone = ZoneInfo(timing.timezone)
    # cronsim can answer a time before its start when the start lies in the repeated hour of
    # fall-back; skipping those keeps the answer strictly after ``after``.
    for candidate in CronSim(timing.cron or "", after.astimezone(zone)):
        fire = candidate.astimezone(UTC)
        if fire > after:
            return fire
    raise ValueError(f"the cron expression {timing.cron!r} never fires")  # pragma: no cover


def last_fire_before(timing: Timing, bound: datetime, floor: datetime) -> datetime:
    """The latest fire time at or after ``floor`` and before ``bound``.

    ``floor`` must itself be a fire time before ``bound``. Searches backwards from ``bound``
    in doubling windows, so a long outage costs a few steps, not one per missed fire.
    """
    span = timedelta(seconds=1)
    while True:
        start = bound - span
        fire = floor if start <= floor else next_fire(timing, start - ONE_MICROSECOND)
        if fire < bound:
            while (following := next_fire(timing, fire)) < bound:
                fire = following
            return fire
        span *= 2


def _next_on_grid(anchor: datetime, interval_s: int, after: datetime) -> datetime:
    step = timedelta(seconds=interval_s)
    if after < anchor + step:
        return anchor + step
    steps = (after - anchor) // step
    return anchor + (steps + 1) * step
