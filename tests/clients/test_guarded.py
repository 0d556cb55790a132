"""The platform's own outbound services (pipeline, knowledge bases) behind the SSRF guard:
the operator's SERVICE_ALLOWED_NETWORKS apply, loopback by default (the simulator)."""

from __future__ import annotations

import pytest

from campaigns.clients.knowledge_bases import KnowledgeBases, KnowledgeBaseUnavailable
from campaigns.clients.pipeline import Pipeline, PipelineError
from campaigns.domain import netguard
from campaigns.settings import Settings
from tests.support.receiver import Answer, Receiver


@pytest.fixture
async def service() -> Receiver:
    r = await Receiver(lambda n, req: Answer(404)).start()
    yield r
    await r.stop()


def _settings(url: str, **extra) -> Settings:
    return Settings(_env_file=None, pipeline_url=url, knowledge_base_url=url, **extra)


async def test_loopback_is_allowed_by_default(service: Receiver):
    settings = _settings(f"http://localhost:{service.port}")
    assert await KnowledgeBases(settings).missing(["kb-1"], organization_id="o") == ["kb-1"]
    await Pipeline(settings).deprovision("c-1", reason="ended", idempotency_key="k")  # 404 counts as done
    assert len(service.requests) == 2


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127\u30020\u30020\u30021", "2130706433", "0x7f.1",
                                  "[::ffff:127.0.0.1]"])
async def test_an_address_outside_the_allowed_networks_is_refused(service: Receiver, host: str):
    settings = _settings(f"http://{host}:{service.port}", service_allowed_networks="10.20.0.0/16")
    with pytest.raises(KnowledgeBaseUnavailable) as kb_error:
        await KnowledgeBases(settings).missing(["kb-1"], organization_id="o")
    # The message may reach a tenant (a 503 about knowledgeBaseIds): it names no address.
    assert netguard.REFUSED in str(kb_error.value) and "127.0.0.1" not in str(kb_error.value)
    with pytest.raises(PipelineError) as pipeline_error:
        await Pipeline(settings).provision("c-1", {}, idempotency_key="k")
    assert netguard.REFUSED in str(pipeline_error.value) and pipeline_error.value.retryable
    assert service.requests == []
