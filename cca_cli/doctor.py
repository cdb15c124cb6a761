"""``cca doctor``: check everything a fleet needs, with the fix for each failure."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import asdict, dataclass

import click
import httpx
import redis
from sqlalchemy import text

from cca_cli.context import CliState, data_dir_option, handle_errors, pass_state, print_json
from cca_cli.ops import config_warnings
from cca_core.access.safe_defaults import unsafe_settings
from cca_core.embeddings import EmbeddingUnavailable
from cca_core.embeddings.providers import embedder_for
from cca_core.errors import Invalid
from cca_core.fleet.state import online_workers
from cca_core.infra.db import make_engine
from cca_core.infra.migrate import current_revision, head_revision
from cca_core.settings import Settings
from cca_worker.confinement import find_bwrap

PINNED_CLAUDE = "2.1.197"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_claude(settings: Settings) -> Check:
    path = shutil.which(settings.agents.claude_path)
    if path is None:
        return Check("claude", False, f"{settings.agents.claude_path} not found",
                     "install it (npm i -g @anthropic-ai/claude-code) or set agents.claude_path")
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20,
                                 stdin=subprocess.DEVNULL).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("claude", False, f"{path} does not run: {exc}", "reinstall the claude CLI")
    note = "" if version.startswith(PINNED_CLAUDE) else f" (cca is tested with {PINNED_CLAUDE})"
    return Check("claude", bool(version), f"{path}: {version}{note}")


def check_confinement(settings: Settings) -> Check:
    if settings.agents.confinement == "none":
        return Check("confinement", False, "agents.confinement = none: agents are not confined",
                     "install bubblewrap and set agents.confinement = \"bwrap\"")
    try:
        bwrap = find_bwrap()
    except Invalid as exc:
        return Check("confinement", False, exc.message,
                     "install bubblewrap (apt-get install bubblewrap) and allow user namespaces")
    return Check("confinement", True, f"agents run under {bwrap}")


def check_redis(settings: Settings) -> Check:
    if not settings.redis.url:
        return Check("redis", False, "redis.url is not set", "set CCA__REDIS__URL, or use `cca up`")
    try:
        info = redis.Redis.from_url(settings.redis.url, socket_connect_timeout=3).info()
    except redis.RedisError as exc:
        return Check("redis", False, f"unreachable: {exc}", "start Redis or fix redis.url")
    aof = "AOF on" if info.get("aof_enabled") else "AOF off: queued tasks are lost if Redis dies"
    return Check("redis", True, f"Redis {info.get('redis_version')}, {aof}")


def check_postgres(settings: Settings) -> list[Check]:
    if not settings.postgres.url:
        return [Check("postgres", False, "postgres.url is not set",
                      "set CCA__POSTGRES__URL, or use `cca up`")]
    engine = make_engine(settings.postgres.url, pool_size=0)
    try:
        with engine.connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar()
            available = connection.execute(text(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).scalar()
            revision = current_revision(connection)
    except Exception as exc:  # any driver error means the same thing to an operator
        return [Check("postgres", False, f"unreachable: {str(exc).splitlines()[0]}",
                      "start Postgres or fix postgres.url")]
    finally:
        engine.dispose()
    head = head_revision()
    return [
        Check("postgres", True, f"PostgreSQL {version}"),
        Check("pgvector", bool(available), "available" if available else "not installed",
              "" if available else "install pgvector (e.g. the pgvector/pgvector:pg16 image)"),
        Check("migrations", revision == head, f"database at {revision}, code at {head}",
              "" if revision == head else "run `cca db upgrade`"),
    ]


def check_workers(settings: Settings) -> Check:
    try:
        workers = online_workers(redis.Redis.from_url(settings.redis.url, socket_connect_timeout=3))
    except (redis.RedisError, ValueError):
        return Check("workers", False, "cannot read worker announcements", "fix Redis first")
    slots = sum(worker["slots_total"] for worker in workers)
    return Check("workers", bool(workers), f"{len(workers)} online, {slots} agent slots",
                 "" if workers else "start one: `cca worker`")


def check_flower(url: str) -> Check:
    try:
        answer = httpx.get(f"{url.rstrip('/')}/healthcheck", timeout=5)
    except httpx.TransportError as exc:
        return Check("flower", False, f"{url} unreachable: {exc}", "start it: `cca flower`")
    return Check("flower", answer.status_code == 200, f"{url}: HTTP {answer.status_code}",
                 "" if answer.status_code == 200 else "check flower.url and `cca flower`")


def check_embeddings(settings: Settings) -> Check:
    """Memory and code search can embed: the provider answers (the local model loads)."""
    embedder = embedder_for(settings.embeddings)
    if settings.embeddings.provider == "none":
        return Check("embeddings", True, "provider none: memory and code search use full text only")
    started = time.monotonic()
    try:
        dimension = len(embedder.embed(["cca doctor"])[0])
    except EmbeddingUnavailable as exc:
        return Check("embeddings", False, f"{embedder.space}: {exc}; searches fall back to full text",
                     "start the provider, fix embeddings.url / embeddings.model, or set "
                     "embeddings.provider = \"local\"")
    return Check("embeddings", True, f"{embedder.space}: {dimension} dimensions "
                                     f"({time.monotonic() - started:.1f} s)")


def run_checks(settings: Settings) -> list[Check]:
    redis_check = check_redis(settings)
    checks = [check_claude(settings), check_confinement(settings), redis_check,
              *check_postgres(settings), check_embeddings(settings)]
    if redis_check.ok:
        checks.append(check_workers(settings))
    if settings.flower.url:
        checks.append(check_flower(settings.flower.url))
    checks += [Check("config", False, error.message, f"set {error.field}")
               for error in unsafe_settings(settings)]
    checks += [Check("config", True, f"warning: {warning}") for warning in config_warnings(settings)]
    return checks


@click.command()
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
@pass_state
@handle_errors
def doctor(state: CliState, as_json: bool) -> None:
    """Check claude, Redis, Postgres, pgvector, migrations, workers and the configuration."""
    checks = run_checks(state.settings)
    if as_json:
        print_json([asdict(check) for check in checks])
    else:
        for check in checks:
            label = click.style("ok  ", fg="green") if check.ok else click.style("FAIL", fg="red")
            click.echo(f"{label} {check.name:<11} {check.detail}")
            if check.fix:
                click.echo(f"     {'':<11} fix: {check.fix}")
    if not all(check.ok for check in checks):
        raise SystemExit(1)
