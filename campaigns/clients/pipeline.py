"""The voice-AI pipeline, an external HTTP service that takes the calls.

    PUT    {PIPELINE_URL}/v1/campaigns/{id}               provision: take calls with this configuration
    POST   {PIPELINE_URL}/v1/campaigns/{id}/reinitialize  reload flow, voice and knowledge bases
    DELETE {PIPELINE_URL}/v1/campaigns/{id}?reason=…      deprovision (404: already gone, fine)

Every request carries an `Idempotency-Key`, the same on each retry of one operation, so a
pipeline that saw it before does nothing twice. Network errors, 408, 425, 429 and 5xx are
worth retrying (`retry_after` says when, if the pipeline said); any other 4xx is a refusal.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from campaigns.clients.guarded import GuardedTransport, allowed_networks
from campaigns.settings import Settings

_RETRYABLE = {408, 425, 429}


class PipelineError(Exception):
    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return min(max(float(value), 0.0), 300.0)
    except ValueError:
        return None


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.pipeline_url.rstrip("/") if settings.pipeline_url else None
        self._headers = {"Authorization": f"Bearer {settings.pipeline_api_key}"} if settings.pipeline_api_key else {}
        self._timeout = settings.integration_timeout_s
        self._allowed = allowed_networks(settings)

    @property
    def configured(self) -> bool:
        return self.base_url is not None

    async def provision(self, campaign_id: str, body: dict[str, Any], *, idempotency_key: str) -> None:
        await self._send("PUT", f"/v1/campaigns/{quote(campaign_id)}", idempotency_key, json=body)

    async def reinitialize(self, campaign_id: str, body: dict[str, Any], *, idempotency_key: str) -> None:
        await self._send("POST", f"/v1/campaigns/{quote(campaign_id)}/reinitialize", idempotency_key, json=body)

    async def deprovision(self, campaign_id: str, *, reason: str, idempotency_key: str) -> None:
        await self._send(
            "DELETE", f"/v1/campaigns/{quote(campaign_id)}", idempotency_key, params={"reason": reason}, gone_ok=True
        )

    async def _send(
        self, method: str, path: str, idempotency_key: str, *, gone_ok: bool = False, **kwargs: Any
    ) -> None:
        assert self.base_url is not None
        headers = {**self._headers, "Idempotency-Key": idempotency_key}
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout, transport=GuardedTransport(self._allowed), trust_env=False
            ) as client:
                response = await client.request(method, self.base_url + path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise PipelineError(f"pipeline unreachable: {exc!r}", retryable=True) from exc
        if response.is_success or (gone_ok and response.status_code in (404, 410)):
            return
        excerpt = response.text[:300]
        retryable = response.status_code in _RETRYABLE or response.status_code >= 500
        raise PipelineError(
            f"pipeline answered {response.status_code} to {method} {path}: {excerpt}",
            retryable=retryable,
            retry_after=_retry_after(response) if retryable else None,
        )
