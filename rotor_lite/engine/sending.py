"""The sending half of delivery: what crosses to the process that sends, and the sending itself.

Everything here runs where the bytes leave: in the server's own process (`[delivery] processes = 0`)
or in a delivery helper (engine.helper). So it imports no service and no store: a `Delivery` or a
`Post` arrives ready to send (secrets resolved, timestamp chosen by the server's clock), and an
`Outcome` or an `Answer` goes back. The signature is computed here, from the exact body bytes sent.

The aiohttp sessions keep keep-alive connections per host. They are guarded sessions
(engine.outbound): the SSRF check happens on the address actually connected to (a DNS name that
later resolves to 127.0.0.1 is refused too, and so is a literal).
"""

from __future__ import annotations

import logging
import time
import traceback
from functools import lru_cache
from typing import Literal

import aiohttp
import msgspec

from rotor_lite import __version__
from rotor_lite.engine.outbound import describe_client_error, guarded_session
from rotor_lite.engine.signing import sign_callback, sign_webhook
from rotor_lite.errors import ValidationError
from rotor_lite.netguard import check_callback_url

__all__ = [
    "MAX_RESULT_BYTES", "TRUNCATED", "USER_AGENT", "Answer", "Delivery", "Outcome", "Post", "Sender", "SenderSettings", "Signing",
    "echo_forms", "elapsed_ms", "failure", "internal_error", "log_internal_error", "scrub",
]

MAX_RESULT_BYTES = 64 * 1024
TRUNCATED = "…[truncated]"  # ends a result cut at MAX_RESULT_BYTES or at the queue's timeout
USER_AGENT = f"rotor-lite/{__version__}"

_SCRUBBED = b"[secret]"
_MIN_FRAGMENT = 4  # a secret's beginning this long, left at a cut, is scrubbed as well
_SNIPPET_BYTES = 200
_REASON_BYTES = 200
_LOGGED_FRAMES = 8
log = logging.getLogger("rotor_lite.delivery")


class Delivery(msgspec.Struct, array_like=True, kw_only=True):
    """One job callback, ready to send; `secrets` are the echo forms of the resolved secrets it carries
    (an answer may echo them: they are scrubbed from what comes back, and never kept)."""

    url: str | None
    headers: dict[str, str]
    body: bytes
    job_id: str
    queue: str
    attempt: int
    timestamp: int  # the server's clock, in seconds: signed and sent as x-rotor-timestamp
    signing_secret: str
    timeout_ms: int
    secrets: list[bytes] = msgspec.field(default_factory=list)


class Outcome(msgspec.Struct, array_like=True, kw_only=True):
    """How one delivery ended; `retry_after` is the raw header of a 429/503, read with the server's clock."""

    ok: bool
    outcome: str
    status: int | None
    error: str | None
    duration_ms: int
    result: bytes | None = None
    retry_after: str | None = None


Channel = Literal["callbacks", "notifications"]


class Signing(msgspec.Struct, array_like=True, kw_only=True):
    """How a `Post` is signed where it is sent: `rotor` (workflow calls: `x-rotor-signature`) or `webhook`
    (Standard Webhooks, in both header spellings), one signature per secret, over the message id, the
    timestamp (the server's clock, in seconds) and the exact body bytes."""

    scheme: Literal["rotor", "webhook"]
    message_id: str
    timestamp: int
    secrets: list[str]

    def headers(self, body: bytes) -> dict[str, str]:
        if self.scheme == "rotor":
            return {"x-rotor-signature": " ".join(sign_callback(s, self.message_id, self.timestamp, body) for s in self.secrets)}
        signature = sign_webhook(self.secrets, self.message_id, self.timestamp, body)
        return {"webhook-signature": signature, "Rotor-Webhook-Signature": signature}


class Post(msgspec.Struct, array_like=True, kw_only=True):
    """Bytes to POST that are not a job's callback (a workflow call, a webhook, a Slack alert).

    `channel` picks the connection pool: notifications have their own, so a dead webhook endpoint
    never holds a callback connection. `field` names the setting the URL came from, for errors.
    """

    url: str
    body: bytes
    headers: dict[str, str]
    timeout_ms: int
    max_bytes: int
    field: str = "url"
    channel: Channel = "callbacks"
    signing: Signing | None = None


Failure = Literal["timeout", "refused", "network"]


class Answer(msgspec.Struct, array_like=True, kw_only=True):
    """What a `Post` got: the status and body (`cut` when longer than `max_bytes`, or still arriving at the
    timeout), or why there is none (`failure` and `error`)."""

    status: int | None = None
    body: bytes = b""
    cut: bool = False
    failure: Failure | None = None
    error: str | None = None


