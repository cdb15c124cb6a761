"""A workflow's graph: valid ones come back in an order that runs dependencies first; bad ones
are refused naming the field to fix."""

from __future__ import annotations

import pytest

from cca_core.errors import Invalid
from cca_core.workflows.graph import check_graph, unique_names


def test_a_diamond_comes_back_with_each_step_after_its_dependencies():
    order = check_graph({"join": ["left", "right"], "left": ["root"], "right": ["root"],
                         "root": []})
    assert order[0] == "root" and order[-1] == "join"
    assert set(order[1:3]) == {"left", "right"}


def test_a_cycle_is_refused_with_its_steps():
    with pytest.raises(Invalid) as err:
        check_graph({"a": ["c"], "b": ["a"], "c": ["b"]})
    assert err.value.code == "cycle" and err.value.field == "tasks"
    assert all(name in err.value.message for name in "abc")


def test_a_step_depending_on_itself_is_refused_at_its_field():
    with pytest.raises(Invalid) as err:
        check_graph({"a": [], "b": ["b"]})
    assert err.value.field == "tasks[1].depends_on"


def test_an_unknown_dependency_is_refused_naming_the_steps_there_are():
    with pytest.raises(Invalid) as err:
        check_graph({"scan": [], "summary": ["scan", "tests"]}, field="delegations")
    assert err.value.field == "delegations[1].depends_on"
    assert "tests" in err.value.message and "scan, summary" in err.value.message


def test_two_steps_with_one_name_are_refused_at_the_second():
    with pytest.raises(Invalid) as err:
        unique_names(["a", "b", "a"])
    assert err.value.field == "tasks[2].name"
