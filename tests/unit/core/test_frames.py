"""The frames between the server and its delivery helpers: typed MessagePack behind a length, nothing else."""

from __future__ import annotations

import asyncio
import pickle
import time

import msgspec
import pytest
from standardwebhooks.webhooks import Webhook

from rotor_lite.engine.frames import (
    MAX_FRAME_BYTES, Batch, FrameError, Results, Setup, decode_from_helper, decode_to_helper, encode, read_frame,
)
from rotor_lite.engine.pool import helper_count
from rotor_lite.engine.sending import Answer, Delivery, Outcome, Post, SenderSettings, Signing
from rotor_lite.engine.signing import sign_callback

DELIVERY = Delivery(
    url="https://hooks.example.com/a?b=1", headers={"X-Key": "k3y-value"}, body=b'{"a":"\xc3\xa9"}\x00', job_id="job_1",
    queue="q", attempt=2, timestamp=1_790_000_000, signing_secret="rcs_secret", timeout_ms=30_000,
    secrets=[b"k3y-value", b"k3y-value\\u0000"],
)
POST = Post(url="https://example.com/wf", body=b"{}", headers={"x-rotor-run-id": "run_1"}, timeout_ms=5000,
            max_bytes=1024, field="serve_url", channel="notifications",
            signing=Signing(scheme="webhook", message_id="msg_1", timestamp=1_790_000_000, secrets=["whsec_" + "A" * 32]))


def feed(*pieces: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for piece in pieces:
        reader.feed_data(piece)
    if eof:
        reader.feed_eof()
    return reader


async def frames_of(reader: asyncio.StreamReader) -> list[bytes]:
    found = []
    while (payload := await read_frame(reader)) is not None:
        found.append(payload)
    return found


async def test_a_batch_and_its_results_cross_unchanged() -> None:
    batch = Batch(deliveries=[(1, DELIVERY), (2, DELIVERY)], posts=[(3, POST)])
    results = Results(
        outcomes=[(1, Outcome(ok=True, outcome="2xx", status=200, error=None, duration_ms=3, result=b'{"ok":true}')),
                  (2, Outcome(ok=False, outcome="5xx", status=503, error="HTTP 503", duration_ms=4, retry_after="120"))],
        answers=[(3, Answer(status=200, body=b"\xff\x00", cut=True)), (4, Answer(failure="timeout"))],
    )
    setup = Setup(sender=SenderSettings(allow_private=False, max_connections=8, max_notifications=4),
                  log_level="info", log_format="json")

    [first, second] = await frames_of(feed(encode(setup) + encode(batch)))
    [third] = await frames_of(feed(encode(results)))

    assert decode_to_helper(first) == setup
    assert decode_to_helper(second) == batch
    assert decode_from_helper(third) == results


async def test_frames_split_anywhere_or_run_together_come_out_whole() -> None:
    stream = b"".join(encode(Batch(deliveries=[(n, DELIVERY)])) for n in range(5))
    pieces = [stream[i:i + 7] for i in range(0, len(stream), 7)]  # cuts through lengths and payloads alike

    payloads = await frames_of(feed(*pieces))

    assert [decode_to_helper(p) for p in payloads] == [Batch(deliveries=[(n, DELIVERY)]) for n in range(5)]


async def test_the_end_of_the_stream_between_frames_is_clean_and_inside_one_is_an_error() -> None:
    frame = encode(Batch())
    assert await read_frame(feed()) is None
    with pytest.raises(FrameError, match="length"):
        await read_frame(feed(frame[:2]))
    with pytest.raises(FrameError, match="inside a frame"):
        await read_frame(feed(frame[:-1]))


async def test_an_impossible_length_is_refused_before_anything_is_read() -> None:
    with pytest.raises(FrameError, match="larger than"):
        await read_frame(feed((MAX_FRAME_BYTES + 1).to_bytes(4, "big"), eof=False))


def test_only_the_protocol_s_messages_decode() -> None:
    """No pickling: a pickle, another struct or a result sent the wrong way are broken frames, not objects."""
    with pytest.raises(FrameError):
        decode_to_helper(pickle.dumps({"url": "https://example.com"}))
    with pytest.raises(FrameError):
        decode_to_helper(msgspec.msgpack.encode({"deliveries": []}))
    with pytest.raises(FrameError):
        decode_to_helper(encode(Results())[4:])
    with pytest.raises(FrameError):
        decode_from_helper(encode(Batch())[4:])


@pytest.mark.parametrize(("setting", "cpus", "helpers"), [
    ("auto", 1, 1), ("auto", 2, 1), ("auto", 4, 3), ("auto", 16, 15), (0, 16, 0), (2, 1, 2), ("3", 8, 3),
])
def test_auto_is_one_helper_per_core_beyond_the_first(setting: int | str, cpus: int, helpers: int) -> None:
    assert helper_count(setting, cpus) == helpers


def test_a_post_is_signed_where_it_is_sent_as_its_receiver_verifies_it() -> None:
    """Webhooks and workflow calls carry their signing secrets to the sender, which signs the exact bytes."""
    now = int(time.time())
    secret = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    webhook = Signing(scheme="webhook", message_id="msg_1", timestamp=now, secrets=["whsec_" + "Qg" * 16, secret])
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), **webhook.headers(b'{"a":1}')}
    assert Webhook(secret).verify(b'{"a":1}', headers) == {"a": 1}  # the second secret's signature is among them
    assert headers["Rotor-Webhook-Signature"] == headers["webhook-signature"]
    rotor = Signing(scheme="rotor", message_id="run_1", timestamp=now, secrets=["a", "b"])
    assert rotor.headers(b"{}") == {"x-rotor-signature": " ".join(sign_callback(key, "run_1", now, b"{}") for key in ("a", "b"))}
