"""Settings: `rotor.toml`, overridden by `ROTOR_<SECTION>_<KEY>` environment variables, overridden by flags."""

from __future__ import annotations

import ipaddress
import os
import re
import typing
from pathlib import Path
from typing import Any, Literal

import msgspec

from rotor_lite.durations import parse_duration_ms
from rotor_lite.errors import ConfigError

Duration = int | str


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    def ms(self, name: str) -> int:
        """The duration field `name` in milliseconds (validated at load time)."""
        return parse_duration_ms(getattr(self, name))


def _split_list(value: list[str] | str) -> list[str]:
    """A list setting, also given as one comma-separated string (environment variables)."""
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


def _networks(value: list[str] | str, key: str) -> list[str]:
    """IP addresses and CIDR networks, each written canonically (host bits of a network may be set)."""
    networks = []
    for item in _split_list(value):
        try:
            network = ipaddress.ip_network(item, strict=False) if "/" in item else ipaddress.ip_address(item)
        except ValueError as exc:
            raise ValueError(f"{key}: {item!r} is not an IP address or network") from exc
        networks.append(str(network))
    return networks


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    drain_timeout: Duration = "30s"
    forwarded_allow_ips: list[str] | str = msgspec.field(default_factory=list)
    # Incoming connections and the server's log
    keep_alive_timeout: Duration = "5s"
    header_timeout: Duration = "10s"
    max_connections: int = 1024
    log_format: Literal["text", "json"] = "text"

    def __post_init__(self) -> None:
        self.forwarded_allow_ips = _networks(self.forwarded_allow_ips, "server.forwarded_allow_ips")
        if self.max_connections < 0:
            raise ValueError("server.max_connections must be 0 (no limit) or more")


class StorageSettings(_Section):
    data_dir: str = "./data"
    synchronous: Literal["FULL", "NORMAL", "OFF", "EXTRA"] = "FULL"
    # Empty: SQLite in data_dir. "postgresql://…": several nodes share that database.
    url: str = ""

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("postgresql://", "postgres://")):
            raise ValueError("storage.url must be empty (SQLite in storage.data_dir) or a postgresql:// URL")

    @property
    def is_postgres(self) -> bool:
        return bool(self.url)


class AuthSettings(_Section):
    bootstrap_api_key: str = ""

    def __post_init__(self) -> None:
        if self.bootstrap_api_key and not self.bootstrap_api_key.startswith("rt_"):
            raise ValueError("auth.bootstrap_api_key must start with 'rt_'")


class SecuritySettings(_Section):
    master_key: str = ""


class CallbackSettings(_Section):
    allow_private_networks: bool = False
    default_timeout: Duration = "30s"
    max_connections: int = 256


class DeliverySettings(_Section):
    processes: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        if self.processes != "auto" and self.processes < 0:
            raise ValueError("delivery.processes must be \"auto\", 0 (deliver in the server's process) or more")


class DispatchSettings(_Section):
    concurrency_key_recheck: Duration = "10s"
    concurrency_key_ttl: Duration = "300s"
    lease: Duration = "30s"
    poll_interval: Duration = "1s"
    max_waiting_leases: int = 1000

    def __post_init__(self) -> None:
        if self.max_waiting_leases < 0:
            raise ValueError("dispatch.max_waiting_leases must be 0 (no long polls) or more")


class LimitSettings(_Section):
    max_payload_bytes: int = 512 * 1024
    max_request_bytes: int = 16 * 1024 * 1024
    rate_limit_per_minute: int = 0
    monthly_job_quota: int = 0


class PlanSettings(_Section):
    """A named plan's figures: API requests per minute and accepted jobs per month (0 = unlimited), and the
    days finished jobs, runs and their logs are kept."""

    requests_per_minute: int = 0
    jobs_per_month: int = 0
    retention_days: int = 7

    def __post_init__(self) -> None:
        if min(self.requests_per_minute, self.jobs_per_month) < 0:
            raise ValueError("plans: requests_per_minute and jobs_per_month must be 0 (unlimited) or more")
        _check_retention_days(self.retention_days)


