"""Benchmark of the guardrails: time per 10 KiB payload, and batch enqueue with guardrails on vs off.

    python bench/guardrails.py [--quick] [--seconds 8] [--rounds 2]

1. In process, on a real database with 1,000,000 DNC emails, 10,000 DNC domains, 1,000 competitor
   domains and PII redaction on: the stages (`dnc` → `competitor` → `pii`) over realistic 10 KiB
   outbound-email payloads, one payload per call (p50, p99), and 1,000 per call (per-payload mean);
   and over the payloads of the batch-enqueue runs below, 1,000 per call.
2. Over HTTP: two `rotor-lite serve` on 127.0.0.1, one with no guardrails, one with that config
   (the DNC lists loaded through `POST /v1/guardrails/dnc`), and wrk batch enqueue (1,000 jobs per
   request, 4 connections) alternated between them, for two payloads: the core benchmark's and an
   outbound email with an address and a phone number (redacted on the guarded server).
Everything it starts is stopped when it ends; all traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

HERE = Path(__file__).resolve().parent
KEY = "rt_ws_bench_key_00000000000000000000000"
WORDS = ["our", "platform", "helps", "revenue", "teams", "ship", "campaigns", "faster", "with", "fewer", "meetings", "and", "clearer", "goals", "happy", "to", "share", "how", "similar", "companies", "cut", "their", "review", "time", "in", "half", "last", "quarter", "without", "extra", "headcount", "let", "me", "know", "if", "a", "short", "call", "next", "week", "works", "for", "you"]


def outbound_payload(rng: random.Random, i: int, size: int = 10 * 1024) -> dict[str, Any]:
    """An AI-written outbound email of about `size` bytes: addresses, a phone, urls, ids, dates, prose."""
    sentences = []
    while sum(len(s) + 1 for s in sentences) < size - 600:
        sentences.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 18))).capitalize() + ".")
    sentences.insert(len(sentences) // 2, f"Reach me at 415-555-{rng.randint(1000, 9999)} or rep{i}@ourco.io.")
    sentences.insert(len(sentences) // 3, f"See https://docs.ourco.io/guide/{i} and order ORD-2024-{i:06d} from 2024-05-{i % 28 + 1:02d}.")
    return {"to": f"prospect{i}@company{i % 5000}.com", "subject": "Quick question about your stack",
            "body": " ".join(sentences), "meta": {"contactId": f"cid_{i}", "campaign": "q2", "version": "v2.3.1"}}


def dnc_emails(count: int) -> list[str]:
    return [f"unsub{i}@list{i % 50_000}.example.com" for i in range(count)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# 1. In process ------------------------------------------------------------------------------------


def bench_stages(emails: int, domains: int, competitors: int, samples: int) -> list[str]:
    from rotor_lite.services.guardrail_stages import Policy, screen_payloads
    from rotor_lite.store import guardrails as store
    from rotor_lite.store.db import connect, migrate
    from rotor_lite.store.guardrails import ConfigRow, PolicyReader

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rotor.db"
        conn = connect(path, "NORMAL")
        migrate(conn)
        started = time.perf_counter()
        conn.execute("BEGIN")
        store.append_dnc(conn, "emails", "ws", dnc_emails(emails))
        store.append_dnc(conn, "domains", "ws", (f"blocked{i}.example.net" for i in range(domains)))
        conn.execute("COMMIT")
        loaded = time.perf_counter() - started
        conn.close()
        reader = PolicyReader(path)
        config = ConfigRow(workspace_id="ws", id="grc_bench", competitor_domains=tuple(f"rival{i}crm.com" for i in range(competitors)),
                           pii_enabled=True, pii_mode="redact")
        policy = Policy(config, reader.has_dnc("ws"))
        probe = lambda kind, values: reader.dnc_hits(kind, "ws", values)
        rng = random.Random(7)
        payloads = [msgspec.json.encode(outbound_payload(rng, i)) for i in range(samples)]
        screen_payloads(policy, payloads[:50], probe)  # warm caches
        single = []
        for payload in payloads:
            t0 = time.perf_counter()
            [verdict] = screen_payloads(policy, [payload], probe)
            single.append((time.perf_counter() - t0) * 1000)
        assert verdict.blocked_by is None and b"[REDACTED-PHONE]" in verdict.payload
        batch_ms = per_payload_us(lambda: screen_payloads(policy, payloads[:1000], probe), min(1000, len(payloads))) / 1000
        # encoded as the server stores a job's payload
        small = {name: [msgspec.json.encode(p) for p in jobs] for name, jobs in http_payloads().items()}
        small_us = {name: per_payload_us(lambda jobs=jobs: screen_payloads(policy, jobs, probe), len(jobs))
                    for name, jobs in small.items()}
        reader.close()
    size = statistics.mean(len(p) for p in payloads) / 1024
    return [
        (f"guardrail time per {size:.1f} KiB payload ({emails:,} DNC emails, {domains:,} domains, {competitors:,} "
         f"competitors, PII redact): p50 {pct(single, .5):.3f} ms, p99 {pct(single, .99):.3f} ms one at a time; "
         f"{batch_ms:.3f} ms each in batches of 1,000 (DNC tables loaded in {loaded:.1f} s)"),
        "guardrail time per payload of the batch-enqueue runs, in batches of 1,000 (best of 20, CPU time): "
        + ", ".join(f"{name} {us:.2f} µs" for name, us in small_us.items()),
    ]


def per_payload_us(run: Callable[[], object], count: int, rounds: int = 20) -> float:
    """CPU microseconds per payload of the best of `rounds` runs (CPU time: other load does not count)."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        run()
        best = min(best, time.process_time() - t0)
    return best * 1e6 / count


