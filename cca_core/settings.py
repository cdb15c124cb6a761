"""The validated shape of cca's configuration: one pydantic model per TOML table.

Unknown keys are rejected so a typo is named at start-up instead of silently ignored.
Lists accept comma-separated strings (the form environment variables give).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from cca_core.retries import Failure, RetryRule, RetryRules, refuse_retrying_final
from cca_core.roles import merged_roles
from cca_core.rules import ModelName, ToolRule


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], BeforeValidator(_split_commas)]
RuleList = Annotated[list[ToolRule], BeforeValidator(_split_commas)]
OptionalModel = Annotated[ModelName | None, BeforeValidator(lambda value: value or None)]  # "" = none


def _env_text(value: Any) -> str:
    """TOML gives numbers and booleans; the environment only holds text."""
    return str(value).lower() if isinstance(value, bool) else str(value)


EnvValue = Annotated[str, BeforeValidator(_env_text)]
PermissionMode = Literal["allowlist", "sandbox", "dangerous"]
Confinement = Literal["bwrap", "none"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DaemonSettings(Section):
    bind_address: str = "127.0.0.1:9200"
    log_level: Literal["debug", "info", "warn", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    max_agents: int = Field(4, ge=1, le=256)
    require_auth: bool = False
    api_keys: CommaList = []
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    api_processes: int = Field(2, ge=1, le=64)
    # Threads per API process (gunicorn's gthread worker): a live follower (SSE) holds one,
    # so each process follows at most api_threads - 8 streams and keeps 8 for other requests.
    api_threads: int = Field(128, ge=16, le=1024)
    stream_heartbeat_seconds: int = Field(15, ge=1, le=55)  # under HAProxy's 60 s idle timeout
    task_token_secret: str = ""

    @field_validator("bind_address")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9200")
        return value


class RedisSettings(Section):
    url: str = ""
    pool_size: int = Field(20, ge=1)
    context_ttl_seconds: int = Field(7200, ge=1)
    stream_max_events: int = Field(10000, ge=10)


class PostgresSettings(Section):
    """Pool sizes fit a default server (cca_core.infra.connections; ``cca config check`` adds them up)."""

    url: str = ""
    pool_size: int = Field(4, ge=1)  # kept per API process
    max_connections: int = Field(8, ge=1)  # opened at most per API process (pool plus overflow)
    server_max_connections: int = Field(100, ge=4)  # the server's max_connections


class PermissionSettings(Section):
    mode: PermissionMode = "allowlist"
    # Reads scoped to the working directory: a bare Read/Grep/Glob reads anywhere the process
    # can (measured on CLI 2.1.197; the confinement is the boundary, this the first fence).
    allowed_tools: RuleList = ["Read(./**)", "Glob(./**)", "Grep(./**)", "Edit(src/**)",
                               "Edit(tests/**)", "Bash(git *)"]
    denied_tools: RuleList = ["Bash(rm -rf *)", "Bash(sudo *)", "Read(.env*)", "Edit(.env*)"]
    allow_network: bool = False
    allow_dangerous: bool = False


class RoleSettings(Section):
    description: str = Field("", max_length=500)
    model: OptionalModel = None
    permissions: PermissionSettings | None = None
    # The role's prompt, appended to claude's system prompt: a markdown file, or inline text.
    prompt_file: str | None = None
    append_system_prompt: str | None = Field(None, max_length=100_000)
    # Load the workspace's .claude/settings*.json (hooks included): only for repositories
    # the role's users trust as configuration, never by default.
    project_settings: bool = False
    token_budget: int | None = Field(None, ge=1)
    timeout_seconds: int | None = Field(None, ge=1)
    # Limits on every non-admin task of the role, as a key's (cca_core.access.key_limits).
    allowed_queues: CommaList | None = None
    allowed_models: CommaList | None = None
    max_token_budget: int | None = Field(None, ge=1)
    max_timeout_seconds: int | None = Field(None, ge=1)
    max_budget_usd: float | None = Field(None, gt=0)
    # Memory (cca_core.memory): whether its ended tasks are remembered, how many memories
    # lead their prompts. None = the [memory] table's setting.
    remember: bool | None = None
    recall_k: int | None = Field(None, ge=0, le=20)
    # Retries of its failed runs, per failure class, over the [retries] table's.
    retries: RetryRules | None = None

    @model_validator(mode="after")
    def _read_prompt_file(self) -> RoleSettings:
        """The prompt file's text becomes the prompt (read once, when the config loads)."""
        if self.prompt_file is None or self.append_system_prompt is not None:
            return self
        try:
            text = Path(self.prompt_file).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"prompt_file {self.prompt_file} cannot be read: {exc}") from None
        if len(text) > 100_000:
            raise ValueError(f"prompt_file {self.prompt_file} holds over 100,000 characters")
        return self.model_copy(update={"append_system_prompt": text})


