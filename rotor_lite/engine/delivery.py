"""One callback delivery: sign the exact body bytes, POST them, classify what came back.

The aiohttp session keeps keep-alive connections per callback host. It is a guarded
session (engine.outbound): the SSRF check happens on the address actually connected
to (a DNS name that later resolves to 127.0.0.1 is refused too, and so is a literal).
"""

from __future__ import annotations

import logging
import time
import traceback
from functools import lru_cache

import aiohttp
import msgspec

from rotor_lite import __version__
from rotor_lite.clock import Clock
from rotor_lite.backoff import parse_retry_after
from rotor_lite.engine.outbound import describe_client_error, guarded_session
from rotor_lite.engine.signing import sign_callback
from rotor_lite.errors import ValidationError
from rotor_lite.models import Claimed, Queue
from rotor_lite.netguard import check_callback_url
from rotor_lite.services import secrets as vault
from rotor_lite.services.hooks import SecretSource
from rotor_lite.services.secrets import UnknownSecret

MAX_RESULT_BYTES = 64 * 1024
TRUNCATED = "…[truncated]"  # ends a result cut at MAX_RESULT_BYTES or at the queue's timeout
USER_AGENT = f"rotor-lite/{__version__}"
log = logging.getLogger("rotor_lite.delivery")


_MARKER = vault.MARKER.encode()
_SCRUBBED = b"[secret]"
_MIN_FRAGMENT = 4  # a secret's beginning this long, left at a cut, is scrubbed as well
_SNIPPET_BYTES = 200
_REASON_BYTES = 200
_LOGGED_FRAMES = 8


class _Target(msgspec.Struct, kw_only=True):
    """What one attempt sends; `secrets` are the plaintexts it carries, as an answer may echo them (never kept)."""

    url: str | None
    headers: dict[str, str]
    body: bytes
    secrets: list[bytes] = msgspec.field(default_factory=list)


def _templated(url: str | None, headers: dict[str, str], body: bytes) -> bool:
    """A cheap test that keeps the hot path free of template work when there is none."""
    return _MARKER in body or (url is not None and vault.MARKER in url) or any(
        vault.MARKER in value for value in headers.values()
    )


def _echo_forms(values: list[str]) -> list[bytes]:
    """Each secret as an answer may echo it: as is, and escaped inside a JSON string (short values are left alone)."""
    forms = {form for value in values if len(value) >= _MIN_FRAGMENT
             for form in (value.encode(), msgspec.json.encode(value)[1:-1])}
    return sorted(forms, key=len, reverse=True)


def _kept(text: bytes, limit: int, secrets: list[bytes]) -> bytes:
    """The first `limit` bytes of `text`, scrubbed before the cut (whole secrets) and after it (one split by it)."""
    return _scrub(_scrub(text, secrets)[:limit], secrets)


def _scrub(text: bytes, secrets: list[bytes]) -> bytes:
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


def _scrubbed(outcome: Outcome, secrets: list[bytes]) -> Outcome:
    """The outcome with any secret that an error message carries (a URL, an echo) removed."""
    if outcome.error is None or not secrets:
        return outcome
    return msgspec.structs.replace(outcome, error=_scrub(outcome.error.encode(), secrets).decode("utf-8", "replace"))


class Outcome(msgspec.Struct, kw_only=True):
    """How one delivery ended."""

    ok: bool
    outcome: str
    status: int | None
    error: str | None
    duration_ms: int
    result: bytes | None = None
    retry_after_ms: int | None = None


