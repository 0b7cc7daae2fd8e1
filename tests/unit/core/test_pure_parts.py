"""Unit tests of the pure parts: backoff, signing, SSRF address classes, ids, durations, request decoding."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import msgspec
import pytest

from rotor_lite.durations import parse_duration_ms
from rotor_lite.backoff import backoff_ms, parse_retry_after
from rotor_lite.engine.signing import sign_callback
from rotor_lite.errors import ValidationError
from rotor_lite.ids import is_valid_id, new_api_key, new_id, new_ids
from rotor_lite.models import BackoffType
from rotor_lite.netguard import check_callback_url, is_public_address
from rotor_lite.schemas import MAX_PAYLOAD_DEPTH, BatchCreate, JobCreate, QueueCreate, decode_request, nests_deeper_than


@pytest.mark.parametrize(
    ("kind", "attempt", "expected"),
    [(BackoffType.EXPONENTIAL, 1, 2000), (BackoffType.EXPONENTIAL, 2, 4000), (BackoffType.EXPONENTIAL, 4, 16000),
     (BackoffType.FIXED, 1, 2000), (BackoffType.FIXED, 5, 2000)],
)
def test_backoff_without_jitter(kind: BackoffType, attempt: int, expected: int) -> None:
    assert backoff_ms(kind, 2000, attempt, rand=lambda: 0.0) == expected


def test_backoff_jitter_adds_at_most_ten_percent_and_never_less() -> None:
    assert backoff_ms(BackoffType.FIXED, 1000, 1, rand=lambda: 0.999) == 1099
    values = {backoff_ms(BackoffType.EXPONENTIAL, 1000, 3) for _ in range(200)}
    assert min(values) >= 4000 and max(values) <= 4400


def test_backoff_is_capped_for_huge_attempt_numbers() -> None:
    assert backoff_ms(BackoffType.EXPONENTIAL, 2000, 500, rand=lambda: 0.0) == 7 * 86_400_000


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3", 0) == 3000
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 4000) == 6000
    assert parse_retry_after("garbage", 0) is None
    assert parse_retry_after(None, 0) is None
    assert parse_retry_after("999999", 0) == 86_400_000


def test_signature_matches_the_documented_construction() -> None:
    body = b'{"contactId":"c1"}'
    expected = base64.b64encode(hmac.new(b"s3cret", b"job_1.1700000000." + body, hashlib.sha256).digest()).decode()
    assert sign_callback("s3cret", "job_1", 1700000000, body) == f"v1,{expected}"


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1", "fe80::1", "fc00::1",
     "0.0.0.0", "100.64.0.1", "::ffff:127.0.0.1", "224.0.0.1", "not-an-ip", "100.100.100.200"],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address",
    ["2002:7f00:1::", "2002:a00:1::1", "2002:a9fe:a9fe::", "2002:c0a8:101::",  # 6to4 around a private IPv4
     "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::1",  # Teredo
     "64:ff9b::7f00:1", "64:ff9b::808:808", "64:ff9b:1::a00:1",  # NAT64, well-known and local-use prefixes
     "::7f00:1", "::808:808",  # IPv4-compatible
     "::ffff:0:7f00:1", "::ffff:0:808:808",  # IPv4-translated
     "::ffff:a9fe:a9fe", "::ffff:0.0.0.0", "fec0::1"],  # IPv4-mapped metadata and any; site-local
)
def test_ipv6_forms_that_lead_to_a_private_or_unknown_ipv4_are_not_public(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"])
def test_public_addresses(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize(
    "url", ["http://example.com/cb", "https://127.0.0.1/cb", "https://10.0.0.1/x", "https://localhost/cb",
            "ftp://example.com", "https://user:pw@example.com/", "not a url", "https://[::1]/cb",
            "https://127.1/cb", "https://2130706433/", "https://0x7f.1/",
            # hosts the HTTP client normalises (IDNA/UTS-46) into a private literal or a local name
            "https://127。0。0。1:28443/a", "https://１２７.０.０.１/", "https://127.0.0．1/", "https://０.０.０.０/",
            "https://169。254。169。254/", "https://[::ffff:a9fe:a9fe]/", "https://ｌｏｃａｌｈｏｓｔ/",
            "https://localhost./", "https://127.0.0.1。/", "https://0x7f。1/",
            # hosts the HTTP client cannot normalise
            "https://127.0.0.1\u200b/", "https://evil.example\\@127.0.0.1/", "https://example.com:99999/"],
)
def test_callback_urls_refused_without_private_networks(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_callback_url(url, allow_private=False)
    assert info.value.details["field"] == "callback_url"


def test_callback_urls_allowed() -> None:
    assert check_callback_url("https://example.com/cb", allow_private=False)
    assert check_callback_url("http://127.0.0.1:3000/cb", allow_private=True)


def test_ids_are_prefixed_time_ordered_hex() -> None:
    first = new_id("job", 1_700_000_000_000)
    later = new_id("job", 1_700_000_000_001)
    assert is_valid_id(first, "job") and re.fullmatch(r"job_[0-9a-f]{32}", first)
    assert first[4:16] == f"{1_700_000_000_000:012x}" and first < later
    batch = new_ids("job", 5, 100)
    assert len(set(batch)) == 100 and all(is_valid_id(i, "job") for i in batch)
    assert not is_valid_id("job_XYZ", "job") and not is_valid_id(first, "sched")


def test_api_keys_carry_their_kind() -> None:
    assert new_api_key().startswith("rt_ws_") and new_api_key("q").startswith("rt_q_")
    assert new_api_key() != new_api_key()


@pytest.mark.parametrize(
    ("value", "ms"),
    [(5, 5000), ("5", 5000), ("500ms", 500), ("30s", 30000), ("5m", 300000), ("2h", 7200000), ("7d", 604800000),
     ("1.5s", 1500)],
)
def test_durations(value: object, ms: int) -> None:
    assert parse_duration_ms(value) == ms


@pytest.mark.parametrize("value", ["", "5x", "-1s", -1, True, None, "s"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration_ms(value)


def test_requests_accept_snake_and_camel_case() -> None:
    snake = decode_request(b'{"name":"q","retry_attempts":4,"callback_url":"https://x.io"}', QueueCreate)
    camel = decode_request(b'{"name":"q","retryAttempts":4,"callbackUrl":"https://x.io"}', QueueCreate)
    assert snake == camel
    job = decode_request(b'{"jobId":"a","concurrencyKey":"k","payload":{"keepMe":1}}', JobCreate)
    assert (job.job_id, job.concurrency_key, job.payload) == ("a", "k", {"keepMe": 1})
    batch = decode_request(b'{"jobs":[{"jobId":"a"}],"idempotencyKeys":["a"]}', BatchCreate, ("jobs",))
    assert batch.jobs[0].job_id == "a" and batch.idempotency_keys == ["a"]


@pytest.mark.parametrize(
    ("body", "field"),
    [(b'{"name":"q","bogus":1}', "bogus"), (b'{"name":1}', "name"), (b"{}", "name"), (b"[1]", "body"),
     (b"{not json", "body"), (b'{"name":"q","retry_attempts":1,"retryAttempts":2}', "retry_attempts")],
)
def test_bad_requests_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        decode_request(body, QueueCreate)
    assert info.value.details["field"] == field


def nesting(depth: int, leaf: str = '"x"') -> bytes:
    return ("[" * depth + leaf + "]" * depth).encode()


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b'{"a": [1, {"b": [2]}], "c": {}}', 4),
        (nesting(70, r'"]]]]\"[[[[\\"'), 70),  # brackets, escaped quotes and backslashes inside a string
        (b"[" + b'"' + b"[" * 300 + b'"' + b"]", 1),  # a string full of brackets is not nesting
        (b"[" + b'"' + b"]" * 300 + b'", ' + nesting(80) + b"]", 81),  # nor are closing ones hiding depth
        (b'{"k": "\\\\"}', 1),  # an escaped backslash does not escape the quote after it
        (b"[" + b", ".join([b'{"k": []}'] * 500) + b"]", 3),
    ],
)
def test_nesting_depth_is_read_without_decoding(text: bytes, depth: int) -> None:
    assert msgspec.json.decode(text) is not None  # valid JSON
    assert not nests_deeper_than(text, depth) and nests_deeper_than(text, depth - 1)


def test_a_body_nesting_past_the_payload_limit_is_refused_before_decoding() -> None:
    fits = b'{"payload": ' + nesting(MAX_PAYLOAD_DEPTH) + b"}"
    assert decode_request(fits, JobCreate).payload is not None
    batch = b'{"jobs": [{"payload": ' + nesting(MAX_PAYLOAD_DEPTH) + b"}]}"
    assert decode_request(batch, BatchCreate, ("jobs",)).jobs[0].payload is not None
    for body, struct in [(b'{"payload": ' + nesting(MAX_PAYLOAD_DEPTH + 1) + b"}", JobCreate),
                         (b'{"jobs": [{"payload": ' + nesting(MAX_PAYLOAD_DEPTH + 1) + b"}]}", BatchCreate),
                         (nesting(100_000), QueueCreate)]:
        with pytest.raises(ValidationError) as info:
            decode_request(body, struct)
        assert info.value.details == {"field": "body", "limit": MAX_PAYLOAD_DEPTH}
