"""The knowledge-base service, an external HTTP service: does each knowledge base exist?

    GET {KNOWLEDGE_BASE_URL}/v1/knowledge-bases/{id}   200 it exists, 404 (or 410) it does not

The caller's organization goes along as `X-Organization-Id`, so a service that scopes
knowledge bases by organization answers 404 for another organization's.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import httpx

from campaigns.clients.guarded import GuardedTransport, allowed_networks
from campaigns.settings import Settings


class KnowledgeBaseUnavailable(Exception):
    """The service could not say (unreachable, timed out, or answered something unexpected)."""


class KnowledgeBases:
    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.knowledge_base_url.rstrip("/") if settings.knowledge_base_url else None
        token = settings.knowledge_base_api_key
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = settings.integration_timeout_s
        self._allowed = allowed_networks(settings)

    @property
    def configured(self) -> bool:
        return self.base_url is not None

    async def missing(self, ids: list[str], *, organization_id: str) -> list[str]:
        """The ids that do not exist, in the order given ([] when the service is not configured)."""
        if not self.configured or not ids:
            return []
        limit = asyncio.Semaphore(10)
        transport = GuardedTransport(self._allowed, retries=2)  # connection failures only
        async with httpx.AsyncClient(
            transport=transport,
            timeout=self._timeout,
            headers={**self._headers, "X-Organization-Id": organization_id},
            trust_env=False,
        ) as client:

            async def exists(kb_id: str) -> bool:
                async with limit:
                    try:
                        r = await client.get(f"{self.base_url}/v1/knowledge-bases/{quote(kb_id, safe='')}")
                    except httpx.HTTPError as exc:
                        raise KnowledgeBaseUnavailable(f"knowledge-base service unreachable: {exc!r}") from exc
                if r.status_code == 200:
                    return True
                if r.status_code in (404, 410):
                    return False
                raise KnowledgeBaseUnavailable(f"knowledge-base service answered {r.status_code} for {kb_id!r}")

            found = await asyncio.gather(*(exists(kb_id) for kb_id in ids))
        return [kb_id for kb_id, ok in zip(ids, found, strict=True) if not ok]