def _check_retention_days(days: int) -> None:
    if days < 1:
        raise ValueError("plans: retention_days must be at least 1")


# Each named plan's defaults are the reference's: Free 60/min, 10k jobs, 7 d; Pro 300, 100k, 30 d; Team 1,000,
# 1M, 90 d; Enterprise unlimited ("custom"), 365 d. A table that sets one figure keeps the plan's other defaults.
class FreePlan(PlanSettings):
    requests_per_minute: int = 60
    jobs_per_month: int = 10_000
    retention_days: int = 7


class ProPlan(PlanSettings):
    requests_per_minute: int = 300
    jobs_per_month: int = 100_000
    retention_days: int = 30


class TeamPlan(PlanSettings):
    requests_per_minute: int = 1_000
    jobs_per_month: int = 1_000_000
    retention_days: int = 90


class EnterprisePlan(PlanSettings):
    retention_days: int = 365


class SelfHostedPlan(_Section):
    """The default plan: its requests per minute and monthly jobs are `[limits]`'s (unlimited by default)."""

    retention_days: int = 7

    def __post_init__(self) -> None:
        _check_retention_days(self.retention_days)


class PlansSettings(_Section):
    free: FreePlan = msgspec.field(default_factory=FreePlan)
    pro: ProPlan = msgspec.field(default_factory=ProPlan)
    team: TeamPlan = msgspec.field(default_factory=TeamPlan)
    enterprise: EnterprisePlan = msgspec.field(default_factory=EnterprisePlan)
    self_hosted: SelfHostedPlan = msgspec.field(default_factory=SelfHostedPlan, name="self-hosted")


class RetentionSettings(_Section):
    sweep_interval: Duration = "1m"


class ScheduleSettings(_Section):
    misfire_grace: Duration = "1h"
    # Several nodes on PostgreSQL: how often a node not leading tries to become the cron leader (and the
    # leader renews its lease), so a dead leader is replaced within about this long.
    leader_retry: Duration = "1s"


def _duration_list(value: list[Duration] | str, key: str) -> list[Duration]:
    """A list of durations, also given as one comma-separated string (environment variables)."""
    items: list[Duration] = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
    for item in items:
        try:
            parse_duration_ms(item)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from exc
    return items


class WorkflowSettings(_Section):
    call_timeout: Duration = "5m"
    hook_timeout: Duration = "15m"
    retry_delay: Duration = "1s"
    lease: Duration = "30s"
    max_in_flight: int = 256
    poll_interval: Duration = "1s"

    def __post_init__(self) -> None:
        _duration_list([self.call_timeout, self.hook_timeout, self.retry_delay, self.lease, self.poll_interval], "workflows")
        if self.max_in_flight < 1:
            raise ValueError("workflows.max_in_flight must be at least 1")


class WebhookSettings(_Section):
    retry_schedule: list[Duration] | str = msgspec.field(default_factory=lambda: list[Duration](["0s", "30s", "5m", "30m", "2h"]))
    timeout: Duration = "10s"
    disable_after: Duration = "5d"
    previous_secret_ttl: Duration = "24h"
    max_in_flight: int = 64
    max_in_flight_per_endpoint: int = 8
    poll_interval: Duration = "1s"

    def __post_init__(self) -> None:
        self.retry_schedule = _duration_list(self.retry_schedule, "webhooks.retry_schedule")
        if not self.retry_schedule:
            raise ValueError("webhooks.retry_schedule needs at least one attempt")

    def retry_delays_ms(self) -> list[int]:
        """Delay before each attempt (the first one's is usually 0)."""
        return [parse_duration_ms(item) for item in self.retry_schedule]


