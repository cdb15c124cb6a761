"""Agent processes: the one place that starts ``claude`` (an import rule in pyproject.toml keeps
it so), and makes sure nothing an agent starts outlives its task (Linux only).

::

    pool process ──spawn──▶ shim (python -I -S, child subreaper, one per agent)
        │  control socket:        └──posix_spawn, own session──▶ claude -p … ──▶ tools, Bash…
        │  request, "stop", report                              (orphans re-parent to the shim)
        └─ stdout/stderr pipes ◀───────────── the agent's stdio ─┘

:func:`spawn` starts a shim with the agent's stdio and sends it the request; it returns an
:class:`AgentProcess`: ``read_line`` (stdout, line by line), ``stop`` (SIGTERM, SIGKILL after
the grace period), ``wait`` (an :class:`ExitStatus`). When the agent exits, or is stopped, or
the pool process dies (the shim's parent-death signal), the shim kills and reaps every
descendant left and reports. If the shim itself hangs, ``wait`` kills the whole tree it can
still find (``reaper.kill_tree``). Modules: ``process`` (the pool's side), ``shim`` (the
shim's, stdlib only), ``reaper`` (subreaper, parent-death signal, whole-tree kill).
"""

import importlib

__all__ = ["EOF", "AgentProcess", "ExitStatus", "kill_left_behind", "set_parent_death_signal", "spawn"]
_HOMES = {"EOF": "process", "AgentProcess": "process", "ExitStatus": "process",
          "spawn": "process", "set_parent_death_signal": "reaper", "kill_left_behind": "reaper"}


def __getattr__(name: str) -> object:
    """The public names, imported on first use: the shim, which imports this package too,
    starts for every agent and needs none of ``process`` (60 ms of imports; type checkers
    read ``__init__.pyi``)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
