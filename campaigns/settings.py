"""All configuration, from the environment (or a `.env` file), in one place.

A URL left unset means "use the embedded piece": `campaigns run` then starts it
under `DATA_DIR` and fills the URL in for its children.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = Path(".data")

    # External services; None means embedded.
    temporal_address: str | None = None
    database_url: str | None = None
    redis_url: str | None = None

    temporal_namespace: str = "default"
    temporal_task_queue: str = "campaigns"

    # Ports of the embedded pieces.
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    postgres_port: int = 5433
    redis_port: int = 6380

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_base_url: str | None = None  # how clients reach the API; defaults to host:port

    db_pool_min: int = 2
    db_pool_max: int = 20
    # How long the API waits on an A/B test's workflow before answering 503.
    workflow_update_timeout_s: float = 15.0
    # How long the API waits for a campaign's workflow to apply a status change (recorded in
    # Postgres first) before answering 202 with the change pending; also the bound on telling
    # it a configuration change right after the commit (the relay retries it otherwise).
    status_change_wait_s: float = 4.0
    # A campaign workflow's task timeout (set when its workflow starts): how soon a task that a
    # killed worker held is handed to another worker. Not much shorter: a task that a busy
    # worker takes longer than this to complete is thrown away and done again.
    workflow_task_timeout_s: float = 5.0
    # How long a workflow task may wait on the worker that ran the workflow last (its sticky
    # queue) before any worker may take it; short, so a killed worker's workflows move on soon.
    worker_sticky_timeout_s: float = 1.0

    # Redis calls: how long a connection and a reply may take before Redis counts as down
    # (the process's breaker then opens), and how often a probe asks whether it is back.
    redis_connect_timeout_s: float = 0.5
    redis_socket_timeout_s: float = 0.5
    redis_probe_interval_s: float = 0.25
    # Postgres: how long one statement, and making a connection, may take before the request
    # fails (503) instead of waiting on a Postgres that does not answer (a statement that
    # times out is then cancelled, which may take as long again).
    db_command_timeout_s: float = 5.0
    db_connect_timeout_s: float = 10.0

    # Requests a second per API key and per organization (all its keys together), shared by
    # all API replicas (0: no limit). Each process decides locally and adds its counts to
    # Redis every `rate_limit_sync_s`; while Redis is down each process applies the limits
    # on its own.
    rate_limit_per_second: int = 200
    rate_limit_org_per_second: int = 1000
    rate_limit_sync_s: float = 0.05
    # Failed authentications a minute per client address and per key prefix before further
    # attempts with unknown keys are refused (429) without looking them up.
    auth_failures_per_minute: int = 30
    # Unknown keys remembered (per process) so that repeating one costs no Postgres lookup.
    auth_negative_cache_s: float = 300.0
    demo_organization: str = "demo"
    # The worker touches this file every few seconds while Temporal answers (container health checks).
    worker_health_file: Path | None = None
    # The Temporal worker's capacity (docs/operations.md). Every running campaign is a
    # workflow that wakes on its timers; one kept in the cache wakes without replaying its
    # history, so the cache holds them all. Workflow tasks are CPU in one Python thread: a
    # few dozen at once let those waiting on a local activity overlap. After a worker dies,
    # its cached workflows' tasks go to another once they have waited `worker_sticky_timeout_s`.
    worker_max_cached_workflows: int = 12_000
    worker_max_concurrent_workflow_tasks: int = 50
    worker_max_concurrent_activities: int = 50
    worker_max_concurrent_local_activities: int = 50

    # The voice-AI pipeline and the knowledge-base service (external HTTP services; unset:
    # not integrated, so nothing is provisioned and knowledge bases are not checked).
    pipeline_url: str | None = None
    pipeline_api_key: str | None = None
    knowledge_base_url: str | None = None
    knowledge_base_api_key: str | None = None
    integration_timeout_s: float = 10.0
    # Networks those two services may be on although private/loopback/reserved (the same
    # SSRF rules as webhooks otherwise). Loopback by default: the embedded simulator and
    # local sidecars listen there. Add e.g. "10.1.0.0/16" for services on a private network.
    service_allowed_networks: str = "127.0.0.0/8,::1/128"
    # `campaigns run --simulate` serves stand-ins for both here, and this many calls a second.
    simulator_port: int = 8090
    simulator_rate: float = 2.0

    # The two-tier campaign cache (in-process, then Redis, then Postgres).
    cache_enabled: bool = True
    cache_ttl_s: int = 3600
    cache_local_ttl_s: float = 60.0
    cache_local_max_entries: int = 20_000  # two per campaign (its row, its rendered response)
    cache_warm_limit: int = 10_000
    # How long a write waits for every API process to confirm it dropped the old entry.
    cache_ack_timeout_s: float = 0.5

    # The analytics refresher (every API process runs one; one works at a time): how often it
    # applies accepted batches, how many at most per pass, and how often it re-evaluates
    # every campaign's goals and budgets (windows roll over at local midnight).
    refresh_interval_s: float = 1.0
    refresh_batch: int = 200
    refresh_sweep_s: float = 30.0

    # Widget events one visitor (client address) may send per minute with one widget key.
    widget_events_per_minute: int = 600

    # Request bodies: refused (413) past these sizes, from Content-Length or as they stream;
    # JSON nested deeper than this is refused (400).
    max_body_bytes: int = 1024 * 1024
    events_max_body_bytes: int = 16 * 1024 * 1024  # POST /api/events
    widget_events_max_body_bytes: int = 64 * 1024  # POST /embed/events
    json_max_depth: int = 32
    # What one organization may hold at once: active API keys; exports being downloaded and
    # SSE streams open (counted in Redis across API replicas, leases renewed while they run
    # and expiring this long after a process dies).
    max_api_keys_per_organization: int = 100
    max_exports_per_organization: int = 4
    max_streams_per_organization: int = 20
    stream_lease_s: float = 30.0
    # /metrics: a bearer token it requires (unset: open, for a scraper on a private network);
    # how long the campaigns-by-status gauge is reused before Postgres is asked again.
    metrics_token: str | None = None
    metrics_campaigns_ttl_s: float = 15.0
    # The OpenAPI document (/openapi.json) and its pages (/docs, /redoc).
    api_docs: bool = True

    # Real-time streams (SSE): how often each API process pushes the changes of the
    # campaigns its viewers watch (one read and one rendered frame per changed campaign) at
    # most, the frames a second it hands out before spacing its pushes further apart (up to
    # a second), and how often it re-reads them without a change (the day rolls over, calls
    # age out).
    stream_tick_s: float = 0.1
    stream_frames_per_s: int = 5000
    stream_refresh_s: float = 5.0
    stream_ping_s: float = 15.0

    # Analytics events are kept this many days (older monthly partitions are dropped; the
    # rollups and everything derived from them stay). Events older than this are refused.
    # 0 (the default: an upgrade never deletes events by itself) keeps them for ever.
    analytics_retention_days: int = 0

    log_level: str = Field(default="info")

    # The web console (/console). Session cookies are signed with this key; unset: a key is
    # made once in DATA_DIR/console-secret.key (set it when running several API processes).
    console_secret_key: str | None = None
    console_session_hours: float = 12.0
    # Where the console links a campaign's workflow; default: the embedded Temporal UI.
    temporal_ui_url: str | None = None

    # Webhooks. Secrets are encrypted at rest with these Fernet keys (comma-separated; the
    # first encrypts, all decrypt, so keys can be rotated). Unset: a key is made once in
    # DATA_DIR/webhook-secret.key (fine for one machine; set it when running several).
    webhook_secret_keys: str | None = None
    # Networks webhooks may reach although private/loopback/reserved, e.g. "10.1.0.0/16".
    webhook_allowed_networks: str = ""
    webhook_connect_timeout_s: float = 5.0
    webhook_timeout_s: float = 15.0  # the whole attempt: connect, send, first bytes, body
    webhook_max_payload_bytes: int = 256 * 1024
    webhook_disable_after_s: float = 5 * 86400  # failing this long without a success disables
    # A delivery still failing this long after its run began is given up (with its attempts
    # capped by retryConfig.maxAttempts, retries always end).
    webhook_max_delivery_age_s: float = 7 * 86400
    webhook_rotation_grace_s: float = 86400  # default time the old secret keeps signing
    webhook_retention_days: float = 30  # finished deliveries (and their attempts) kept this long
    webhook_dispatcher: bool = True  # run the event dispatcher in this worker (any number may)

    # The hand-over relay (in every worker unless off; any number may run): it re-sends
    # pending status requests and configuration changes their workflows have not accepted
    # yet. How often it looks; how many it takes at once; its longest pause between tries of
    # one; how long resolved status requests (and their Idempotency-Keys) are kept.
    handover_relay: bool = True
    handover_poll_s: float = 1.0
    handover_batch: int = 50
    handover_max_backoff_s: float = 30.0
    status_request_retention_s: float = 7 * 86400
    # The dispatcher's pace: events claimed per batch; how often it looks without being
    # notified; how often it starts the workflows of failed first attempts a crash left
    # unstarted, and how long a sender has to start one itself; workflow start requests in
    # flight; how often it forgets deliveries past their retention.
    dispatch_batch: int = 100
    dispatch_poll_s: float = 2.0
    dispatch_sweep_s: float = 5.0
    dispatch_sweep_age_s: float = 10.0
    dispatch_starts_at_once: int = 64
    # Its direct first attempts: how many it sends at once; how many deliveries it may hold
    # claimed (in flight or waiting for a sender) before it stops taking more off the
    # outbox; and how long a claim outlasts an attempt's own limits (slot wait plus
    # WEBHOOK_TIMEOUT_S) before another dispatcher may take the delivery over.
    dispatch_senders: int = 50
    dispatch_max_claimed: int = 2000
    dispatch_claim_grace_s: float = 10.0
    dispatch_prune_s: float = 600.0

    # Where each piece is: the URL given, or the embedded one `campaigns run` starts.
    @property
    def database_dsn(self) -> str:
        return self.database_url or f"postgresql://postgres@127.0.0.1:{self.postgres_port}/postgres"

    @property
    def redis_dsn(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def temporal_ui(self) -> str:
        return (self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}").rstrip("/")

    @property
    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.api_host}:{self.api_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
