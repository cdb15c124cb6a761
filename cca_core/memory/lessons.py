"""What the fleet remembers of an ended task (pure): its prompt, its outcome and a summary
of its result, tagged with its role and status."""

from __future__ import annotations

from cca_core.memory.entries import NewMemory

PROMPT_CHARS = 1000


def lesson_of(*, task_id: str, prompt: str, role: str | None, status: str,
              error_code: str | None, result: str | None, summary_chars: int) -> NewMemory:
    outcome = status if not error_code else f"{status} ({error_code})"
    summary = (result or "").strip()
    if len(summary) > summary_chars:
        summary = summary[:summary_chars].rstrip() + " […]"
    content = "\n".join([f"Task: {prompt.strip()[:PROMPT_CHARS]}", f"Outcome: {outcome}",
                         f"Result: {summary or '(none)'}"])
    tags = tuple(tag for tag in (role, status) if tag)
    return NewMemory(content=content, kind="outcome", tags=tags, source_task_id=task_id,
                     successes=int(status == "succeeded"), failures=int(status == "failed"))
