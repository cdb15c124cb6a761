"""The task fields every task-submitting tool takes (``cca_task``, ``cca_schedule_create``):
declared once in :class:`TaskFields` and flattened into each tool's parameters by
:func:`with_task_fields`, so Claude sees plain arguments and the tools cannot drift apart."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from cca_core.names import Priority

T = TypeVar("T")


class TaskFields(BaseModel):
    """How a task runs; unset (None) fields are left to the API's defaults."""

    role: str | None = None
    model: str | None = None
    priority: Priority = "normal"
    token_budget: int | None = None
    timeout_seconds: int | None = None
    allowed_tools: list[str] | None = None
    cwd: str | None = None

    def body(self) -> dict[str, Any]:
        """The fields Claude set, as the API's task body has them."""
        return self.model_dump(exclude_none=True)


def with_task_fields(tool: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """``tool`` takes ``fields: TaskFields``; the wrapper takes each field as a keyword
    parameter of its own (the signature the MCP server reads) and passes them on as one."""
    signature = inspect.signature(tool, eval_str=True)
    own = [param for param in signature.parameters.values() if param.name != "fields"]
    flattened = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info.default,
                                   annotation=info.annotation)
                 for name, info in TaskFields.model_fields.items()]

    @functools.wraps(tool)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        fields = TaskFields(**{name: kwargs.pop(name) for name in TaskFields.model_fields
                               if name in kwargs})
        return await tool(*args, fields=fields, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + flattened)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {param.name: param.annotation for param in own + flattened} | {
        "return": signature.return_annotation}
    return wrapper