class SenderSettings(msgspec.Struct, array_like=True, kw_only=True):
    """What a sender needs from the server's settings."""

    allow_private: bool
    max_connections: int  # per callback host
    max_notifications: int  # notification connections in all


class Sender:
    """Owns the HTTP sessions that POST; `deliver` and `post` never raise but to be cancelled."""

    def __init__(self, settings: SenderSettings) -> None:
        self._settings = settings
        self._callbacks: aiohttp.ClientSession | None = None
        self._notifications: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Sender:
        # Capped per host, not in total: with one shared cap, a queue whose handler hangs could hold
        # every connection and stall the deliveries of all other queues (each queue's concurrency
        # already bounds its own connections).
        self._callbacks = guarded_session(
            allow_private=self._settings.allow_private, limit=0, limit_per_host=self._settings.max_connections
        )
        self._notifications = guarded_session(
            allow_private=self._settings.allow_private, limit=self._settings.max_notifications
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for session in (self._callbacks, self._notifications):
            if session is not None:
                await session.close()

    async def deliver(self, delivery: Delivery) -> Outcome:
        """POST the job signed, classify the answer; error messages and results come back scrubbed."""
        started = time.perf_counter()
        try:
            outcome = await self._send(delivery, started)
        except Exception as exc:  # a bug or a poison job costs an attempt; raising would redeliver it forever
            outcome = failure("error", internal_error(exc, delivery.secrets), started)
            log_internal_error(delivery.job_id, outcome.error, exc)
        if outcome.error is not None and delivery.secrets:
            outcome.error = scrub(outcome.error.encode(), delivery.secrets).decode("utf-8", "replace")
        return outcome

    async def _send(self, delivery: Delivery, started: float) -> Outcome:
        try:
            if not delivery.url:
                raise ValidationError("queue has no callback_url")
            # Early, with a clear message: a URL with a secret filled in is seen here for the first time.
            url = check_callback_url(delivery.url, allow_private=self._settings.allow_private)
            return await self._post_job(delivery, url, started)
        except TimeoutError:
            return failure("timeout", f"no response within {delivery.timeout_ms // 1000}s", started)
        except ValidationError as exc:
            return failure("error", exc.message, started)
        except (aiohttp.ClientError, OSError) as exc:
            return failure("network", describe_client_error(exc), started)

    async def _post_job(self, delivery: Delivery, url: str, started: float) -> Outcome:
        assert self._callbacks is not None, "the sender is not open"
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "x-rotor-job-id": delivery.job_id,
            "x-rotor-queue": delivery.queue,
            "x-rotor-attempt": str(delivery.attempt),
            "x-rotor-timestamp": str(delivery.timestamp),
            "x-rotor-signature": sign_callback(delivery.signing_secret, delivery.job_id, delivery.timestamp, delivery.body),
            **delivery.headers,
        }
        timeout = _timeout(delivery.timeout_ms)
        async with self._callbacks.post(url, data=delivery.body, headers=headers, timeout=timeout, allow_redirects=False) as resp:
            body, cut = await _read_answer(resp.content)
            duration = elapsed_ms(started)
            if 200 <= resp.status < 300:
                return Outcome(ok=True, outcome="2xx", status=resp.status, error=None, duration_ms=duration,
                               result=_result_json(body, resp.content_type, cut, delivery.secrets))
            return Outcome(
                ok=False, outcome=_status_class(resp.status), status=resp.status,
                error=f"HTTP {resp.status}" + (f": {_snippet(body, delivery.secrets)}" if body else ""),
                duration_ms=duration,
                retry_after=resp.headers.get("Retry-After") if resp.status in (429, 503) else None,
            )

    async def post(self, post: Post) -> Answer:
        """POST the bytes as given: the status and up to `max_bytes` of the body, or why not."""
        session = self._callbacks if post.channel == "callbacks" else self._notifications
        assert session is not None, "the sender is not open"
        try:
            checked = check_callback_url(post.url, allow_private=self._settings.allow_private, field=post.field)
            sent = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **post.headers}
            if post.signing is not None:
                sent.update(post.signing.headers(post.body))
            timeout = _timeout(post.timeout_ms)
            async with session.post(checked, data=post.body, headers=sent, timeout=timeout, allow_redirects=False) as resp:
                body, cut = await _read_answer(resp.content, post.max_bytes)
                return Answer(status=resp.status, body=body[:post.max_bytes], cut=cut)
        except TimeoutError:
            return Answer(failure="timeout")
        except ValidationError as exc:
            return Answer(failure="refused", error=exc.message)
        except (aiohttp.ClientError, OSError) as exc:
            return Answer(failure="network", error=describe_client_error(exc))


