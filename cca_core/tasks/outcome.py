"""The one terminal outcome of a run, as the worker records it (pure data)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from cca_core.infra.redact import Redactor
from cca_core.tasks.status import TERMINAL_STATUSES


@dataclass(frozen=True)
class Outcome:
    """How a run ended: everything the worker writes when it finishes a task."""

    status: str
    result: str | None = None
    structured_output: Any | None = None
    error_code: str | None = None
    error_message: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float = 0.0
    num_turns: int = 0
    session_id: str | None = None
    permission_denials: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in TERMINAL_STATUSES:
            raise ValueError(f"{self.status!r} is not a terminal status")

    def redacted(self, redactor: Redactor) -> Outcome:
        """This outcome with every secret removed from its texts and structured values."""
        return replace(
            self, result=redactor.value(self.result),
            structured_output=redactor.value(self.structured_output),
            error_message=redactor.value(self.error_message),
            permission_denials=redactor.value(self.permission_denials))
