"""Verifying Rotor webhook deliveries: Standard Webhooks v1, as the `standardwebhooks` package checks it.

    from rotor_lite.sdk import Webhook, RotorSignatureError

    try:
        event = Webhook(os.environ["ROTOR_WEBHOOK_SECRET"]).verify(raw_body, request.headers)
    except RotorSignatureError:
        return Response(status=401)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks.webhooks import EmptyWebhookSecretError, WebhookVerificationError
from standardwebhooks.webhooks import Webhook as _StandardWebhook

from rotor_lite.sdk.errors import RotorSignatureError

__all__ = ["Webhook"]

_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class Webhook:
    """A verifier for one endpoint's secret (`whsec_…`, as returned by `webhooks.create`)."""

    def __init__(self, secret: str) -> None:
        try:
            self._inner = _StandardWebhook(secret)
        except (EmptyWebhookSecretError, ValueError) as exc:
            raise RotorSignatureError("the webhook secret is empty or not valid base64") from exc

    def verify(self, body: bytes | str, headers: Mapping[str, str] | Any) -> Any:
        """The parsed event when `body` carries a valid, fresh (±5 min) signature; else RotorSignatureError.

        `headers` may use the `webhook-*` or the `Rotor-Webhook-*` spelling, in any case. Pass the
        raw body: re-serialized JSON will not match. During a secret rotation either secret verifies.
        """
        lowered = {str(key).lower(): str(value) for key, value in _items(headers)}
        found = {name: lowered.get(name) or lowered.get(f"rotor-{name}") or "" for name in _HEADERS}
        try:
            return self._inner.verify(body, found)
        except WebhookVerificationError as exc:
            raise RotorSignatureError(str(exc)) from exc
        except ValueError as exc:  # a malformed signature or body
            raise RotorSignatureError(f"malformed webhook delivery: {exc}") from exc


def _items(headers: Any) -> Any:
    items = getattr(headers, "items", None)
    return items() if callable(items) else dict(headers).items()
