"""The systemd units in ops/systemd: systemd itself accepts them (``systemd-analyze verify``
with the venv's console scripts in place of /opt/cca/bin), they run real cca commands as the
guide's unit does, restart, stop agents' whole process tree, and are hardened."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cca_core.settings import Settings
from tests.support.deploy import REPO, check_command, parse_unit

UNITS = REPO / "ops/systemd"
NAMES = ["cca-api.service", "cca-worker@.service", "cca-beat.service", "cca-flower.service"]
COMMANDS = {"cca-api.service": "ccad", "cca-worker@.service": "cca worker --name %i@%H",
            "cca-beat.service": "cca beat", "cca-flower.service": "cca flower"}
# `systemd-analyze security` exposure (0 safest, 10 worst); agents need more room than the rest.
EXPOSURE = {"cca-worker@.service": 5.0}
VENV_BIN = Path(sys.executable).parent


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: install Debian's systemd package")
    return path


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at this venv's console scripts."""
    for name in NAMES:
        text = (UNITS / name).read_text().replace("/opt/cca/bin/", f"{VENV_BIN}/")
        (tmp_path / name).write_text(text)
    return tmp_path


def instance(name: str) -> str:
    return name.replace("@.", "@main.")


def test_the_units_are_exactly_the_four_processes_of_a_host():
    assert sorted(path.name for path in UNITS.iterdir()) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_systemd_analyze_verify_accepts_the_unit(name, rendered):
    result = subprocess.run([systemd_analyze(), "verify", instance(name)], cwd=rendered,
                            capture_output=True, text=True, timeout=30)
    # verify exits 0 on unknown keys and bad values too, but says so on stderr.
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("name", NAMES)
def test_the_unit_is_hardened(name, rendered):
    threshold = EXPOSURE.get(name, 3.0)
    result = subprocess.run([systemd_analyze(), "security", "--offline=yes", "--no-pager",
                             f"--threshold={threshold * 10:.0f}", instance(name)],
                            cwd=rendered, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout[-400:] + result.stderr
    service = parse_unit(UNITS / name)["Service"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                       "ReadWritePaths": "/var/lib/cca", "StateDirectory": "cca"}.items():
        assert service[key] == [value], key


@pytest.mark.parametrize("name", NAMES)
def test_the_unit_runs_a_real_cca_command_as_the_guide_does(name):
    unit = parse_unit(UNITS / name)
    service = unit["Service"]
    (exec_start,) = service["ExecStart"]
    assert exec_start.startswith("/opt/cca/bin/")
    assert exec_start.removeprefix("/opt/cca/bin/") == COMMANDS[name]
    check_command(exec_start.replace("%i", "main").replace("%H", "host"))
    assert service["User"] == ["cca"] and service["Group"] == ["cca"]
    assert "CCA_CONFIG=/etc/cca/cca.toml" in service["Environment"]
    assert "-/etc/cca/cca.env" in service["EnvironmentFile"]
    assert service["Type"] == ["simple"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in unit["Unit"]["Wants"][0]


@pytest.mark.parametrize("name", NAMES)
def test_the_unit_restarts_and_stops_its_whole_process_tree(name):
    service = parse_unit(UNITS / name)["Service"]
    assert service["KillMode"] == ["control-group"]
    assert service["Restart"][0] in ("always", "on-failure")
    assert int(service["RestartSec"][0]) >= 1
    assert int(service["TimeoutStopSec"][0]) >= 10


def test_a_stopping_worker_gives_running_agents_their_timeout_and_grace():
    service = parse_unit(UNITS / "cca-worker@.service")["Service"]
    agents = Settings().agents
    assert int(service["TimeoutStopSec"][0]) > agents.default_timeout_seconds + agents.stop_grace_seconds
    assert service["KillSignal"] == ["SIGTERM"]  # Celery's warm shutdown
    assert "-/etc/cca/worker-%i.env" in service["EnvironmentFile"]
    assert "HOME=/var/lib/cca" in service["Environment"]  # writable under ProtectSystem=strict


def test_the_worker_leaves_proc_unmasked_so_bubblewrap_can_mount_a_fresh_one():
    # Each of these mounts over part of /proc; the kernel then refuses a new proc mount in a
    # user namespace, and bubblewrap cannot confine agents (the worker refuses to start).
    service = parse_unit(UNITS / "cca-worker@.service")["Service"]
    for masking in ("ProtectKernelTunables", "ProtectKernelLogs", "ProtectProc", "ProcSubset"):
        assert masking not in service, masking
    assert "RestrictNamespaces" not in service  # bubblewrap makes user, PID and IPC namespaces
