"""Configuration: file, then ROTOR_* environment, then flags; bad values name their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotor_lite.config import load_settings
from rotor_lite.errors import ConfigError


def test_defaults() -> None:
    settings = load_settings(env={})
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.storage.data_dir == "./data" and settings.storage.synchronous == "FULL"
    assert settings.dispatch.ms("concurrency_key_recheck") == 10_000
    assert settings.dispatch.ms("concurrency_key_ttl") == 300_000
    assert settings.limits.max_payload_bytes == 512 * 1024


def test_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "rotor.toml"
    config.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[dispatch]\nlease = "45s"\n')
    assert load_settings(config, env={}).server.port == 9000
    from_env = load_settings(config, env={"ROTOR_SERVER_PORT": "9100", "ROTOR_DISPATCH_LEASE": "1m"})
    assert from_env.server.port == 9100 and from_env.dispatch.ms("lease") == 60_000
    assert from_env.server.host == "0.0.0.0"
    flagged = load_settings(config, env={"ROTOR_SERVER_PORT": "9100"}, overrides={("server", "port"): 9200})
    assert flagged.server.port == 9200


def test_env_booleans_and_aliases() -> None:
    settings = load_settings(env={"ROTOR_CALLBACKS_ALLOW_PRIVATE_NETWORKS": "true", "ROTOR_BOOTSTRAP_API_KEY": "rt_ws_x"})
    assert settings.callbacks.allow_private_networks is True
    assert settings.auth.bootstrap_api_key == "rt_ws_x"


def test_the_example_file_is_valid_and_holds_the_defaults() -> None:
    example = Path(__file__).parents[3] / "rotor.toml.example"
    assert load_settings(example, env={}) == load_settings(env={})


@pytest.mark.parametrize(
    ("text", "key"),
    [('[server]\nport = "abc"\n', "server.port"), ("[server]\nbogus = 1\n", "bogus"),
     ('[dispatch]\nlease = "soon"\n', "dispatch.lease"), ('[storage]\nsynchronous = "SOMETIMES"\n', "storage.synchronous"),
     ("[server\n", "TOML")],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    config = tmp_path / "rotor.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config, env={})
    assert key in info.value.message


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "nope.toml", env={})


def test_forwarded_allow_ips_default_none_and_take_addresses_and_networks(tmp_path: Path) -> None:
    assert load_settings(env={}).server.forwarded_allow_ips == []
    from_env = load_settings(env={"ROTOR_SERVER_FORWARDED_ALLOW_IPS": "127.0.0.1, 10.1.2.3/8,::1"})
    assert from_env.server.forwarded_allow_ips == ["127.0.0.1", "10.0.0.0/8", "::1"]
    config = tmp_path / "rotor.toml"
    config.write_text('[server]\nforwarded_allow_ips = ["192.168.0.0/16"]\n')
    assert load_settings(config, env={}).server.forwarded_allow_ips == ["192.168.0.0/16"]
    with pytest.raises(ConfigError, match="server.forwarded_allow_ips: '\\*'"):
        load_settings(env={"ROTOR_SERVER_FORWARDED_ALLOW_IPS": "*"})


def test_metrics_token_from_env() -> None:
    assert load_settings(env={}).metrics.token == ""
    assert load_settings(env={"ROTOR_METRICS_TOKEN": "scrape-me"}).metrics.token == "scrape-me"


def test_plans_default_to_the_reference_figures_and_each_figure_can_be_overridden(tmp_path: Path) -> None:
    from rotor_lite.services.plans import plan_limits

    defaults = load_settings(env={})
    figures = {plan: plan_limits(defaults, plan) for plan in ("free", "pro", "team", "enterprise", "self-hosted")}
    assert [(f.requests_per_minute, f.jobs_per_month, f.retention_days) for f in figures.values()] == [
        (60, 10_000, 7), (300, 100_000, 30), (1_000, 1_000_000, 90), (0, 0, 365), (0, 0, 7),
    ]
    config = tmp_path / "rotor.toml"
    config.write_text("[limits]\nmonthly_job_quota = 50\nrate_limit_per_minute = 5\n"
                      "[plans.pro]\njobs_per_month = 7\n[plans.self-hosted]\nretention_days = 30\n")
    settings = load_settings(config, env={"ROTOR_PLANS_FREE_RETENTION_DAYS": "2"})
    pro, free, own = (plan_limits(settings, plan) for plan in ("pro", "free", "self-hosted"))
    assert (pro.requests_per_minute, pro.jobs_per_month, pro.retention_days) == (300, 7, 30)  # the rest: defaults
    assert free.retention_days == 2 and free.jobs_per_month == 10_000
    assert (own.requests_per_minute, own.jobs_per_month, own.retention_days) == (5, 50, 30)  # [limits] for self-hosted
    env = load_settings(env={"ROTOR_PLANS_SELF_HOSTED_RETENTION_DAYS": "9", "ROTOR_PLANS_TEAM_REQUESTS_PER_MINUTE": "5"})
    assert plan_limits(env, "self-hosted").retention_days == 9 and plan_limits(env, "team").requests_per_minute == 5


@pytest.mark.parametrize("text", ["[plans.free]\nretention_days = 0\n", "[plans.pro]\njobs_per_month = -1\n",
                                  "[plans.gold]\njobs_per_month = 1\n", "[plans.self-hosted]\njobs_per_month = 1\n"])
def test_bad_plan_figures_are_refused(tmp_path: Path, text: str) -> None:
    config = tmp_path / "rotor.toml"
    config.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(config, env={})
