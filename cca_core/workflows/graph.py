"""A workflow's steps as a graph: names, dependencies, the order they can run in (pure).

A valid graph has unique step names, dependencies that name other steps, and no cycle; every
problem is reported with the field that holds it (``tasks[2].depends_on``), so a bad workflow
or a coordinator's bad plan says exactly what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from graphlib import CycleError, TopologicalSorter

from cca_core.errors import Invalid


def check_graph(steps: Mapping[str, Sequence[str]], *, field: str = "tasks") -> list[str]:
    """The step names in an order where each comes after its dependencies.

    ``steps`` maps each name to the names it depends on, in the order they were given. Raises
    Invalid naming the field of the first problem: an unknown dependency, a step depending on
    itself, or a cycle (its steps listed).
    """
    names = list(steps)
    for index, (name, depends_on) in enumerate(steps.items()):
        for dependency in depends_on:
            if dependency == name:
                raise Invalid(f"step {name} depends on itself", field=f"{field}[{index}].depends_on")
            if dependency not in steps:
                raise Invalid(f"step {name} depends on {dependency}, which is not a step of "
                              f"this workflow (the steps: {', '.join(names)})",
                              field=f"{field}[{index}].depends_on")
    try:
        return list(TopologicalSorter({name: list(deps) for name, deps in steps.items()})
                    .static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        raise Invalid(f"the steps depend on each other in a cycle: {' -> '.join(cycle)}",
                      field=field, code="cycle") from None


def unique_names(names: Sequence[str], *, field: str = "tasks") -> None:
    """Raise Invalid naming the first step whose name an earlier step already has."""
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise Invalid(f"two steps are named {name}; each needs its own name",
                          field=f"{field}[{index}].name")
        seen.add(name)

