"""What follows a failed run: the classes of failure, and the retry policy that says whether
and when the task runs again (pure).

A class's rule comes from cca's defaults, then the ``[retries]`` table, then the task's role,
then the task itself, field by field. ``attempts`` counts runs in all (1: never retried). The
wait before retry n is ``backoff_seconds * 2**(n-1)``, at most ``max_backoff_seconds``, minus
up to ``jitter`` of it at random (so parked tasks do not all come back at once). A run a
usage window turned away is not retried by its policy: its task waits for a credential
whose window has reset (cca_worker.proxy, cca_worker.runner).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter


class Failure(enum.StrEnum):
    """How a run failed; the task's ``error.code``."""

    RATE_LIMITED = "rate_limited"  # 429: the account's rate limit or usage window
    OVERLOADED = "overloaded"  # 529
    SERVER_ERROR = "server_error"  # other 5xx, or the model API timed out
    AUTH_FAILED = "auth_failed"  # 401, 403: final
    BILLING = "billing"  # no credit left: final
    CONTEXT_TOO_LONG = "context_too_long"  # the prompt outgrew the model's context window
    INVALID_REQUEST = "invalid_request"  # any other 4xx the model API refused
    MAX_TURNS = "max_turns"
    TOOL_FAILURE = "tool_failure"  # the CLI failed while running the agent's loop
    CRASHED = "crashed"  # claude ended with no result


FINAL = frozenset({Failure.AUTH_FAILED, Failure.BILLING})
"""Retrying cannot help: another run would fail the same way, or cost money it must not."""


class RetryRule(BaseModel):
    """A class's rule as configured: unset fields come from the layer below."""

    model_config = ConfigDict(extra="forbid")

    attempts: int | None = Field(None, ge=1, le=20, description="Runs in all; 1 never retries.")
    backoff_seconds: float | None = Field(None, ge=0, le=86400)
    max_backoff_seconds: float | None = Field(None, ge=0, le=86400)




@dataclass(frozen=True)
class Rule:
    attempts: int
    backoff_s: float
    max_backoff_s: float

    def over(self, layer: RetryRule | None) -> Rule:
        if layer is None:
            return self
        return Rule(attempts=layer.attempts or self.attempts,
                    backoff_s=self.backoff_s if layer.backoff_seconds is None else layer.backoff_seconds,
                    max_backoff_s=(self.max_backoff_s if layer.max_backoff_seconds is None
                                   else layer.max_backoff_seconds))


DEFAULTS: Mapping[Failure, Rule] = {
    Failure.RATE_LIMITED: Rule(6, 60, 1800),
    Failure.OVERLOADED: Rule(4, 20, 300),
    Failure.SERVER_ERROR: Rule(3, 10, 120),
    Failure.CRASHED: Rule(2, 5, 60),
    Failure.TOOL_FAILURE: Rule(2, 5, 60),
    Failure.AUTH_FAILED: Rule(1, 0, 0),
    Failure.BILLING: Rule(1, 0, 0),
    Failure.CONTEXT_TOO_LONG: Rule(1, 0, 0),
    Failure.INVALID_REQUEST: Rule(1, 0, 0),
    Failure.MAX_TURNS: Rule(1, 0, 0),
}


def refuse_retrying_final(rules: dict[Failure, RetryRule]) -> dict[Failure, RetryRule]:
    """A validator's check: final classes never get a second attempt."""
    for failure in FINAL:
        rule = rules.get(failure)
        if rule is not None and (rule.attempts or 1) > 1:
            raise ValueError(f"{failure.value} is final: it is never retried (attempts must be 1)")
    return rules


RetryRules = Annotated[dict[Failure, RetryRule], AfterValidator(refuse_retrying_final)]
"""Rules by class, as a role, a task or the [retries] table gives them."""


_RULES = TypeAdapter(RetryRules)


def rules_of(stored: Mapping[str, object] | None) -> dict[Failure, RetryRule]:
    """A task's rules as its row stores them (JSON)."""
    return _RULES.validate_python(stored or {})


def rule_for(failure: Failure, layers: Iterable[Mapping[Failure, RetryRule] | None]) -> Rule:
    """The rule of ``failure`` with ``layers`` (settings, role, task) applied in order."""
    rule = DEFAULTS[failure]
    for layer in layers:
        rule = rule.over((layer or {}).get(failure))
    return rule if failure not in FINAL else DEFAULTS[failure]


def retry_at(rule: Rule, attempt: int, now: datetime, *, jitter: float,
             rng: random.Random | None = None) -> datetime | None:
    """When a task whose run ``attempt`` (1 for the first) failed runs again; None: never."""
    if attempt >= rule.attempts:
        return None
    wait = min(rule.max_backoff_s, rule.backoff_s * 2 ** (attempt - 1))
    wait *= 1 - jitter * (rng or random).random()
    return now + timedelta(seconds=wait)
