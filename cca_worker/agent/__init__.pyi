from cca_worker.agent.process import EOF as EOF
from cca_worker.agent.process import AgentProcess as AgentProcess
from cca_worker.agent.process import ExitStatus as ExitStatus
from cca_worker.agent.process import spawn as spawn
from cca_worker.agent.reaper import kill_left_behind as kill_left_behind
from cca_worker.agent.reaper import set_parent_death_signal as set_parent_death_signal

__all__ = ["EOF", "AgentProcess", "ExitStatus", "kill_left_behind", "set_parent_death_signal", "spawn"]
