"""Run the real `cca` command line as a user would, in its own process."""

from __future__ import annotations

import subprocess
import sys


def cca(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cca_cli.main", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, cwd=env.get("CCA_TEST_CWD"))
