"""A session's files: the workspace packed within its bound and unpacked inside its directory,
the transcript restored where `claude --resume` looks for it."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

from cca_core.sessions.store import Checkpoint
from cca_worker import stream
from cca_worker.sessions import pack_directory, project_dir, restore


def checkpoint(workspace: bytes | None, note: str | None = None) -> Checkpoint:
    return Checkpoint("5e55-1", 1, gzip.compress(b'{"type":"user"}\n'), workspace, note)


def test_a_workspace_round_trips_into_another_directory_with_the_transcript(tmp_path: Path):
    source = tmp_path / "w1" / "task"
    (source / "src").mkdir(parents=True)
    (source / "src" / "app.py").write_text("print('hi')\n")
    (source / "link").symlink_to("src/app.py")
    packed, note = pack_directory(source, 1_000_000)
    assert packed is not None and note is None

    workdir, config_dir = tmp_path / "w2" / "task", tmp_path / "w2" / "home" / ".claude"
    assert restore(checkpoint(packed), config_dir, workdir, own_workspace=True) is None
    assert (workdir / "src" / "app.py").read_text() == "print('hi')\n"
    assert (workdir / "link").resolve() == (workdir / "src" / "app.py").resolve()
    transcript = project_dir(config_dir, workdir) / "5e55-1.jsonl"
    assert transcript.read_bytes() == b'{"type":"user"}\n'
    assert project_dir(config_dir, Path("/srv/ws_1")) == config_dir / "projects" / "-srv-ws-1"


def test_a_workspace_over_its_bound_is_not_kept_and_the_run_cannot_resume(tmp_path: Path):
    (tmp_path / "big.bin").write_bytes(os.urandom(50_000))  # does not compress
    packed, note = pack_directory(tmp_path, 10_000)
    assert packed is None and note is not None and "max_workspace_bytes" in note
    workdir = tmp_path / "elsewhere"
    cannot = restore(checkpoint(None, note), tmp_path / ".claude", workdir, own_workspace=True)
    assert cannot is not None and "max_workspace_bytes" in cannot
    assert not workdir.exists()
    # A task in a cwd of its own needs no stored workspace.
    assert restore(checkpoint(None, note), tmp_path / ".claude", workdir, own_workspace=False) is None


def test_members_that_would_land_outside_the_workspace_are_left_out(tmp_path: Path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("./ok.txt", b"ok"), ("../escaped.txt", b"no"), ("/etc/cca-abs", b"no")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("./out")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    workdir = tmp_path / "ws"
    assert restore(checkpoint(buffer.getvalue()), tmp_path / ".claude", workdir, own_workspace=True) is None
    assert (workdir / "ok.txt").read_bytes() == b"ok"
    assert not (tmp_path / "escaped.txt").exists() and not (workdir / "out").exists()
    assert not Path("/etc/cca-abs").exists()


def test_a_tool_result_is_recognised_in_a_user_line():
    result = {"type": "user", "message": {"content": [{"type": "tool_result", "content": "ok"}]}}
    prompt = {"type": "user", "message": {"content": "just text"}}
    assert stream.has_tool_result(result) and not stream.has_tool_result(prompt)
    assert not stream.has_tool_result({"type": "assistant", "message": result["message"]})