class AgentSettings(Section):
    claude_path: str = "claude"
    confinement: Confinement = "bwrap"  # cca_worker.confinement; "none" is flagged by config check
    default_model: OptionalModel = None
    default_timeout_seconds: int = Field(600, ge=1)
    token_budget_per_task: int = Field(100000, ge=1)
    context_compression: bool = True
    stall_timeout_seconds: int = Field(300, ge=1)
    stop_grace_seconds: float = Field(3.0, ge=0.1, le=60)
    # The niceness agents run at: when they fill the host's CPU, the worker's own processes
    # (hand-offs, heartbeats, event writes) and a Postgres or Redis beside them still get it
    # first (cca_worker.agent.shim).
    nice: int = Field(10, ge=0, le=19)
    max_attempts: int = Field(3, ge=1)
    lease_seconds: int = Field(60, ge=2)
    # A usage window of a credential that resets within this many seconds is waited out by
    # the running agent (the CLI honours a retry-after of up to 60 s); a later reset parks
    # the task until a credential has room again (cca_worker.proxy).
    window_wait_seconds: int = Field(30, ge=0, le=60)
    bridge_url: str = ""
    max_depth: int = Field(3, ge=0, le=20)
    max_children_per_task: int = Field(10, ge=0)
    max_workflow_steps: int = Field(50, ge=1, le=1000)
    tree_token_budget: int = Field(500000, ge=1)  # a coordinated task's, when it names none
    workspace_root: str = ""
    allowed_roots: CommaList = []
    # The queues tasks may name (the first is the default). The API refuses any other: no
    # worker would ever consume it. Unset, it is worker.queues (see Settings).
    queues: CommaList = Field(["cca"], min_length=1)
    env: dict[str, EnvValue] = {}
    permissions: PermissionSettings = PermissionSettings()
    roles: dict[str, RoleSettings] = {}

    @model_validator(mode="before")
    @classmethod
    def _with_shipped_roles(cls, data: Any) -> Any:
        """The roles cca ships (cca_core.roles), with ``[agents.roles.NAME]`` over them."""
        if isinstance(data, dict):
            return {**data, "roles": merged_roles(dict(data.get("roles") or {}))}
        return data

    def role(self, name: str | None) -> RoleSettings:
        """The settings of role ``name``: a task with no role gets none of its own, so the
        fleet's defaults hold (a task naming an unknown role is refused at submission)."""
        return self.roles.get(name or "") or RoleSettings()

    def permissions_of(self, role: str | None) -> PermissionSettings:
        """The permissions a task of ``role`` runs with unless it narrows them."""
        return self.role(role).permissions or self.permissions

    def token_budget_of(self, role: str | None) -> int:
        """A task's token budget when it names none."""
        return self.role(role).token_budget or self.token_budget_per_task

    def timeout_of(self, role: str | None) -> int:
        """A task's timeout in seconds when it names none."""
        return self.role(role).timeout_seconds or self.default_timeout_seconds


class WorkerSettings(Section):
    queues: CommaList = ["cca"]
    hostname: str = ""
    token_budget_per_window: int = Field(0, ge=0)
    budget_window_seconds: int = Field(3600, ge=1)
    heartbeat_seconds: float = Field(1.0, gt=0)
    sweep_interval_seconds: float = Field(10.0, gt=0)
    resend_after_seconds: int = Field(300, ge=1)
    # How long a running agent goes on while Postgres is unreachable (its heartbeats and
    # events retried with backoff, its events buffered up to event_buffer_events) before it is
    # stopped; and how long a finish kept in the worker's spool holds its task.
    postgres_outage_seconds: float = Field(300.0, ge=0)
    event_buffer_events: int = Field(10000, ge=100)
    spool_hold_seconds: int = Field(3600, ge=60)


class SecuritySettings(Section):
    rate_limit_per_minute: int = Field(600, ge=0)
    ip_rate_limit_per_minute: int = Field(1200, ge=0)
    trust_proxy: bool = False
    trusted_proxies: CommaList = ["127.0.0.1", "::1"]
    cors_origins: CommaList = []


class RetentionSettings(Section):
    """How long the record of runs is kept; enforced by the workers' sweep (one at a time,
    fleet-wide) in batches."""

    task_events_days: int = Field(30, ge=0)  # 0 keeps task events forever
    stream_seconds: int = Field(86400, ge=0)  # 0 keeps idle Redis event streams (they expire)
    sessions_days: int = Field(30, ge=0)  # stored sessions (transcripts, workspaces); 0: forever
    batch_size: int = Field(5000, ge=10, le=100000)


