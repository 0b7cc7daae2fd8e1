"""The `approvals` and `guardrails` resources: the human gate and the content policy of a workspace."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rotor_lite.sdk._request import APIRequest, compact, path
from rotor_lite.sdk._resources import R, _Resource

__all__ = ["Approvals", "Guardrails"]

# keyword arguments of `guardrails.update` → the API's field names
_GUARDRAIL_FIELDS = {
    "dnc_emails": "dncEmails",
    "dnc_domains": "dncDomains",
    "competitor_domains": "competitorDomains",
    "pii_redaction_enabled": "piiRedactionEnabled",
    "pii_mode": "piiMode",
    "pii_types": "piiTypes",
    "brand_tone_judge_enabled": "brandToneJudgeEnabled",
    "brand_tone_rubric": "brandToneRubric",
    "brand_tone_threshold": "brandToneThreshold",
}


class Approvals(_Resource[R]):
    """`/v1/approvals`: jobs of queues with `approval_required` wait here for a human decision."""

    def list(
        self, *, status: str | None = None, queue: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> R:
        """One page, newest first: `{"approvals": [...], "nextCursor": ...}`; `status` is pending, approved or rejected."""
        params = compact({"status": status, "queue": queue, "limit": limit, "cursor": cursor})
        return self._send(APIRequest("GET", "/v1/approvals", params=params))

    def get(self, approval_id: str) -> R:
        """One approval, with the payload under review."""
        return self._send(APIRequest("GET", path("/v1/approvals/{}", approval_id)))

    def approve(self, approval_id: str) -> R:
        """Approve: the job goes on to `waiting`. Deciding twice raises `RotorConflict`."""
        return self._send(APIRequest("POST", path("/v1/approvals/{}/approve", approval_id)))

    def reject(self, approval_id: str, reason: str | None = None) -> R:
        """Reject: the job is `failed` with `failReason: "rejected"` and never retried."""
        body = compact({"reason": reason})
        return self._send(APIRequest("POST", path("/v1/approvals/{}/reject", approval_id), json=body))


class Guardrails(_Resource[R]):
    """`/v1/guardrails`: DNC lists, competitor domains, PII and the brand-tone judge, workspace-wide."""

    def get(self) -> R:
        """The guardrail config (`grc_…`)."""
        return self._send(APIRequest("GET", "/v1/guardrails"))

    def update(self, config: dict[str, Any] | None = None, /, **fields: Any) -> R:
        """Replace the fields given (a DNC list given replaces the whole list).

        Keyword arguments in snake_case (`dnc_emails=[...]`, `pii_mode="redact"`), or one dict with the
        API's camelCase names as the reference SDK's `update({...})` takes.
        """
        unknown = set(fields) - set(_GUARDRAIL_FIELDS)
        if unknown:
            raise TypeError(f"unknown guardrail fields: {', '.join(sorted(unknown))}")
        body = dict(config or {}) | {_GUARDRAIL_FIELDS[k]: _listed(v) for k, v in fields.items() if v is not None}
        return self._send(APIRequest("PATCH", "/v1/guardrails", json=body))

    def append_dnc(
        self, *, emails: Iterable[str] | None = None, domains: Iterable[str] | None = None, minimal: bool = False
    ) -> R:
        """Add entries to the DNC lists; `minimal=True` answers only `{"added": {...}}` (bulk imports)."""
        body = compact({"emails": _listed(emails), "domains": _listed(domains)})
        params = {"return": "minimal"} if minimal else None
        return self._send(APIRequest("POST", "/v1/guardrails/dnc", json=body, params=params))

    def remove_dnc_email(self, email: str) -> R:
        """Remove one email from the DNC list; returns None."""
        return self._send(APIRequest("DELETE", path("/v1/guardrails/dnc/emails/{}", email)))

    def remove_dnc_domain(self, domain: str) -> R:
        """Remove one domain from the DNC list; returns None."""
        return self._send(APIRequest("DELETE", path("/v1/guardrails/dnc/domains/{}", domain)))

    def list_dnc(self, kind: str = "emails", *, limit: int | None = None, cursor: str | None = None) -> R:
        """One page of a DNC list (`kind` "emails" or "domains") in order: `{"data": [...], "nextCursor": ...}`."""
        if kind not in ("emails", "domains"):
            raise ValueError('kind is "emails" or "domains"')
        params = compact({"limit": limit, "cursor": cursor})
        return self._send(APIRequest("GET", f"/v1/guardrails/dnc/{kind}", params=params))

    def stats(self, *, days: int | None = None) -> R:
        """Blocked jobs per stage and day over the last `days` days (default 30)."""
        return self._send(APIRequest("GET", "/v1/guardrails/stats", params=compact({"days": days})))

    appendDnc = append_dnc
    removeDncEmail = remove_dnc_email
    removeDncDomain = remove_dnc_domain


def _listed(value: Any) -> Any:
    if value is None or isinstance(value, (str, bytes, dict)):
        return value
    return list(value) if isinstance(value, Iterable) else value
