"""A task's cwd must resolve inside an allowed root, symlinks followed."""

from __future__ import annotations

import pytest

from cca_core.errors import Invalid
from cca_core.tasks.workspace import check_cwd, prepare_workdir


def test_cwd_inside_a_root_is_accepted(tmp_path):
    (tmp_path / "repo/sub").mkdir(parents=True)
    assert check_cwd(str(tmp_path / "repo/sub"), [str(tmp_path / "repo")]) == tmp_path / "repo/sub"


@pytest.mark.parametrize("escape", ["repo/../outside", "outside", "repo-evil"])
def test_paths_outside_the_roots_are_refused(tmp_path, escape):
    (tmp_path / "repo").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "repo-evil").mkdir()
    with pytest.raises(Invalid) as refused:
        check_cwd(str(tmp_path / escape), [str(tmp_path / "repo")])
    assert refused.value.field == "cwd"


def test_a_symlink_out_of_the_root_is_refused(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "secret").mkdir()
    (tmp_path / "repo/link").symlink_to(tmp_path / "secret")
    with pytest.raises(Invalid):
        check_cwd(str(tmp_path / "repo/link"), [str(tmp_path / "repo")])


def test_relative_paths_and_no_roots_are_refused(tmp_path):
    with pytest.raises(Invalid, match="absolute"):
        check_cwd("repo", [str(tmp_path)])
    with pytest.raises(Invalid, match="none configured"):
        check_cwd(str(tmp_path), [])


def test_without_cwd_each_task_gets_its_own_directory(tmp_path):
    path = prepare_workdir("task-1", None, tmp_path / "ws", [])
    assert path == tmp_path / "ws/task-1" and path.is_dir()
