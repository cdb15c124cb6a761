"""The deployment tier's hands on Docker: is an engine there, the images the compose files
name (pulled, or built as local stand-ins by ops/standins/build), cca's image built from the
repository's Dockerfile, and a Compose project brought up, inspected and brought down."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PUBLIC_IMAGES = ("python:3.11-slim", "pgvector/pgvector:pg16", "redis:7-alpine", "haproxy:2.8")
IMAGE = "cca:deploy-test"


def docker(*args: str, timeout: float = 600, check: bool = True,
           env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
    if check and run.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {run.returncode}:\n{run.stdout[-3000:]}"
                             f"\n{run.stderr[-3000:]}")
    return run


def engine_missing() -> str | None:
    """Why this machine cannot run the tier (no engine, no Compose v2), or None."""
    try:
        if docker("info", timeout=30, check=False).returncode != 0:
            return "no Docker engine answers (./scripts/setup --tests starts one where it can)"
        if docker("compose", "version", timeout=30, check=False).returncode != 0:
            return "the docker client has no Compose v2 plugin (./scripts/setup --tests installs it)"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker does not run: {exc}"
    return None


def ensure_public_images() -> dict[str, str]:
    """Each public image present: as found, pulled, or built by ops/standins/build (a machine
    with no registry). Returns how each was had."""
    how: dict[str, str] = {}
    for image in PUBLIC_IMAGES:
        if docker("image", "inspect", image, check=False, timeout=30).returncode == 0:
            how[image] = "present"
        elif docker("pull", "-q", image, check=False, timeout=120).returncode == 0:
            how[image] = "pulled"
    if len(how) < len(PUBLIC_IMAGES):
        subprocess.run([str(REPO / "ops/standins/build")], check=True, timeout=900)
        how.update({image: "stand-in" for image in PUBLIC_IMAGES if image not in how})
    return how


@dataclass(frozen=True)
class Built:
    image: str
    seconds: float
    size_mb: float


def build_cca_image() -> Built:
    """``docker build`` of the repository's Dockerfile, unchanged, by the engine's classic
    builder (BuildKit needs the buildx plugin, which Debian's docker.io does not bring)."""
    started = time.monotonic()
    docker("build", "-q", "-t", IMAGE, str(REPO), env={"DOCKER_BUILDKIT": "0"}, timeout=1800)
    seconds = time.monotonic() - started
    size = int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout.strip())
    return Built(IMAGE, seconds, size / 1e6)


@dataclass
class Project:
    """One Compose project of the repository's compose files (plus test overrides)."""

    name: str
    files: Sequence[Path]
    env: dict[str, str] = field(default_factory=dict)
    profiles: Sequence[str] = ()

    def compose(self, *args: str, timeout: float = 300,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        flags = ["-p", self.name]
        for path in self.files:
            flags += ["-f", str(path)]
        for profile in self.profiles:
            flags += ["--profile", profile]
        return docker("compose", *flags, *args, timeout=timeout, check=check, env=self.env)

    def up(self) -> None:
        """Start every service and wait until each is healthy (or, for one-shots, done)."""
        self.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", "240", timeout=300)

    def finished(self, service: str, timeout_s: float = 120) -> None:
        """Wait until one-shot ``service`` has exited 0 (``up --wait`` waits for it only when
        another service depends on it)."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.compose("ps", "-a", "--format", "{{.State}} {{.ExitCode}}", service).stdout.split()
            if state[:1] == ["exited"]:
                assert state[1:] == ["0"], f"{service} exited {state[1:]}:\n{self.logs()}"
                return
            assert time.monotonic() < deadline, f"{service} still {state} after {timeout_s} s"
            time.sleep(1)

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=180)

    def exec(self, service: str, *argv: str, timeout: float = 120, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
        return self.compose("exec", "-T", service, *argv, timeout=timeout, check=check)

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes still labelled with this project."""
        label = f"label=com.docker.compose.project={self.name}"
        return {kind: docker(*command, "--filter", label, "--format", "{{.ID}}").stdout.split()
                for kind, command in (("containers", ("ps", "-a")), ("networks", ("network", "ls")),
                                      ("volumes", ("volume", "ls")))}

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", check=False).stdout[-20000:]

