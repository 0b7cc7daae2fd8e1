"""Callback signature helpers agree with the reference docs' verifier; Idempotency-Key parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import httpx
import pytest

from rotor_lite.sdk import parse_idempotency_key, sign_rotor_payload, verify_rotor_signature


# Copied verbatim from the reference docs (rotor-docs.md, "Signature verification", Python).
# fmt: off
def verify_rotor_signature_reference(headers, body, secret):  # type: ignore[no-untyped-def]
    jid = headers.get("x-rotor-job-id", "")
    ts = headers.get("x-rotor-timestamp", "")
    sig = headers.get("x-rotor-signature", "")
    if not (jid and ts and sig): return False  # noqa: E701
    if abs(time.time() - int(ts)) > 300: return False  # noqa: E701
    digest = hmac.new(secret.encode(), f"{jid}.{ts}.{body}".encode(), hashlib.sha256).digest()
    expected = f"v1,{base64.b64encode(digest).decode()}"
    return hmac.compare_digest(expected, sig)
# fmt: on


SECRET = "cbsec_3q2+7w=="
JOB_ID = "job_0123456789abcdef0123456789abcdef"
BODY = '{"contactId":"cid_123","name":"Zoë"}'


def headers_for(job_id: str, ts: str, sig: str) -> dict[str, str]:
    return {"x-rotor-job-id": job_id, "x-rotor-timestamp": ts, "x-rotor-signature": sig}


def both(body: str, sig: str, secret: str, *, job_id: str, ts: str) -> tuple[bool, bool]:
    ours = verify_rotor_signature(body, sig, secret, id=job_id, timestamp=ts)
    reference = verify_rotor_signature_reference(headers_for(job_id, ts, sig), body, secret)
    return ours, reference


def test_signature_matches_the_reference_format() -> None:
    ts = "1716200000"
    expected = (
        "v1,"
        + base64.b64encode(
            hmac.new(SECRET.encode(), f"{JOB_ID}.{ts}.{BODY}".encode(), hashlib.sha256).digest()
        ).decode()
    )
    assert sign_rotor_payload(BODY, SECRET, id=JOB_ID, timestamp=ts) == expected
    assert sign_rotor_payload(BODY.encode(), SECRET, id=JOB_ID, timestamp=int(ts)) == expected


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("valid", True),
        ("tampered body", False),
        ("wrong secret", False),
        ("too old", False),
        ("too far in the future", False),
        ("just inside the window", True),
        ("missing id", False),
        ("missing timestamp", False),
        ("missing signature", False),
        ("other job id", False),
    ],
)
def test_verify_agrees_with_the_reference(case: str, expected: bool) -> None:
    now = int(time.time())
    ts = str(
        {"too old": now - 301 - 5, "too far in the future": now + 400, "just inside the window": now - 200}.get(
            case, now
        )
    )
    sig = sign_rotor_payload(BODY, SECRET, id=JOB_ID, timestamp=ts)
    body, secret, job_id = BODY, SECRET, JOB_ID
    if case == "tampered body":
        body = BODY.replace("123", "124")
    elif case == "wrong secret":
        secret = "cbsec_other"
    elif case == "missing id":
        job_id = ""
    elif case == "missing timestamp":
        ts = ""
    elif case == "missing signature":
        sig = ""
    elif case == "other job id":
        job_id = "job_" + "f" * 32
    if case == "missing timestamp":
        assert verify_rotor_signature(body, sig, secret, id=job_id, timestamp=ts) is False
        return
    assert both(body, sig, secret, job_id=job_id, ts=ts) == (expected, expected)


def test_bytes_body_is_verified_as_utf8_text() -> None:
    ts = str(int(time.time()))
    sig = sign_rotor_payload(BODY, SECRET, id=JOB_ID, timestamp=ts)
    assert verify_rotor_signature(BODY.encode("utf-8"), sig, SECRET, id=JOB_ID, timestamp=ts)
    assert verify_rotor_signature_reference(headers_for(JOB_ID, ts, sig), BODY, SECRET)


def test_explicit_now_and_max_age() -> None:
    sig = sign_rotor_payload(BODY, SECRET, id=JOB_ID, timestamp=1000)
    assert verify_rotor_signature(BODY, sig, SECRET, id=JOB_ID, timestamp=1000, now=1300)
    assert not verify_rotor_signature(BODY, sig, SECRET, id=JOB_ID, timestamp=1000, now=1301)
    assert verify_rotor_signature(BODY, sig, SECRET, id=JOB_ID, timestamp="1000", now=1900, max_age_seconds=900)
    assert verify_rotor_signature(BODY, sig, SECRET, id=JOB_ID, timestamp=1000, now=10**10, max_age_seconds=None)


@pytest.mark.parametrize("timestamp", ["abc", "12.5", "1e9", "", " ", "٣"])
def test_non_integer_timestamps_are_refused(timestamp: str) -> None:
    sig = sign_rotor_payload(BODY, SECRET, id=JOB_ID, timestamp=timestamp)
    assert verify_rotor_signature(BODY, sig, SECRET, id=JOB_ID, timestamp=timestamp, max_age_seconds=None) is False


def test_empty_secret_is_refused() -> None:
    sig = sign_rotor_payload(BODY, "", id=JOB_ID, timestamp=1000)
    assert verify_rotor_signature(BODY, sig, "", id=JOB_ID, timestamp=1000, now=1000) is False


def test_any_of_several_signatures_may_match() -> None:
    ts = 1000
    good = sign_rotor_payload(BODY, SECRET, id=JOB_ID, timestamp=ts)
    stale = sign_rotor_payload(BODY, "cbsec_previous", id=JOB_ID, timestamp=ts)
    assert verify_rotor_signature(BODY, f"{stale} {good}", SECRET, id=JOB_ID, timestamp=ts, now=ts)
    assert verify_rotor_signature(BODY, f"v0,abc  {good}", SECRET, id=JOB_ID, timestamp=ts, now=ts)
    assert not verify_rotor_signature(BODY, f"{stale} v1,AAAA", SECRET, id=JOB_ID, timestamp=ts, now=ts)
    assert not verify_rotor_signature(BODY, good.removeprefix("v1,"), SECRET, id=JOB_ID, timestamp=ts, now=ts)


def test_a_signature_for_other_bytes_does_not_verify() -> None:
    sig = sign_rotor_payload(b'{"a":1}', SECRET, id=JOB_ID, timestamp=1000)
    assert not verify_rotor_signature(b'{"a": 1}', sig, SECRET, id=JOB_ID, timestamp=1000, now=1000)


class OnlyGet:
    """A header container with nothing but a case-sensitive .get, like some frameworks' objects."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Idempotency-Key": "abc"}, "abc"),
        ({"idempotency-key": "  abc  "}, "abc"),
        ({"IDEMPOTENCY-KEY": "k:1"}, "k:1"),
        ({"Content-Type": "application/json"}, None),
        ({"Idempotency-Key": "   "}, None),
        ({"Idempotency-Key": ""}, None),
        ({}, None),
        (httpx.Headers({"IdEmPoTeNcY-KeY": "from-httpx"}), "from-httpx"),
        (OnlyGet({"Idempotency-Key": "only-get"}), "only-get"),
        (OnlyGet({"idempotency-key": "only-get-lower"}), "only-get-lower"),
        (OnlyGet({}), None),
        ({"Idempotency-Key": "k" * 256}, "k" * 256),
    ],
)
def test_parse_idempotency_key(headers: Any, expected: str | None) -> None:
    assert parse_idempotency_key(headers) == expected


def test_idempotency_key_longer_than_256_is_rejected() -> None:
    with pytest.raises(ValueError, match="256"):
        parse_idempotency_key({"Idempotency-Key": "k" * 257})
