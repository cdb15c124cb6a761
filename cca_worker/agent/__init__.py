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

from cca_worker.agent.process import EOF, AgentProcess, ExitStatus, spawn
from cca_worker.agent.reaper import set_parent_death_signal

__all__ = ["EOF", "AgentProcess", "ExitStatus", "set_parent_death_signal", "spawn"]