class SmtpSettings(_Section):
    host: str = ""
    port: int = 587
    starttls: bool = True
    username: str = ""
    password: str = ""
    from_address: str = msgspec.field(default="rotor-lite@localhost", name="from")
    timeout: Duration = "10s"

    def __post_init__(self) -> None:
        _duration_list([self.timeout], "alerts.smtp.timeout")


class AlertSettings(_Section):
    slack_url_prefixes: list[str] | str = msgspec.field(default_factory=lambda: ["https://hooks.slack.com/"])
    dashboard_url: str = ""
    smtp: SmtpSettings = msgspec.field(default_factory=SmtpSettings)

    def __post_init__(self) -> None:
        self.slack_url_prefixes = _split_list(self.slack_url_prefixes)


class BrandToneSettings(_Section):
    provider: Literal["anthropic", "openai"] = "anthropic"
    model: str = "claude-3-5-haiku-latest"
    base_url: str = ""
    api_key: str = ""
    api_key_secret: str = ""
    timeout: Duration = "10s"
    threshold: float = 0.7
    concurrency: int = 4
    breaker_failures: int = 5
    breaker_cooldown: Duration = "30s"
    max_payload_chars: int = 20_000
    poll_interval: Duration = "1s"

    def __post_init__(self) -> None:
        _duration_list([self.timeout, self.breaker_cooldown, self.poll_interval], "guardrails.brand_tone")
        if not 0 <= self.threshold <= 1:
            raise ValueError("guardrails.brand_tone.threshold must be between 0 and 1")
        if self.concurrency < 1 or self.breaker_failures < 1 or self.max_payload_chars < 1:
            raise ValueError("guardrails.brand_tone: concurrency, breaker_failures and max_payload_chars must be >= 1")


class GuardrailSettings(_Section):
    brand_tone: BrandToneSettings = msgspec.field(default_factory=BrandToneSettings)


class MetricsSettings(_Section):
    token: str = ""


class McpSettings(_Section):
    admin_token: str = ""