@lru_cache(maxsize=64)
def _timeout(timeout_ms: int) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=timeout_ms / 1000)  # immutable: one per distinct timeout


async def _read_answer(content: aiohttp.StreamReader, limit: int = MAX_RESULT_BYTES) -> tuple[bytes, bool]:
    """The response body up to one byte past `limit`, and whether it was cut (longer, or still
    arriving at the timeout). `read(n)` answers with what has arrived, so read until the end."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= limit:
            chunk = await content.read(limit + 1 - size)
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)
            size += len(chunk)
    except TimeoutError:
        pass  # the status came in time: keep what arrived
    return b"".join(chunks), True


def _result_json(body: bytes, content_type: str, cut: bool, secrets: list[bytes]) -> bytes | None:
    """The response kept as JSON: the body itself when it is JSON, else its text as a JSON string
    (a cut body is text: its first bytes, up to MAX_RESULT_BYTES in all with the TRUNCATED marker)."""
    if not body and not cut:
        return None
    if cut:
        kept = _kept(body, MAX_RESULT_BYTES - len(TRUNCATED.encode()), secrets)
        return msgspec.json.encode(kept.decode("utf-8", "replace") + TRUNCATED)
    body = scrub(body, secrets)
    if "json" in content_type or body[:1] in (b"{", b"["):
        try:
            msgspec.json.decode(body)
            return body
        except msgspec.DecodeError:
            pass
    return msgspec.json.encode(body.decode("utf-8", "replace"))


def _status_class(status: int) -> str:
    if 400 <= status < 500:
        return "4xx"
    if status >= 500:
        return "5xx"
    return "error"  # 1xx/3xx: redirects are not followed


def failure(outcome: str, error: str, started: float) -> Outcome:
    """A delivery that got no HTTP answer to classify."""
    return Outcome(ok=False, outcome=outcome, status=None, error=error, duration_ms=elapsed_ms(started))


def elapsed_ms(started: float) -> int:
    """Milliseconds since `started` (a `time.perf_counter()` reading)."""
    return int((time.perf_counter() - started) * 1000)


def _snippet(body: bytes, secrets: list[bytes]) -> str:
    return _kept(body, _SNIPPET_BYTES, secrets).decode("utf-8", "replace")


def internal_error(exc: Exception, secrets: list[bytes]) -> str:
    """A failed attempt's reason for an error no branch expected: its type and the start of its message."""
    reason = f"internal error: {type(exc).__name__}: {exc}".encode()
    return _kept(reason, _REASON_BYTES, secrets).decode("utf-8", "replace")


def log_internal_error(job_id: str, reason: str | None, exc: Exception) -> None:
    """One ERROR record with the last frames only: a RecursionError's full traceback runs to thousands of lines."""
    frames = "".join(traceback.format_tb(exc.__traceback__, limit=-_LOGGED_FRAMES)).rstrip()
    log.error("delivery of job %r raised %s\n%s", job_id, reason, frames)


def _kept(text: bytes, limit: int, secrets: list[bytes]) -> bytes:
    """The first `limit` bytes of `text`, scrubbed before the cut (whole secrets) and after it (one split by it)."""
    return scrub(scrub(text, secrets)[:limit], secrets)


def scrub(text: bytes, secrets: list[bytes]) -> bytes:
    """`text` without any secret, nor a secret's beginning at its end (where a cut may have split one)."""
    for secret in secrets:
        text = text.replace(secret, _SCRUBBED)
    for secret in secrets:
        start = _split_secret_at(text, secret)
        if start is not None:
            text = text[:start] + _SCRUBBED
    return text


def _split_secret_at(text: bytes, secret: bytes) -> int | None:
    """Where the longest end of `text` that begins `secret` starts (at least _MIN_FRAGMENT bytes), if any."""
    start = max(0, len(text) - len(secret) + 1)
    while (start := text.find(secret[:_MIN_FRAGMENT], start, len(text))) != -1:
        if secret.startswith(text[start:]):
            return start
        start += 1
    return None


def echo_forms(values: list[str]) -> list[bytes]:
    """Each secret as an answer may echo it: as is, and escaped inside a JSON string (short values are left alone)."""
    forms = {form for value in values if len(value) >= _MIN_FRAGMENT
             for form in (value.encode(), msgspec.json.encode(value)[1:-1])}
    return sorted(forms, key=len, reverse=True)