class WebhookSettings(Section):
    """How the workers deliver webhooks (one dispatcher thread per worker, fleet-wide outbox)."""

    max_attempts: int = Field(8, ge=1, le=50)
    backoff_seconds: float = Field(10.0, ge=0.1)  # before the second attempt; doubles after
    max_backoff_seconds: float = Field(3600.0, ge=1)
    timeout_seconds: float = Field(10.0, ge=1, le=60)  # of one attempt
    keep_days: int = Field(14, ge=1)  # deliveries are deleted by the sweep after this long


class DashboardSettings(Section):
    """The web dashboard at ``/ui``: its sign-in sessions and the fleet samples it plots."""

    session_hours: float = Field(8.0, gt=0, le=720)  # a sign-in lasts this long
    sample_seconds: int = Field(30, ge=5, le=3600)  # queue depth and slot use, one worker at a time
    keep_days: int = Field(7, ge=1)  # samples older than this are deleted by the sweep


class BeatSettings(Section):
    """The beat that fires schedules (``cca beat``); several may run, one leads."""

    tick_seconds: float = Field(1.0, gt=0, le=60)
    misfire_grace_seconds: int = Field(60, ge=0)
    leader_timeout_seconds: int = Field(10, ge=2, le=3600)
    max_fires_per_tick: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _leader_outlives_a_tick(self) -> BeatSettings:
        if self.leader_timeout_seconds < 3 * self.tick_seconds:
            raise ValueError("leader_timeout_seconds must be at least 3 x tick_seconds: a beat "
                             "queries Postgres once a tick, and a quieter session loses the lock")
        return self


class FlowerSettings(Section):
    """Flower, the Celery monitor (``cca flower``)."""

    address: str = "127.0.0.1"
    port: int = Field(5555, gt=0, lt=65536)
    basic_auth: CommaList = []
    url: str = ""


class AcpSettings(Section):
    """Accepted for compatibility with the guide; cca has no ACP websocket."""

    websocket_port: int = 9100
    reconnect_interval_ms: int = 2000
    max_reconnect_attempts: int = 10


EmbeddingProvider = Literal["local", "ollama", "openai", "none"]


class EmbeddingSettings(Section):
    """Where memory and code search get their vectors (cca_core.embeddings)."""

    provider: EmbeddingProvider = "local"
    model: str = Field("", max_length=200)  # "" = the provider's default model
    url: str = ""  # the provider's base URL ("" = its default)
    api_key: str = ""  # openai: sent as a bearer token
    local_path: str = ""  # local: a directory with a BERT model's safetensors and tokenizer
    dimension: int = Field(0, ge=0, le=16000)  # 0 = what the model gives; else checked against it
    batch_size: int = Field(32, ge=1, le=2048)
    timeout_seconds: float = Field(30.0, gt=0, le=600)
    max_retries: int = Field(2, ge=0, le=10)

    @field_validator("model")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value and not all(c.isalnum() or c in "._:/-@" for c in value):
            raise ValueError("may hold letters, digits and . _ : / - @ only")
        return value


class MemorySettings(Section):
    """What the fleet remembers of its tasks (cca_core.memory) and how it searches."""

    remember: bool = True  # store each ended task's prompt, outcome and result summary
    recall_k: int = Field(0, ge=0, le=20)  # memories put before a task's prompt unless it says
    summary_chars: int = Field(1500, ge=100, le=20000)  # of a result kept in its memory
    ef_search: int = Field(100, ge=10, le=1000)  # HNSW candidates per search (recall vs speed)


class SessionSettings(Section):
    """Sessions that survive (cca_core.sessions): a retried or interrupted run resumes its
    claude session on any worker, and a finished task can be continued."""

    resume: bool = True  # a retried run resumes its session (false: it starts over)
    # The per-task workspace is stored with the transcript when its gzipped tar fits this;
    # a bigger one is not kept, and a run that would need it starts over (and says so).
    max_workspace_bytes: int = Field(20_000_000, ge=0)


class CodeSettings(Section):
    """The code index (cca_core.code)."""

    extensions: CommaList = [".py", ".js", ".jsx", ".ts", ".tsx", ".go", ".rs", ".java", ".c",
                             ".h", ".cc", ".cpp", ".hpp", ".rb", ".php", ".cs", ".kt", ".scala",
                             ".swift", ".sh", ".md", ".toml", ".yaml", ".yml", ".sql"]
    excludes: CommaList = [".git", "node_modules", ".venv", "venv", "__pycache__", "dist",
                           "build", ".cache", ".mypy_cache", ".ruff_cache", ".pytest_cache"]
    max_file_bytes: int = Field(500_000, ge=1000)
    max_files: int = Field(50_000, ge=1)
    window_lines: int = Field(60, ge=5, le=1000)  # chunk size for files no grammar splits


