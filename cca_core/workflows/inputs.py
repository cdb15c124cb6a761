"""The prompt a step's agent gets: its own prompt, then the results of the steps it depends
on, in this documented form (README, "Workflows")::

    <the step's prompt>

    ## Results of the steps this task depends on

    <cca-step name="scan" role="security" status="succeeded">
    <the step's result text>
    </cca-step>
    <cca-step-output name="scan">
    <its structured output as JSON, when it gave one>
    </cca-step-output>

The task's own prompt comes first, so what the agent is asked to do leads. The whole text
reaches ``claude`` as one argument: each result is cut to an equal share of what is left
under :data:`~cca_core.tasks.schemas.MAX_ARGUMENT_BYTES`, the cut marked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cca_core.tasks.schemas import MAX_ARGUMENT_BYTES

HEADING = "## Results of the steps this task depends on"


def with_dependency_results(prompt: str, dependencies: Sequence[Any]) -> str:
    """``prompt`` followed by the results of ``dependencies`` (``tasks`` rows)."""
    if not dependencies:
        return prompt
    room = MAX_ARGUMENT_BYTES - len(prompt.encode()) - 200 * (len(dependencies) + 1)
    share = max(room // len(dependencies), 1000)
    blocks = [_block(dep, share) for dep in dependencies]
    return "\n\n".join([prompt, HEADING, *blocks])


def _block(dep: Any, share: int) -> str:
    output = (json.dumps(dep.structured_output, ensure_ascii=False)
              if dep.structured_output is not None else None)
    result_share = share // 2 if output is not None else share
    text = [f'<cca-step name="{dep.step}" role="{dep.role or ""}" status="{dep.status}">',
            _cut(dep.result or "", result_share), "</cca-step>"]
    if output is not None:
        text += [f'<cca-step-output name="{dep.step}">', _cut(output, share - result_share),
                 "</cca-step-output>"]
    return "\n".join(text)


def _cut(text: str, limit: int) -> str:
    """``text`` at most ``limit`` bytes in UTF-8, with how much was cut said at its end."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    kept = raw[:max(limit - 60, 0)].decode(errors="ignore")
    return f"{kept}\n[… {len(raw) - len(kept.encode())} more bytes cut by cca]"