class Deliverer:
    """Owns the HTTP client session used for every callback."""

    def __init__(
        self, clock: Clock, *, allow_private: bool, max_connections: int, secrets: SecretSource | None = None
    ) -> None:
        self._clock = clock
        self._secrets = secrets
        self._allow_private = allow_private
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Deliverer:
        # Capped per host, not in total: with one shared cap, a queue whose handler hangs could hold
        # every connection and stall the deliveries of all other queues (each queue's concurrency
        # already bounds its own connections).
        self._session = guarded_session(
            allow_private=self._allow_private, limit=0, limit_per_host=self._max_connections
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def deliver(self, queue: Queue, job: Claimed) -> Outcome:
        """POST the job to the queue's callback URL and classify the answer; never raises but to be cancelled."""
        started = time.perf_counter()
        secrets: list[bytes] = []
        try:
            target = await self._target(queue, job)
            secrets = target.secrets
            outcome = await self._send(queue, job, target, started)
        except UnknownSecret as exc:
            outcome = _failure("error", None, str(exc), started)
        except Exception as exc:  # a bug or a poison job costs an attempt; raising would redeliver it forever
            outcome = _failure("error", None, _internal_error(exc, secrets), started)
            _log_internal_error(job, outcome.error, exc)
        return _scrubbed(outcome, secrets)

    async def _target(self, queue: Queue, job: Claimed) -> _Target:
        """URL, headers and body with `${{ secrets.NAME }}` resolved (skipped unless a template is present)."""
        url, headers, body = queue.callback_url, queue.callback_headers, job.payload
        if self._secrets is None or not _templated(url, headers, body):
            return _Target(url=url, headers=headers, body=body)
        names = vault.template_names(url or "").union(*(vault.template_names(v) for v in headers.values()))
        payload = msgspec.json.decode(body) if _MARKER in body else None
        if payload is not None:
            names |= vault.payload_names(payload)
        values = await self._secrets.resolve(queue.workspace_id, names, {"jobId": job.id, "queue": queue.name})
        return _Target(
            url=None if url is None else vault.substitute(url, values),
            headers={key: vault.substitute(value, values) for key, value in headers.items()},
            body=body if payload is None else msgspec.json.encode(vault.substitute_payload(payload, values)),
            secrets=_echo_forms(list(values.values())),
        )

    async def _send(self, queue: Queue, job: Claimed, target: _Target, started: float) -> Outcome:
        try:
            url = self._checked_url(target.url)
            return await self._post(queue, job, url, started, target)
        except TimeoutError:
            return _failure("timeout", None, f"no response within {queue.timeout_ms // 1000}s", started)
        except ValidationError as exc:
            return _failure("error", None, exc.message, started)
        except (aiohttp.ClientError, OSError) as exc:
            return _failure("network", None, describe_client_error(exc), started)

    def _checked_url(self, url: str | None) -> str:
        if not url:
            raise ValidationError("queue has no callback_url")
        # Early, with a clear message: a URL with a secret filled in is seen here for the first time.
        return check_callback_url(url, allow_private=self._allow_private)

    async def _post(self, queue: Queue, job: Claimed, url: str, started: float, target: _Target) -> Outcome:
        assert self._session is not None, "deliverer is not open"
        timestamp = self._clock.now_ms() // 1000
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "x-rotor-job-id": job.id,
            "x-rotor-queue": queue.name,
            "x-rotor-attempt": str(job.attempt),
            "x-rotor-timestamp": str(timestamp),
            "x-rotor-signature": sign_callback(queue.callback_secret or "", job.id, timestamp, target.body),
            **target.headers,
        }
        timeout = _timeout(queue.timeout_ms)
        async with self._session.post(url, data=target.body, headers=headers, timeout=timeout, allow_redirects=False) as resp:
            body, cut = await _read_answer(resp.content)
            duration = _elapsed_ms(started)
            if 200 <= resp.status < 300:
                return Outcome(ok=True, outcome="2xx", status=resp.status, error=None, duration_ms=duration,
                               result=_result_json(body, resp.content_type, cut, target.secrets))
            retry_after = None
            if resp.status in (429, 503):
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), self._clock.now_ms())
            return Outcome(
                ok=False, outcome=_status_class(resp.status), status=resp.status,
                error=f"HTTP {resp.status}" + (f": {_snippet(body, target.secrets)}" if body else ""),
                duration_ms=duration, retry_after_ms=retry_after,
            )

    async def call(self, url: str, body: bytes, headers: dict[str, str], timeout_ms: int, max_bytes: int) -> tuple[int, bytes]:
        """POST signed bytes to a URL that is not a queue's (a workflow's serve URL): its status and body.

        Raises ValidationError (a refused URL), TimeoutError, aiohttp.ClientError or OSError; a body
        longer than `max_bytes` is a ValueError.
        """
        assert self._session is not None, "deliverer is not open"
        checked = check_callback_url(url, allow_private=self._allow_private, field="serve_url")
        sent = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
        async with self._session.post(checked, data=body, headers=sent, timeout=_timeout(timeout_ms), allow_redirects=False) as resp:
            answer, cut = await _read_answer(resp.content, max_bytes)
            if cut:
                raise ValueError(f"the answer is larger than {max_bytes} bytes, or did not end in time")
            return resp.status, answer


@lru_cache(maxsize=64)
def _timeout(timeout_ms: int) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=timeout_ms / 1000)  # immutable: one per distinct queue timeout


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
    body = _scrub(body, secrets)
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


def _failure(outcome: str, status: int | None, error: str, started: float) -> Outcome:
    return Outcome(ok=False, outcome=outcome, status=status, error=error, duration_ms=_elapsed_ms(started))


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _snippet(body: bytes, secrets: list[bytes]) -> str:
    return _kept(body, _SNIPPET_BYTES, secrets).decode("utf-8", "replace")


def _internal_error(exc: Exception, secrets: list[bytes]) -> str:
    """A failed attempt's reason for an error no branch expected: its type and the start of its message."""
    reason = f"internal error: {type(exc).__name__}: {exc}".encode()
    return _kept(reason, _REASON_BYTES, secrets).decode("utf-8", "replace")


def _log_internal_error(job: Claimed, reason: str | None, exc: Exception) -> None:
    """One ERROR record with the last frames only: a RecursionError's full traceback runs to thousands of lines."""
    frames = "".join(traceback.format_tb(exc.__traceback__, limit=-_LOGGED_FRAMES)).rstrip()
    log.error("delivery of job %r raised %s\n%s", job.id, reason, frames)

