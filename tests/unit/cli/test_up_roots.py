"""Where `cca up` lets tasks work: the directory it starts from, or --allow, never a directory
that holds its data (a task there would see the fleet's keys)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from cca_cli.up import allowed_roots

DATA = Path("/home/dev/.local/share/cca")


def test_the_start_directory_is_allowed_unless_it_holds_the_data():
    assert allowed_roots([], (), Path("/home/dev/project"), DATA) == ["/home/dev/project"]
    assert allowed_roots(["/srv/repos"], (), Path("/home/dev"), DATA) == ["/srv/repos"]
    assert allowed_roots([], (), DATA, DATA) == []


def test_allow_replaces_the_start_directory_and_may_not_hold_the_data():
    asked = (Path("/srv/a"), Path("/srv/b"))
    assert allowed_roots(["/srv/a"], asked, Path("/home/dev/project"), DATA) == ["/srv/a", "/srv/b"]
    with pytest.raises(click.BadParameter, match="holds cca's data directory"):
        allowed_roots([], (Path("/home"),), Path("/tmp"), DATA)