def http_payloads() -> dict[str, list[dict[str, Any]]]:
    """The payloads of the batch-enqueue runs, 1,000 of each kind."""
    return {
        "core payload": [{"contactId": f"cid_{i}", "campaignId": "camp_456"} for i in range(1000)],
        "outbound email": [
            {"to": f"prospect{i}@company{i}.com", "subject": "Quick question",
             "body": f"Hi, happy to share how teams cut review time. Call 415-555-{1000 + i} or reply. {i}"}
            for i in range(1000)
        ],
    }


# 2. Over HTTP -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "ROTOR_AUTH_BOOTSTRAP_API_KEY": KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotor_lite", "serve", "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=0.5)
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{url} did not come up")


def call(url: str, method: str, path: str, body: Any = None, timeout: float = 300) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method, headers={
        "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text else None


def load_guardrails(url: str, emails: int, domains: int, competitors: int) -> float:
    started = time.perf_counter()
    all_emails = dnc_emails(emails)
    for i in range(0, emails, 100_000):
        call(url, "POST", "/v1/guardrails/dnc?return=minimal", {"emails": all_emails[i:i + 100_000]})
    call(url, "POST", "/v1/guardrails/dnc?return=minimal", {"domains": [f"blocked{i}.example.net" for i in range(domains)]})
    call(url, "PATCH", "/v1/guardrails", {"competitorDomains": [f"rival{i}crm.com" for i in range(competitors)],
                                          "piiRedactionEnabled": True, "piiMode": "redact"})
    return time.perf_counter() - started


def write_lua(tmp: Path, name: str, payloads: list[dict[str, Any]]) -> Path:
    body = json.dumps({"jobs": [{"payload": p} for p in payloads]}, separators=(",", ":"))
    script = tmp / f"{name}.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {KEY}"\nwrk.path = os.getenv("ROTOR_PATH")\n'
        f"wrk.body = [==[{body}]==]\n"
    )
    return script


def wrk_jobs_per_second(url: str, script: Path, queue: str, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c4", f"-d{seconds}s", "-s", str(script), url],
        env={**os.environ, "ROTOR_PATH": f"/v1/queues/{queue}/jobs/batch"}, capture_output=True, text=True, check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)) * 1000  # type: ignore[union-attr]


def bench_batch(emails: int, domains: int, competitors: int, seconds: int, rounds: int) -> list[str]:
    if shutil.which("wrk") is None:
        return ["batch enqueue: skipped (wrk not installed: apt-get install wrk)"]
    lines = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        off, off_url = start_server(tmp / "off")
        on, on_url = start_server(tmp / "on")
        try:
            loaded = load_guardrails(on_url, emails, domains, competitors)
            lines.append(f"DNC import through the API ({emails:,} emails in 100,000-entry requests, {domains:,} domains): {loaded:.1f} s")
            scripts = {name: write_lua(tmp, name.split()[0], jobs) for name, jobs in http_payloads().items()}
            for url in (off_url, on_url):
                for name in scripts:
                    for r in range(rounds):
                        call(url, "POST", "/v1/queues", {"name": f"{name.replace(' ', '-')}-{r}"})
            for name, script in scripts.items():
                rates: dict[str, list[float]] = {"off": [], "on": []}
                for r in range(rounds):
                    queue = f"{name.replace(' ', '-')}-{r}"
                    rates["off"].append(wrk_jobs_per_second(off_url, script, queue, seconds))
                    rates["on"].append(wrk_jobs_per_second(on_url, script, queue, seconds))
                # best of the alternated rounds: other load on a shared machine only ever slows a round down
                off_rate, on_rate = max(rates["off"]), max(rates["on"])
                lines.append(f"batch enqueue, {name}: {off_rate:,.0f} jobs/s guardrails off, {on_rate:,.0f} jobs/s on "
                             f"({(on_rate / off_rate - 1) * 100:+.1f} %, best of {rounds}; rounds off "
                             f"{[round(x) for x in rates['off']]}, on {[round(x) for x in rates['on']]})")
            sample = call(on_url, "GET", "/v1/queues/outbound-email-0/jobs?limit=1")["data"][0]["payload"]
            assert "[REDACTED-PHONE]" in sample["body"], sample
        finally:
            for proc in (off, on):
                proc.terminate()
                proc.wait(30)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 DNC emails and short runs, for a smoke test")
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=4, help="wrk runs per server and payload (alternated)")
    args = parser.parse_args()
    emails = 100_000 if args.quick else 1_000_000
    print(f"rotor-lite guardrails benchmark — {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    for line in bench_stages(emails, 10_000, 1_000, 500 if args.quick else 2000):
        print(line)
    for line in bench_batch(emails, 10_000, 1_000, 3 if args.quick else args.seconds, 1 if args.quick else args.rounds):
        print(line)


if __name__ == "__main__":
    main()