class RetrySettings(Section):
    """What follows a failed run, per failure class (cca_core.retries: the defaults and
    how a wait is computed); a role's and a task's ``retries`` go over these."""

    jitter: float = Field(0.25, ge=0, le=1)  # up to this share of each wait is taken off at random
    rate_limited: RetryRule | None = None
    overloaded: RetryRule | None = None
    server_error: RetryRule | None = None
    auth_failed: RetryRule | None = None
    billing: RetryRule | None = None
    context_too_long: RetryRule | None = None
    invalid_request: RetryRule | None = None
    max_turns: RetryRule | None = None
    tool_failure: RetryRule | None = None
    crashed: RetryRule | None = None

    @model_validator(mode="after")
    def _final_not_retried(self) -> RetrySettings:
        refuse_retrying_final(self.rules)
        return self

    @property
    def rules(self) -> RetryRules:
        return {failure: rule for failure in Failure
                if (rule := getattr(self, failure.value)) is not None}


class TelemetrySettings(Section):
    """The CLI's own OpenTelemetry for fleet agents (cca_worker.telemetry): metrics and events
    to an OTLP collector, tagged with the task, tenant, role and worker."""

    enabled: bool = False
    endpoint: str = ""  # a collector beside the worker (it holds your backend's credentials)
    protocol: Literal["grpc", "http/json", "http/protobuf"] = "http/protobuf"
    events: bool = True  # the CLI's events (API requests, tool results) as OTLP logs
    metric_export_interval_ms: int = Field(60000, ge=1000)
    logs_export_interval_ms: int = Field(5000, ge=500)

    @model_validator(mode="after")
    def _endpoint_when_enabled(self) -> TelemetrySettings:
        if self.enabled and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError("endpoint: telemetry.enabled needs the collector's http(s) URL")
        return self


# Where a credential's requests go when it names no base_url.
ANTHROPIC_API = "https://api.anthropic.com"
_CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


class CredentialSettings(Section):
    """A model API credential the workers lend to agents through their proxy
    (cca_worker.proxy): agents get a per-task token, never this secret."""

    api_key: str = ""  # sent as x-api-key
    auth_token: str = ""  # or a gateway's token, sent as a bearer token
    base_url: str = ANTHROPIC_API
    max_agents: int = Field(0, ge=0)  # agents using it at once, fleet-wide; 0: no cap

    @model_validator(mode="after")
    def _one_secret(self) -> CredentialSettings:
        if bool(self.api_key) == bool(self.auth_token):
            raise ValueError("needs exactly one of api_key and auth_token")
        return self

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class EmbeddedSettings(Section):
    data_dir: str = "~/.local/share/cca"


class Settings(Section):
    daemon: DaemonSettings = DaemonSettings()
    redis: RedisSettings = RedisSettings()
    postgres: PostgresSettings = PostgresSettings()
    agents: AgentSettings = AgentSettings()
    worker: WorkerSettings = WorkerSettings()
    security: SecuritySettings = SecuritySettings()
    beat: BeatSettings = BeatSettings()
    retention: RetentionSettings = RetentionSettings()
    flower: FlowerSettings = FlowerSettings()
    acp: AcpSettings = AcpSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    embeddings: EmbeddingSettings = EmbeddingSettings()
    memory: MemorySettings = MemorySettings()
    code: CodeSettings = CodeSettings()
    retries: RetrySettings = RetrySettings()
    sessions: SessionSettings = SessionSettings()
    credentials: dict[str, CredentialSettings] = {}
    telemetry: TelemetrySettings = TelemetrySettings()
    webhooks: WebhookSettings = WebhookSettings()
    dashboard: DashboardSettings = DashboardSettings()

    @field_validator("credentials")
    @classmethod
    def _credential_names(cls, value: dict[str, CredentialSettings]) -> dict[str, CredentialSettings]:
        for name in value:
            if not _CREDENTIAL_NAME.fullmatch(name):
                raise ValueError(f"{name!r}: a credential's name holds 1 to 40 letters, digits, _ and -")
        return value

    @model_validator(mode="after")
    def _fleet_queues(self) -> Settings:
        """``agents.queues`` defaults to ``worker.queues``: one config file serves the API and
        the workers, so the queues the workers consume are the ones a task may name."""
        if "queues" not in self.agents.model_fields_set:
            agents = self.agents.model_copy(update={"queues": list(self.worker.queues)})
            object.__setattr__(self, "agents", agents)
        for name, role in self.agents.roles.items():
            unknown = set(role.allowed_queues or []) - set(self.agents.queues)
            if unknown:
                raise ValueError(f"agents.roles.{name}.allowed_queues: {', '.join(sorted(unknown))} "
                                 f"not in agents.queues ({', '.join(self.agents.queues)})")
        return self

    @property
    def data_dir(self) -> Path:
        return Path(self.embedded.data_dir).expanduser()

    @property
    def workspace_root(self) -> Path:
        root = self.agents.workspace_root or str(self.data_dir / "workspaces")
        return Path(root).expanduser()