class DashboardSettings(_Section):
    session_lifetime: Duration = "12h"


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Every setting of the server; `rotor.toml.example` documents each key."""

    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    security: SecuritySettings = msgspec.field(default_factory=SecuritySettings)
    callbacks: CallbackSettings = msgspec.field(default_factory=CallbackSettings)
    dispatch: DispatchSettings = msgspec.field(default_factory=DispatchSettings)
    delivery: DeliverySettings = msgspec.field(default_factory=DeliverySettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    retention: RetentionSettings = msgspec.field(default_factory=RetentionSettings)
    schedules: ScheduleSettings = msgspec.field(default_factory=ScheduleSettings)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    workflows: WorkflowSettings = msgspec.field(default_factory=WorkflowSettings)
    alerts: AlertSettings = msgspec.field(default_factory=AlertSettings)
    guardrails: GuardrailSettings = msgspec.field(default_factory=GuardrailSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    mcp: McpSettings = msgspec.field(default_factory=McpSettings)
    dashboard: DashboardSettings = msgspec.field(default_factory=DashboardSettings)
    plans: PlansSettings = msgspec.field(default_factory=PlansSettings)

    @property
    def data_path(self) -> Path:
        return Path(self.storage.data_dir)

    @property
    def db_path(self) -> Path:
        return self.data_path / "rotor.db"


_DURATION_KEYS = {
    ("server", "drain_timeout"), ("server", "keep_alive_timeout"), ("server", "header_timeout"),
    ("callbacks", "default_timeout"),
    ("dispatch", "concurrency_key_recheck"), ("dispatch", "concurrency_key_ttl"),
    ("dispatch", "lease"), ("dispatch", "poll_interval"),
    ("retention", "sweep_interval"),
    ("schedules", "misfire_grace"), ("schedules", "leader_retry"),
    ("webhooks", "timeout"), ("webhooks", "disable_after"), ("webhooks", "previous_secret_ttl"),
    ("webhooks", "poll_interval"),
    ("dashboard", "session_lifetime"),
}
_NESTED_SECTIONS: dict[tuple[str, str], type[_Section]] = {("alerts", "smtp"): SmtpSettings}
_NESTED_SECTIONS[("guardrails", "brand_tone")] = BrandToneSettings
_NESTED_SECTIONS.update({("plans", field.encode_name): field.type for field in msgspec.structs.fields(PlansSettings)})
_ENV_ALIASES = {"ROTOR_BOOTSTRAP_API_KEY": ("auth", "bootstrap_api_key"), "ROTOR_ADMIN_TOKEN": ("mcp", "admin_token")}


def load_settings(
    config_file: str | Path | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[tuple[str, str], Any] | None = None,
) -> Settings:
    """Settings from the file (or `./rotor.toml` if present), then env, then `overrides`."""
    raw = _read_file(config_file)
    for (section, key), value in _env_overrides(os.environ if env is None else env).items():
        raw.setdefault(section, {})[key] = value
    _apply_nested_env(raw, os.environ if env is None else env)
    for (section, key), value in (overrides or {}).items():
        if value is not None:
            raw.setdefault(section, {})[key] = value
    settings = _convert(raw)
    _check_durations(settings)
    return settings


def _read_file(config_file: str | Path | None) -> dict[str, Any]:
    path = Path(config_file) if config_file else Path("rotor.toml")
    if not path.exists():
        if config_file:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    try:
        data = msgspec.toml.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a table")
    return data


def _env_overrides(env: dict[str, str] | os._Environ[str]) -> dict[tuple[str, str], str]:
    sections = {name: set(struct.__struct_fields__) for name, struct in _section_types().items()}
    found: dict[tuple[str, str], str] = {}
    for name, value in env.items():
        if name in _ENV_ALIASES:
            found[_ENV_ALIASES[name]] = value
            continue
        if not name.startswith("ROTOR_"):
            continue
        rest = name[len("ROTOR_"):].lower()
        for section, keys in sections.items():
            key = rest[len(section) + 1:]
            if rest.startswith(section + "_") and key in keys:
                found[(section, key)] = value
    return found


def _apply_nested_env(raw: dict[str, Any], env: dict[str, str] | os._Environ[str]) -> None:
    """`ROTOR_ALERTS_SMTP_HOST` and the like: environment overrides of keys in sub-tables."""
    for (section, sub), struct in _NESTED_SECTIONS.items():
        prefix = f"ROTOR_{section}_{sub}_".upper().replace("-", "_")  # [plans.self-hosted]: ROTOR_PLANS_SELF_HOSTED_
        keys = {field.encode_name for field in msgspec.structs.fields(struct)}
        for name, value in env.items():
            key = name[len(prefix):].lower()
            if name.startswith(prefix) and key in keys:
                raw.setdefault(section, {}).setdefault(sub, {})[key] = value


def _section_types() -> dict[str, type[_Section]]:
    hints = typing.get_type_hints(Settings)
    return {name: hints[name] for name in Settings.__struct_fields__}


def _convert(raw: dict[str, Any]) -> Settings:
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {_name_key(str(exc))}") from exc


def _name_key(message: str) -> str:
    # msgspec says "... - at `$.server.port`"; users know the key as server.port.
    unknown = re.fullmatch(r"Object contains unknown field `([^`]+)`(?: - at `\$\.?([^`]*)`)?", message)
    if unknown:
        section, key = unknown.group(2), unknown.group(1)
        return f"unknown key `{section}.{key}`" if section else f"unknown section `{key}`"
    located = re.fullmatch(r"(.*) - at `\$\.([^`]*)`", message)
    if located and located.group(1).startswith(f"{located.group(2)}."):
        return located.group(1)  # a section's own check names its key already
    return message.replace("`$.", "`").replace("at `", "at key `")


def _check_durations(settings: Settings) -> None:
    for section, key in _DURATION_KEYS:
        try:
            parse_duration_ms(getattr(getattr(settings, section), key))
        except ValueError as exc:
            raise ConfigError(f"invalid configuration: {section}.{key}: {exc}") from exc
