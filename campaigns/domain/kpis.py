"""Default KPIs by campaign type: what an inbound desk, an outbound team and a hybrid
operation are usually judged by. A campaign created without KPIs gets these."""

from __future__ import annotations

from campaigns.domain.config import KPI, CampaignType, KpiMetric

M = KpiMetric

_INBOUND = [
    KPI(id="answer-rate", name="Answer rate", metric=M.ANSWER_RATE, target=0.95, unit="ratio"),
    KPI(
        id="wait-time",
        name="Average wait time",
        metric=M.AVERAGE_WAIT_TIME,
        target=30,
        unit="seconds",
        direction="lower_is_better",
    ),
    KPI(id="qualification-rate", name="Qualification rate", metric=M.QUALIFICATION_RATE, target=0.25, unit="ratio"),
    KPI(id="csat", name="Customer satisfaction", metric=M.CUSTOMER_SATISFACTION, target=4.0, unit="score"),
]
_OUTBOUND = [
    KPI(id="connect-rate", name="Connect rate", metric=M.CONNECT_RATE, target=0.3, unit="ratio"),
    KPI(id="conversion-rate", name="Conversion rate", metric=M.CONVERSION_RATE, target=0.1, unit="ratio"),
    KPI(
        id="cost-per-lead",
        name="Cost per lead",
        metric=M.COST_PER_LEAD,
        target=50,
        unit="currency",
        direction="lower_is_better",
    ),
    KPI(id="calls-per-hour", name="Calls per hour", metric=M.CALLS_PER_HOUR, target=60, unit="per_hour"),
]
_HYBRID = [_INBOUND[0], _OUTBOUND[0], _OUTBOUND[1], _OUTBOUND[2]]

_DEFAULTS = {CampaignType.INBOUND: _INBOUND, CampaignType.OUTBOUND: _OUTBOUND, CampaignType.HYBRID: _HYBRID}


def default_kpis(campaign_type: CampaignType) -> list[KPI]:
    return [k.model_copy() for k in _DEFAULTS[campaign_type]]
