"""Confine an agent to what it may see: a launcher prefix around its argv and environment.

An agent's allow and deny rules are not a boundary (a ``Bash(cat *)`` rule reads whatever its
process can read). The boundary is what the process can see, so with ``agents.confinement =
"bwrap"`` every agent runs inside bubblewrap (notes/sandbox.md)::

    shim ── bwrap ── (new user, PID, IPC, UTS namespaces; no capabilities) ── claude ── tools…

and sees only: the system's programs and libraries (``/usr``, a few files of ``/etc``), the
read-only tools it needs (the ``claude`` install, the Python and cca packages its bridge
runs), its workspace and its slot's HOME (read-write), and a private ``/tmp``, ``/dev`` and
``/proc`` (its own processes only). cca's data directory, config and key files, other
workspaces and other slots' transcripts are not in its view; Redis and Postgres ask for
passwords it never holds. The network is shared: it must reach the model API and its bridge
must reach the API (with a task token scoped to its own subtree).

bubblewrap does not pass signals on: a stop (SIGTERM to ``bwrap``) ends the sandbox at once
through ``--die-with-parent``, with no grace for claude (measured; docs/security.md).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from cca_core.errors import Invalid

CONFINEMENTS = ("bwrap", "none")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What programs need from /etc (names, users, DNS, TLS roots, the dynamic loader, alternatives);
# never all of it: /etc may hold cca's own config.
ETC_ENTRIES = ("passwd", "group", "hosts", "host.conf", "nsswitch.conf", "resolv.conf", "gai.conf",
               "ssl", "ca-certificates", "ca-certificates.conf", "alternatives", "ld.so.cache",
               "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "gitconfig", "mime.types")
# The packages a fleet agent's bridge (``python -m cca_mcp``) imports.
BRIDGE_PACKAGES = ("cca_mcp", "cca_core")
_PROBE_TIMEOUT_S = 10


@dataclass(frozen=True)
class View:
    """What one run may see: its workspace and HOME read-write, ``tools`` read-only."""

    workdir: Path
    home: Path
    tools: tuple[Path, ...]


def find_bwrap() -> str:
    """The bubblewrap program, checked by running a confined ``true``. Raises Invalid naming
    ``agents.confinement`` when it is missing or cannot make its namespaces (a container's
    default seccomp profile, say)."""
    program = shutil.which("bwrap")
    if program is None:
        raise Invalid("agents.confinement = \"bwrap\" needs bubblewrap (Debian: apt-get install "
                      "bubblewrap); set agents.confinement = \"none\" to run agents unconfined",
                      field="agents.confinement")
    probe = [program, *_namespaces(), *_system_view(), "--", "true"]
    try:
        done = subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=_PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Invalid(f"agents.confinement = \"bwrap\": bubblewrap did not run: {exc}",
                      field="agents.confinement") from None
    if done.returncode != 0:
        raise Invalid("agents.confinement = \"bwrap\": bubblewrap cannot confine agents here: "
                      f"{done.stderr.strip()[:300]} (user namespaces must be allowed; in Docker "
                      "see the README); set agents.confinement = \"none\" to run them unconfined",
                      field="agents.confinement")
    return program


def agent_tools(claude: str, python: str) -> tuple[Path, ...]:
    """The read-only paths an agent needs besides the system: the ``claude`` install and the
    bridge's Python (its virtualenv, the installation that links to, and cca's packages),
    outside the system dirs only."""
    paths = [Path(claude).parent, Path(os.path.realpath(claude)).parent,
             Path(python).parent.parent, Path(os.path.realpath(python)).parent.parent]
    for package in BRIDGE_PACKAGES:
        spec = find_spec(package)
        paths += [Path(location) for location in (spec.submodule_search_locations or [])] if spec else []
    return tuple(dict.fromkeys(path for path in paths if not _is_system(path)))


def confine(bwrap: str, argv: Sequence[str], view: View, *, path: str) -> list[str]:
    """Return the argv that runs ``argv`` inside ``view``; the environment passes unchanged.
    ``argv[0]`` is looked up on ``path`` here: the sandbox sees another filesystem."""
    program = shutil.which(argv[0], path=path) or argv[0]
    mounts = [*_system_view()]
    for tool in view.tools:
        mounts += ["--ro-bind", str(tool), str(tool)]
    for writable in (view.home, view.workdir):
        mounts += ["--bind", str(writable), str(writable)]
    prefix = [bwrap, *_namespaces(), *mounts, "--chdir", str(view.workdir), "--"]
    return [*prefix, program, *argv[1:]]


def _namespaces() -> list[str]:
    return ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--cap-drop", "ALL", "--die-with-parent"]


@functools.cache
def _system_view() -> tuple[str, ...]:
    """The system's part of every view (looked up once per process: the host does not change
    under a running worker)."""
    mounts: list[str] = []
    for directory in SYSTEM_DIRS:
        if os.path.islink(directory):
            mounts += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            mounts += ["--ro-bind", directory, directory]
    for entry in ETC_ENTRIES:
        if os.path.exists(path := f"/etc/{entry}"):
            mounts += ["--ro-bind", path, path]
    return (*mounts, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp")


def _is_system(path: Path) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in SYSTEM_DIRS)
