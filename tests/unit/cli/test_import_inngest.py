"""`rotor import inngest`: a fixture tree of Inngest functions (TS, TSX and JS; v2, v3 and v4 shapes) read
with tree-sitter into the exact JSON lines and warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rotor_lite.cli import main

FIXTURES = Path(__file__).parents[2] / "fixtures"
FUNCTIONS = "inngest/src/inngest/functions"

QUEUE_LINES = [
    '{"type":"queue","config":{"name":"charge-receipts","concurrency":10,"retry_attempts":11,'
    '"notes":"event: stripe/charge.succeeded; event: stripe/charge.refunded"}}',
    '{"type":"queue","config":{"name":"prepare-weekly-digest","concurrency":1,"notes":"cron: TZ=Europe/Paris 0 12 * * 5"}}',
    '{"type":"schedule","config":{"queue":"prepare-weekly-digest","cron":"0 12 * * 5","timezone":"Europe/Paris"}}',
    '{"type":"queue","config":{"name":"nightly-cleanup","retry_attempts":1,"notes":"cron: 0 2 * * *"}}',
    '{"type":"schedule","config":{"queue":"nightly-cleanup","cron":"0 2 * * *","timezone":"UTC"}}',
    '{"type":"queue","config":{"name":"import-contacts","notes":"event: contacts/import.requested"}}',
    '{"type":"queue","config":{"name":"audit-log","notes":"event: audit/entry.created"}}',
    '{"type":"queue","config":{"name":"fulfil-order","retry_attempts":5,"notes":"event: shop/order.paid"}}',
    '{"type":"queue","config":{"name":"hourly-revenue","notes":"cron: TZ=America/New_York 0 * * * *"}}',
    '{"type":"schedule","config":{"queue":"hourly-revenue","cron":"0 * * * *","timezone":"America/New_York"}}',
    '{"type":"queue","config":{"name":"sync-crm","concurrency":3,"retry_attempts":6,'
    '"notes":"cron: */15 * * * *; event: crm/sync.requested"}}',
    '{"type":"schedule","config":{"queue":"sync-crm","cron":"*/15 * * * *","timezone":"UTC"}}',
    '{"type":"queue","config":{"name":"welcome-email","concurrency":5,"retry_attempts":3,"notes":"event: user/created"}}',
    '{"type":"queue","config":{"name":"legacy-cleanup","notes":"cron: 0 4 * * 0"}}',
    '{"type":"schedule","config":{"queue":"legacy-cleanup","cron":"0 4 * * 0","timezone":"UTC"}}',
]

READING_WARNINGS = [
    f'warning: {FUNCTIONS}/billing.tsx:10:34: concurrency keyed on "event.data.customerId" is not imported: '
    "rotor-lite has no per-key limit for a queue or a function; a job's concurrencyKey runs one at a time",
    f"warning: {FUNCTIONS}/billing.tsx:14:44: trigger filter `if` of 'charge-receipts' is not imported: "
    "every such event counts; filter in your code",
    f"warning: {FUNCTIONS}/dynamic.ts:11:11: computed id (`regional-report-${{region}}`): skipped; "
    "import this function by hand",
    f"warning: {FUNCTIONS}/dynamic.ts:19:3: options with no rotor-lite counterpart, not imported: throttle",
    f"warning: {FUNCTIONS}/dynamic.ts:19:5: spread in options (...baseOptions): its fields are not read; "
    "check them by hand",
    f"warning: {FUNCTIONS}/dynamic.ts:25:69: trigger of 'on-signup' is not a literal (signupTrigger): skipped; "
    "import this function by hand",
    f"warning: {FUNCTIONS}/dynamic.ts:29:3: options with no rotor-lite counterpart, not imported: cancelOn",
    f"warning: {FUNCTIONS}/dynamic.ts:36:46: options are not an object literal (sharedOptions): skipped",
    f"warning: {FUNCTIONS}/orders.ts:8:66: trigger of 'fulfil-order' is not a literal (orderPlaced): not imported",
]

SERVE_URL = "http://127.0.0.1:3000/api/rotor"
FUNCTION_LINES = [
    '{"type":"function","config":{"id":"charge-receipts","serve_url":"' + SERVE_URL + '","trigger_type":"event",'
    '"trigger_event":"stripe/charge.succeeded","retries":10,"concurrency":10}}',
    '{"type":"function","config":{"id":"prepare-weekly-digest","serve_url":"' + SERVE_URL + '","trigger_type":"cron",'
    '"cron":"0 12 * * 5","timezone":"Europe/Paris","concurrency":1}}',
    '{"type":"function","config":{"id":"nightly-cleanup","serve_url":"' + SERVE_URL + '","trigger_type":"cron",'
    '"cron":"0 2 * * *","timezone":"UTC","retries":0}}',
    '{"type":"function","config":{"id":"import-contacts","serve_url":"' + SERVE_URL + '","trigger_type":"event",'
    '"trigger_event":"contacts/import.requested"}}',
    '{"type":"function","config":{"id":"audit-log","serve_url":"' + SERVE_URL + '","trigger_type":"event",'
    '"trigger_event":"audit/entry.created"}}',
    '{"type":"function","config":{"id":"fulfil-order","serve_url":"' + SERVE_URL + '","trigger_type":"event",'
    '"trigger_event":"shop/order.paid","retries":4}}',
    '{"type":"function","config":{"id":"hourly-revenue","serve_url":"' + SERVE_URL + '","trigger_type":"cron",'
    '"cron":"0 * * * *","timezone":"America/New_York"}}',
    '{"type":"function","config":{"id":"sync-crm","serve_url":"' + SERVE_URL + '","trigger_type":"cron",'
    '"cron":"*/15 * * * *","timezone":"UTC","retries":5,"concurrency":3}}',
    '{"type":"function","config":{"id":"welcome-email","serve_url":"' + SERVE_URL + '","trigger_type":"event",'
    '"trigger_event":"user/created","retries":2,"concurrency":5}}',
    '{"type":"function","config":{"id":"legacy-cleanup","serve_url":"' + SERVE_URL + '","trigger_type":"cron",'
    '"cron":"0 4 * * 0","timezone":"UTC"}}',
]
ONE_TRIGGER_WARNINGS = [
    f"warning: {FUNCTIONS}/billing.tsx:6:31: a rotor-lite function has one trigger: 'charge-receipts' is registered "
    "with event stripe/charge.succeeded; not imported: event stripe/charge.refunded",
    f"warning: {FUNCTIONS}/sync.js:4:19: a rotor-lite function has one trigger: 'sync-crm' is registered "
    "with cron */15 * * * *; not imported: event crm/sync.requested",
]


def run_import(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, ["import", "inngest", *args], input=stdin)


@pytest.fixture(autouse=True)
def in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)  # the printed paths are the ones walked from the PATH argument


def test_each_function_becomes_a_queue_and_each_cron_a_schedule() -> None:
    result = run_import("inngest")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == QUEUE_LINES
    assert result.stderr.splitlines() == READING_WARNINGS


def test_with_a_serve_url_each_function_becomes_a_workflow_function_registration() -> None:
    result = run_import("inngest", "--serve-url", SERVE_URL)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == FUNCTION_LINES
    assert result.stderr.splitlines() == READING_WARNINGS + ONE_TRIGGER_WARNINGS


def test_node_modules_and_hidden_directories_are_not_read() -> None:
    assert (FIXTURES / "inngest/node_modules/inngest/index.js").exists()
    assert (FIXTURES / "inngest/.turbo/cache.js").exists()

    printed = run_import("inngest").stdout

    assert "never/read" not in printed and "from-" not in printed


def test_base_url_gives_each_queue_its_callback_url_and_timezone_the_unzoned_crons() -> None:
    result = run_import(f"{FUNCTIONS}/digest.ts", "--base-url", "https://app.example.com/api/rotor/",
                        "--timezone", "Europe/London")

    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"type": "queue", "config": {"name": "prepare-weekly-digest",
                                     "callback_url": "https://app.example.com/api/rotor/prepare-weekly-digest",
                                     "concurrency": 1, "notes": "cron: TZ=Europe/Paris 0 12 * * 5"}},
        {"type": "schedule", "config": {"queue": "prepare-weekly-digest", "cron": "0 12 * * 5",
                                        "timezone": "Europe/Paris"}},
        {"type": "queue", "config": {"name": "nightly-cleanup",
                                     "callback_url": "https://app.example.com/api/rotor/nightly-cleanup",
                                     "retry_attempts": 1, "notes": "cron: 0 2 * * *"}},
        {"type": "schedule", "config": {"queue": "nightly-cleanup", "cron": "0 2 * * *", "timezone": "Europe/London"}},
    ]
    assert result.stderr == ""


def test_literals_are_read_as_javascript_reads_them(tmp_path: Path) -> None:
    source = tmp_path / "escapes.ts"
    source.write_text(
        "inngest.createFunction({ id: 'caf\\u00e9-\\x41' }, { event: `orders/\\u{63}reated` }, async () => 1);\n"
        "inngest.createFunction({ id: \"twice\", retries: 0x3, concurrency: 0 }, { event: \"a.b\" }, async () => 1);\n"
        "inngest.createFunction({ id: \"twice\" }, { event: \"c.d\" }, async () => 1);\n"
        "inngest.createFunction({ id: \"bad id/x\", retries: 25 }, { event: \"bad event!\" }, async () => 1);\n"
        "inngest.createFunction({ id: \"renamed/x\", retries: 2.5 }, { cron: \"0 1 * * *\" }, async () => 1);\n"
    )
    result = run_import(str(source))

    assert result.stdout.splitlines() == [
        '{"type":"queue","config":{"name":"caf--A","notes":"event: orders/created"}}',
        '{"type":"queue","config":{"name":"twice","retry_attempts":4,"notes":"event: a.b"}}',
        '{"type":"queue","config":{"name":"renamed-x","notes":"cron: 0 1 * * *"}}',
        '{"type":"schedule","config":{"queue":"renamed-x","cron":"0 1 * * *","timezone":"UTC"}}',
    ]
    assert result.stderr.splitlines() == [
        f"warning: {source}:2:66: concurrency limit 0 is below 1: not imported",
        f"warning: {source}:4:51: retries 25 is outside 0..20: not imported",
        f"warning: {source}:5:52: retries is not an integer literal (2.5 is not an integer): not imported",
        f"warning: {source}:3:1: function id 'twice' is also defined at {source}:2:1: skipped",
        f"warning: {source}:1:1: id 'café-A' is not a valid rotor-lite name: imported as 'caf--A'",
        f"warning: {source}:4:1: event name 'bad event!' of 'bad id/x' is not valid in rotor-lite "
        "(it must match ^[A-Za-z0-9][A-Za-z0-9_./:-]{0,127}$): not imported",
        f"warning: {source}:5:1: id 'renamed/x' is not a valid rotor-lite name: imported as 'renamed-x'",
    ]


def test_syntax_errors_and_empty_trees_are_reported(tmp_path: Path) -> None:
    (tmp_path / "broken.ts").write_text("export const f = inngest.createFunction({ id: 'ok' }, { event: 'a.b' }, fn);\nconst = ;\n")
    (tmp_path / "empty").mkdir()

    broken = run_import(str(tmp_path / "broken.ts"))
    empty = run_import(str(tmp_path / "empty"))

    assert broken.stdout.splitlines() == ['{"type":"queue","config":{"name":"ok","notes":"event: a.b"}}']
    assert broken.stderr.splitlines() == [
        f"warning: {tmp_path / 'broken.ts'}:2:1: syntax errors here: the calls around them may be missed"
    ]
    assert empty.exit_code == 0 and empty.stdout == ""
    assert empty.stderr == f"warning: no createFunction(...) call read under {tmp_path / 'empty'}\n"


def test_serve_url_and_base_url_exclude_each_other() -> None:
    result = run_import("inngest", "--serve-url", SERVE_URL, "--base-url", "https://app.example.com")

    assert result.exit_code == 2 and "give one" in result.output


def test_apply_asks_first_and_a_no_creates_nothing() -> None:
    # port 9 answers nothing: a request would fail with exit 1 and an "Error" line, not an abort
    result = run_import("inngest", "--apply", "--api-url", "http://127.0.0.1:9", "--api-key", "rt_ws_x", stdin="n\n")

    assert result.exit_code == 1
    assert "To create on http://127.0.0.1:9:" in result.stderr
    assert "  queue welcome-email: " in result.stderr and "Create them? [y/N]: n" in result.stderr
    assert "Aborted" in result.stderr and "Error" not in result.output
