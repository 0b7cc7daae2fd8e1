"""The vault's pure rules, its dispatch-time cache, and master-key rotation."""

from __future__ import annotations

import base64
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from rotor_lite.cli import main
from rotor_lite.crypto import Vault
from rotor_lite.errors import Conflict, SecretNotFound, ValidationError
from rotor_lite.schemas import AlertsUpdate, QueueCreate, WebhookCreate
from rotor_lite.services import alerts, queues, secrets, webhooks
from rotor_lite.services.secrets import UnknownSecret
from tests.notify_helpers import notify_env


@pytest.mark.parametrize(("value", "hint"), [("sk_live_abc123xyz", "sk_li…"), ("re_abcdefgh", "re_…"), ("abc", "a…"),
                                             ("ab", "…"), ("x" * 100, "xxxxx…")])
def test_hint_shows_at_most_five_characters_and_a_third(value: str, hint: str) -> None:
    assert secrets.hint(value) == hint


def test_templates_with_or_without_spaces() -> None:
    text = "a=${{ secrets.ONE }}&b=${{secrets.TWO}}&c=${{  secrets.ONE}}"
    assert secrets.template_names(text) == {"ONE", "TWO"}
    assert secrets.substitute(text, {"ONE": "1", "TWO": "2"}) == "a=1&b=2&c=1"
    with pytest.raises(UnknownSecret, match="unknown secret TWO"):
        secrets.substitute(text, {"ONE": "1"})
    payload = {"k": ["${{ secrets.ONE }}", {"deep": "x ${{ secrets.TWO }}"}], "${{ secrets.KEY }}": 3, "n": None}
    assert secrets.payload_names(payload) == {"ONE", "TWO"}
    assert secrets.substitute_payload(payload, {"ONE": 'q"uote', "TWO": "2"}) == {
        "k": ['q"uote', {"deep": "x 2"}], "${{ secrets.KEY }}": 3, "n": None}
    assert secrets.template_names("no templates here") == set()


async def test_values_are_cached_and_rotation_or_deletion_invalidates(tmp_path: Path) -> None:
    async with notify_env(tmp_path) as env:
        core, principal = env.core, env.principal
        await secrets.create_secret(core, principal, "TOKEN", "first-value")
        with pytest.raises(Conflict):
            await secrets.create_secret(core, principal, "TOKEN", "again")
        with pytest.raises(ValidationError):
            await secrets.create_secret(core, principal, "token", "v")
        source = core.secret_values
        ws = principal.workspace_id
        assert await source.resolve(ws, {"TOKEN", "NOPE"}, {}) == {"TOKEN": "first-value"}
        await secrets.rotate_secret(core, principal, "TOKEN", "second-value")
        assert await source.resolve(ws, {"TOKEN"}, {}) == {"TOKEN": "second-value"}
        await secrets.delete_secret(core, principal, "TOKEN")
        assert await source.resolve(ws, {"TOKEN"}, {}) == {}
        with pytest.raises(SecretNotFound):
            await secrets.rotate_secret(core, principal, "TOKEN", "x")
        await source.resolve(ws, {"TOKEN"}, {})
        rows = await core.db.fetchall("SELECT event_type FROM audit_event WHERE resource_type = 'secret'")
    assert [r[0] for r in rows].count("secret.accessed") == 1  # at most once a minute per secret


async def test_rotate_master_key_reencrypts_everything(tmp_path: Path) -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    (tmp_path / "master.key").write_text(base64.b64encode(old_key).decode())
    async with notify_env(tmp_path, key=old_key, alerts__slack_url_prefixes=["https://hooks.slack.com/"]) as env:
        core, principal = env.core, env.principal
        await core.db.write(lambda conn: conn.execute(
            "INSERT INTO meta (key, value) VALUES ('master_key_check', ?)", (core.vault.encrypt(b"rotor-lite master key check"),)))
        await secrets.create_secret(core, principal, "API_TOKEN", "token-value")
        _, callback_secret = await queues.create_queue(core, principal, QueueCreate(name="q", callback_url="https://example.com/x"))
        hook, hook_secret = await webhooks.create_webhook(core, principal, WebhookCreate(url="https://example.com/h", event_types=["job.failed"]))
        await webhooks.rotate_secret(core, principal, hook.id)
        await alerts.put_alerts(core, principal, AlertsUpdate(slack_webhook_url="https://hooks.slack.com/services/a"))
    wrong = CliRunner().invoke(main, ["admin", "rotate-master-key", "--new-key", "c2hvcnQ=", "--data-dir", str(tmp_path)])
    assert wrong.exit_code != 0 and "32 bytes" in wrong.output
    result = CliRunner().invoke(main, ["admin", "rotate-master-key", "--new-key", base64.b64encode(new_key).decode(),
                                       "--data-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"secrets": 1' in result.output and '"webhook_secrets": 1' in result.output
    assert base64.b64decode((tmp_path / "master.key").read_text()) == new_key
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600
    conn = sqlite3.connect(tmp_path / "rotor.db")
    vault = Vault(new_key)
    try:
        [(blob,)] = conn.execute("SELECT value FROM secret").fetchall()
        assert vault.decrypt_text(blob, secrets.context(principal.workspace_id, "API_TOKEN")) == "token-value"
        [(queue_blob,)] = conn.execute("SELECT callback_secret FROM queue").fetchall()
        assert vault.decrypt_text(queue_blob, b"callback_secret") == callback_secret
        [(check,)] = conn.execute("SELECT value FROM meta WHERE key = 'master_key_check'").fetchall()
        assert vault.matches(check) and not Vault(old_key).matches(check)
        assert conn.execute("SELECT count(*) FROM audit_event WHERE event_type = 'master_key.rotated'").fetchone() == (1,)
    finally:
        conn.close()
    async with notify_env(tmp_path, key=new_key) as env:
        hook_row = await webhooks.get_webhook(env.core, env.principal, hook.id)
        assert hook_secret in webhooks.signing_secrets(env.core, hook_row, env.clock.now)
        config = await alerts.get_alerts(env.core, env.principal)
        assert config is not None and alerts.slack_url(env.core, config) == "https://hooks.slack.com/services/a"


def test_rotate_master_key_refuses_a_running_server(tmp_path: Path) -> None:
    import fcntl

    with open(tmp_path / "server.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = CliRunner().invoke(main, ["admin", "rotate-master-key", "--new-key", base64.b64encode(os.urandom(32)).decode(),
                                           "--data-dir", str(tmp_path)])
    assert result.exit_code != 0 and "stop it first" in result.output
