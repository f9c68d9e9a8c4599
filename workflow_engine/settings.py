"""The one typed settings object, read from ``WFE_*`` environment variables at entry points."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
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
_CLASS_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # a result backend class, module:Class
BROKER_FORMS = "embedded, redis://HOST:6379/0, amqp://USER:PASSWORD@HOST:5672//"


class Settings(BaseSettings):
    """Deployment settings; every interval is a setting so tests can shorten it."""

    # a refused value is never echoed: a URL carries its password
    model_config = SettingsConfigDict(
        env_prefix="WFE_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    database_url: str = "sqlite:///wfe.db"
    broker_url: str = EMBEDDED_BROKER
    broker_transport_options: dict[str, Any] = Field(default_factory=dict)
    result_backend: str | None = None
    agent_modules: Annotated[tuple[str, ...], NoDecode] = ()
    queue_prefix: str = Field(default="wfe", pattern=r"^[A-Za-z0-9_.-]+$")
    # plain `send_task("wfe.start_workflow", ...)` from another service lands on Celery's default
    # queue unless routed; the coordinator also consumes this queue ("" to turn that off)
    intake_queue: str = Field(default="celery", pattern=r"^[A-Za-z0-9_.-]*$")
    environment: Literal["development", "production"] = "development"

    jwt_secret: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    access_token_ttl: int = Field(default=900, gt=0)
    refresh_token_ttl: int = Field(default=7 * 24 * 3600, gt=0)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    # PEM files: with both, `wfe api` serves HTTPS (the certificate file may hold its chain)
    api_tls_cert: str | None = None
    api_tls_key: str | None = None
    max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    # the brake on guessing passwords: failed logins allowed per username and per client address
    # within the window (seconds); then 429 with Retry-After until the oldest failure leaves it
    login_failures_per_user: int = Field(default=5, gt=0)
    login_failures_per_address: int = Field(default=20, gt=0)
    login_window: float = Field(default=300.0, gt=0)
    # password hashes checked at once by one API process (argon2 takes a core for ~50 ms)
    login_hashing_slots: int = Field(default=2, gt=0)
    # a static bearer token Prometheus scrapes GET /metrics with (JWTs expire)
    metrics_token: SecretStr | None = None
    # Fernet keys that seal secret values, comma-separated: the first seals, every one opens
    encryption_keys: SecretStr | None = None

    # Celery task events, which Flower shows tasks from; off by default, as in Celery (they cost
    # about a millisecond a step): turn them on where Flower runs
    task_events: bool = False
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    worker_concurrency: int | None = Field(default=None, gt=0)
    # a worker that finishes a step runs the one step that follows at once, in place, up to this
    # many times in a row, instead of publishing it (0: always publish)
    inline_steps: int = Field(default=50, ge=0)
    heartbeat_interval: float = Field(default=5.0, gt=0)
    # the monitor links each attempt to its task in Flower at this address (None: no link)
    flower_url: str | None = Field(default=None, pattern=r"^https?://")
    worker_lost_after: float = Field(default=30.0, gt=0)
    redispatch_after: float = Field(default=120.0, gt=0)
    reconcile_interval: float = Field(default=2.0, gt=0)
    timeout_grace: float = Field(default=10.0, ge=0)
    eta_horizon: float = Field(default=600.0, gt=0)
    max_worker_losses: int = Field(default=5, gt=0)
    map_max_items: int = Field(default=10_000, ge=0)  # the longest list a map step takes
    map_window: int = Field(default=1000, ge=1)  # a map's items queued at once (no max_concurrency)
    max_workflow_depth: int = Field(default=8, ge=0)  # how deep child executions nest
    # ended executions older than this many days are purged by the coordinators (None: kept)
    retention_days: float | None = Field(default=None, gt=0)
    retention_interval: float = Field(default=300.0, gt=0)  # seconds between retention passes
    # `wfe db purge` rests this many times as long as each batch took (0: it never rests)
    purge_rest: float = Field(default=3.0, ge=0)
    # the longest a coordinator waits between looks at its schedules (it wakes at each fire time)
    schedule_interval: float = Field(default=1.0, gt=0)
    # a fire time found later than this is missed (unless within its schedule's catch-up window)
    schedule_late_after: float = Field(default=60.0, ge=0)
    embedded_poll_interval: float = Field(default=0.05, gt=0)
    events_poll_interval: float = Field(default=0.5, gt=0)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

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

    @field_validator("agent_modules", mode="before")
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
