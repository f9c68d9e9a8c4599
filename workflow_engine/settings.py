"""The one typed settings object, read from ``WFE_*`` environment variables at entry points."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from workflow_engine.errors import ConfigurationError
from workflow_engine.store.urls import database_url

DEFAULT_JWT_SECRET = "development-only-secret-set-WFE_JWT_SECRET-in-production"  # noqa: S105 - refused in production
# the placeholders config/wfe.env.example ships: a secret containing PLACEHOLDER_MARK is refused
# in production, as the default is
EXAMPLE_JWT_SECRET = "replace-with-a-long-random-secret-of-at-least-32-characters"  # noqa: S105 - refused in production
PLACEHOLDER_MARK = "replace-with"
EMBEDDED_BROKER = "embedded"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_CLASS_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*\Z")  # a result backend class, module:Class
BROKER_FORMS = "embedded, redis://HOST:6379/0, amqp://USER:PASSWORD@HOST:5672//"
# the kombu transports the engine runs on: it routes steps to queues and broadcasts revokes,
# which others (kafka, sqs...) do not, or not without a client library the engine lacks
# (memory:// and filesystem:// serve one process, or one folder: the test harness, embedded)
ENGINE_TRANSPORTS = ("redis", "rediss", "sentinel", "amqp", "amqps", "pyamqp", "memory", "filesystem")


def setting(
    default: Any,
    description: str,
    *,
    section: str | None = None,
    example: str | None = None,
    commented: str | None = None,
    factory: Any = None,
    **constraints: Any,
) -> Any:
    """A settings field that documents itself: ``section`` starts a part of the example file,
    ``example`` is the value the example file sets, ``commented`` one it shows commented out
    (neither: the default, commented out)."""
    extra = {"section": section, "example": example, "commented": commented}
    kept: JsonDict = {key: value for key, value in extra.items() if value is not None}
    if factory is not None:
        return Field(default_factory=factory, description=description, json_schema_extra=kept, **constraints)
    return Field(default, description=description, json_schema_extra=kept, **constraints)


class Settings(BaseSettings):
    """Deployment settings; every interval is a setting so tests can shorten it."""

    # a refused value is never echoed: a URL carries its password
    model_config = SettingsConfigDict(
        env_prefix="WFE_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    # Each setting says what it is for (`description`), the part of the example file it belongs
    # to and, where the example file sets it, the value it shows there: config/wfe.env.example
    # is written from these by `wfe settings example` (and checked against them by a test).

    database_url: str = setting(
        "sqlite:///wfe.db",
        "where everything is recorded: PostgreSQL in production (SQLite is the embedded default). "
        "postgresql:// and postgres:// use psycopg 3; postgresql+psycopg2:// uses psycopg2; a Unix "
        "socket is postgresql:///wfe?host=/var/run/postgresql; over TLS, add "
        "?sslmode=verify-full&sslrootcert=/etc/wfe/tls/ca.pem",
        section="Where work is recorded and carried",
        example="postgresql://wfe:wfe@localhost:5432/wfe",
    )
    broker_url: str = setting(
        EMBEDDED_BROKER,
        "the broker that carries step tasks: Redis or RabbitMQ (amqp://guest:guest@localhost:5672//); "
        "over TLS: rediss://redis:6380/0?ssl_cert_reqs=required&ssl_ca_certs=%2Fetc%2Fwfe%2Ftls%2Fca.pem; "
        "`embedded` (the default) is a folder next to the SQLite database, for one machine",
        example="redis://localhost:6379/0",
    )
    broker_transport_options: dict[str, Any] = setting(
        None,
        "Celery's broker transport options, as JSON (for example Redis's global_keyprefix)",
        factory=dict,
    )
    result_backend: str | None = setting(
        None, "a Celery result backend, for other services that read step tasks' results (unset: none)"
    )
    agent_modules: Annotated[tuple[str, ...], NoDecode] = setting(
        (),
        "agent modules every worker imports, comma-separated (found from the directory the process "
        "runs in, as `celery -A` finds its app)",
        example="workers.demo_agents",
    )
    task_modules: Annotated[tuple[str, ...], NoDecode] = setting(
        (),
        "modules defining Celery tasks that `type: task` steps run, comma-separated, imported by "
        "every worker (the modules `celery -A` would load)",
        commented="shop.tasks",
    )
    queue_prefix: str = setting(
        "wfe",
        "queue names are prefixed with this: several deployments can share one broker",
        example="wfe",
        pattern=r"^[A-Za-z0-9_.-]+$",
    )
    intake_queue: str = setting(
        "celery",
        "the queue other services' `send_task(\"wfe.start_workflow\", ...)` lands on (Celery's "
        "default), which the coordinators also consume; empty turns that off",
        pattern=r"^[A-Za-z0-9_.-]*$",
    )
    environment: Literal["development", "production"] = setting(
        "development",
        "production refuses to start the API with the default JWT secret, a short one, or any "
        "replace-with-... placeholder below (the metrics token's included)",
        section="The API",
        example="production",
    )

    jwt_secret: SecretStr = setting(
        SecretStr(DEFAULT_JWT_SECRET),
        "the secret access tokens are signed with: a long random string in production "
        "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')",
        example=EXAMPLE_JWT_SECRET,
    )
    access_token_ttl: int = setting(900, "seconds an access token lasts", gt=0)
    refresh_token_ttl: int = setting(7 * 24 * 3600, "seconds a refresh token lasts", gt=0)
    api_host: str = setting(
        "127.0.0.1", "the address `wfe api` listens on (0.0.0.0: every interface)", example="127.0.0.1"
    )
    api_port: int = setting(8000, "the port `wfe api` listens on", example="8000", ge=0, le=65535)
    api_tls_cert: str | None = setting(
        None,
        "HTTPS: a certificate (with its chain) and its key, PEM files; both, or neither",
        commented="/etc/wfe/tls/cert.pem",
    )
    api_tls_key: str | None = setting(None, "the key of WFE_API_TLS_CERT", commented="/etc/wfe/tls/key.pem")
    max_request_bytes: int = setting(
        1024 * 1024, "the largest request body the API reads (413 beyond)", gt=0
    )
    login_failures_per_user: int = setting(
        5,
        "the brake on guessing passwords: failed logins per username within the window, then 429 "
        "with Retry-After until the oldest failure leaves it",
        gt=0,
    )
    login_failures_per_address: int = setting(
        20, "failed logins per client address within the window", gt=0
    )
    login_window: float = setting(300.0, "the window of the login brake, in seconds", gt=0)
    login_successes_per_user: int = setting(
        60,
        "successful logins per username within the window, then 429 with Retry-After (each one "
        "takes a password hash: a script should refresh its token, not log in again)",
        gt=0,
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = setting(
        (),
        "addresses of the reverse proxies whose X-Forwarded-For and X-Forwarded-Proto the API "
        "believes, comma-separated (unset: none, the client is the peer that connects)",
        commented="127.0.0.1",
    )
    login_hashing_slots: int = setting(
        2, "password hashes one API process checks at once (argon2 takes a core for ~50 ms)", gt=0
    )
    metrics_token: SecretStr | None = setting(
        None,
        "a static bearer token Prometheus scrapes GET /metrics with (access tokens expire)",
        example="replace-with-another-long-random-token",
    )
    encryption_keys: SecretStr | None = setting(
        None,
        "the keys that seal secret values, comma-separated (`wfe keys new` makes one; the first "
        "seals, every one opens): needed by every process once a workflow declares secrets",
        commented="",
    )

    task_events: bool = setting(
        False,
        "Celery task events, which Flower shows tasks from (about a millisecond a step); on where "
        "Flower runs",
        section="Processes",
    )
    log_format: Literal["text", "json"] = setting(
        "text", "logging: json for log shippers (each line carries execution_id and step), or text"
    )
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL")

    worker_concurrency: int | None = setting(
        None, "parallel steps per worker (unset: one per core)", commented="4", gt=0
    )
    inline_steps: int = setting(
        50,
        "a worker runs the single step that follows the one it finished at once, in place, up to "
        "this many times in a row, instead of publishing it (0: publish every step)",
        ge=0,
    )
    heartbeat_interval: float = setting(5.0, "seconds between a worker's heartbeats", gt=0)
    flower_url: str | None = setting(
        None,
        "the monitor (/ui) links each attempt to its task in Flower at this address",
        commented="http://localhost:5555",
        pattern=r"^https?://",
    )
    worker_lost_after: float = setting(
        30.0, "recovery: a running step whose worker is silent this many seconds is run again", gt=0
    )
    redispatch_after: float = setting(
        120.0, "a queued step not started this many seconds is published again", gt=0
    )
    reconcile_interval: float = setting(2.0, "seconds between the reconciler's passes", gt=0)
    timeout_grace: float = setting(
        10.0, "seconds past a step's timeout before the reconciler ends its attempt", ge=0
    )
    eta_horizon: float = setting(
        600.0,
        "a retry or timer due further ahead than this many seconds waits in the database, not in "
        "the broker",
        gt=0,
    )
    max_worker_losses: int = setting(
        5, "a step whose worker was lost this many times fails instead of running again", gt=0
    )
    map_max_items: int = setting(
        10_000, "composition: the longest list a map step takes", section="Composition", ge=0
    )
    map_window: int = setting(
        1000, "how many of a map's items are queued at once when it sets no max_concurrency", ge=1
    )
    max_workflow_depth: int = setting(8, "how deep child workflows nest", ge=0)
    max_descendants: int = setting(
        10_000,
        "how many child executions one top-level start may make in all (children, their "
        "children, ...); a start beyond it fails the step that asks for it (DESCENDANT_LIMIT)",
        ge=0,
    )
    quota_executions_in_flight: int = setting(
        1000,
        "executions one owner may have that have not ended (its children and their "
        "children included), then 429 for a new start (0: no limit; the deployment's own "
        "starts, from the CLI or a plain Celery message, are not counted)",
        section="Quotas",
        ge=0,
    )
    quota_starts_per_minute: int = setting(
        600, "executions one owner may start in a minute, then 429 with Retry-After (0: no limit)", ge=0
    )
    quota_signals_kept: int = setting(
        100, "signals kept for one execution (sent before a step waits for them), then 429", ge=0
    )
    quota_signal_bytes: int = setting(
        4 * 1024 * 1024,
        "bytes of data of the signals kept for one execution (as stored JSON), then 429",
        ge=0,
    )
    quota_schedules: int = setting(100, "schedules one owner may have, then 429 (0: no limit)", ge=0)
    schedule_min_interval: int = setting(
        5, "the smallest `every` of a schedule a user creates, in seconds (422 below it)", ge=1
    )
    max_input_bytes: int = setting(
        512 * 1024,
        "the most an execution's input and metadata may take stored (as JSON), then 422",
        gt=0,
    )
    max_output_bytes: int = setting(
        1024 * 1024,
        "the largest step output, checkpoint or signal data (as JSON): a larger output fails its "
        "step (OUTPUT_TOO_LARGE), nothing of it stored; a larger checkpoint fails it too, and "
        "larger signal data is refused with 422",
        gt=0,
    )
    retention_days: float | None = setting(
        None,
        "ended executions finished more than this many days ago are purged by the coordinators "
        "(with their steps, events, signals and children); unset keeps everything",
        section="Retention",
        commented="30",
        gt=0,
    )
    retention_interval: float = setting(
        300.0, "seconds between the coordinators' retention passes", gt=0
    )
    purge_rest: float = setting(
        3.0,
        "`wfe db purge` rests this many times as long as each batch took, so that running work "
        "keeps its pace (0: it never rests)",
        ge=0,
    )
    schedule_interval: float = setting(
        1.0,
        "schedules: the longest a coordinator sleeps between looks (it wakes at each fire time)",
        section="Schedules",
        gt=0,
    )
    schedule_late_after: float = setting(
        60.0,
        "a fire time found later than this many seconds is missed unless within its schedule's "
        "catch-up window",
        ge=0,
    )
    test_run_timeout: float = setting(
        60.0,
        "`POST /testing/runs`: the longest a test run may take (wall time) before it is stopped "
        "and recorded as failed",
        section="Workflow tests",
        gt=0,
    )
    test_run_max_items: int = setting(
        1000,
        "`POST /testing/runs`: the longest list a map step of a test run takes, and the most "
        "child executions one case starts (beyond: the step fails)",
        ge=0,
    )
    test_run_slots: int = setting(
        2, "`POST /testing/runs`: how many test runs one API process runs at once (others get 429)", gt=0
    )
    embedded_poll_interval: float = setting(
        0.05, "seconds between the embedded broker's polls", section="Polling", gt=0
    )
    events_poll_interval: float = setting(
        0.5, "seconds between the API's looks for new events of a followed execution", gt=0
    )
    metrics_port: int | None = setting(
        None,
        "a worker's Prometheus endpoint (one port per worker on a host: the Procfile passes each "
        "worker honcho's $PORT with --metrics-port, which overrides this)",
        commented="9100",
        ge=0,
        le=65535,
    )
    metrics_address: str = setting(
        "127.0.0.1",
        "the address a worker's Prometheus endpoint listens on (it has no authentication: "
        "0.0.0.0 exposes it to every host that can reach this one)",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            database_url(value)
        except ConfigurationError as error:
            raise PydanticCustomError("database_url", str(error)) from None
        return value

    @model_validator(mode="after")
    def _check_tls_pair(self) -> Settings:
        if (self.api_tls_cert is None) != (self.api_tls_key is None):
            raise PydanticCustomError(
                "api_tls", "WFE_API_TLS_CERT and WFE_API_TLS_KEY go together: give both, or neither"
            )
        return self

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str) -> str:
        if value == EMBEDDED_BROKER:
            return value
        from kombu.transport import TRANSPORT_ALIASES

        for url in filter(None, value.split(";")):  # Celery's fail-over list
            scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
            if scheme not in TRANSPORT_ALIASES:
                shown = f"{scheme}://" if scheme else repr(url.split("@")[-1][:40])
                message = f"no broker transport for {shown}; use {BROKER_FORMS}"
                raise PydanticCustomError("broker_url", message)
            if scheme not in ENGINE_TRANSPORTS:
                message = f"the engine does not run on {scheme}:// (only Redis, RabbitMQ); use {BROKER_FORMS}"
                raise PydanticCustomError("broker_url", message)
            if scheme == "rediss" and "ssl_cert_reqs=" not in url:
                message = (
                    "a rediss:// URL says how to check the server's certificate: add "
                    "?ssl_cert_reqs=required&ssl_ca_certs=PATH (or ssl_cert_reqs=none not to check it)"
                )
                raise PydanticCustomError("broker_url", message)
        return value

    @field_validator("result_backend")
    @classmethod
    def _check_result_backend(cls, value: str | None) -> str | None:
        if not value:
            return None  # empty is unset
        from celery.app.backends import BACKEND_ALIASES

        scheme = value.split("://", 1)[0].split("+", 1)[0] if "://" in value else value
        if scheme not in BACKEND_ALIASES and not _CLASS_PATH.match(value):
            message = f"no Celery result backend {scheme!r}; use redis://HOST:6379/1, rpc://, db+URL"
            raise PydanticCustomError("result_backend", message)
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        value = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(value.upper(), value.upper())
        if value not in LOG_LEVELS:
            raise PydanticCustomError("log_level", f"one of {', '.join(LOG_LEVELS)}")
        return value

    @field_validator("agent_modules", "task_modules", "trusted_proxies", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url == EMBEDDED_BROKER

    @property
    def embedded_broker_dir(self) -> Path:
        """Folder of the embedded broker: next to the SQLite file, else under the working dir."""
        url = database_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            db = Path(url.database)
            return db.parent / f".{db.name}.broker"
        return Path(".wfe-broker")

    @property
    def steps_queue(self) -> str:
        return f"{self.queue_prefix}.steps"

    @property
    def coordinator_queue(self) -> str:
        return f"{self.queue_prefix}.coordinator"

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields replaced and validated again."""
        return type(self).model_validate({**self.model_dump(), **changes})
