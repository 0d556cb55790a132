"""The metric catalogue: what each event adds to the aggregates, and what the rates mean.

Every aggregate (the rollup columns, the real-time counters, the performance summary) is
a vector of these sufficient statistics: counts, sums and sums of squares, money in integer
micro-units so sums are exact. One declarative list drives both executions of the rules:
`accumulate` (Python, on the ingest path) and `sql_select_list` (SQL, when rebuilding from the
record), so the two can never disagree on what an event contributes. Adding a metric is one
line here and one column in the rollups table.

Rates, defined once (`derive`):
- totalCalls = completed + failed; activeCalls are started but not yet finished
- connectRate = connected / totalCalls; answerRate = connected / completedCalls
  (connected: outcome `connected` or `transferred`)
- qualificationRate = leads / connectedCalls; conversionRate = conversions / completedCalls
- costPerLead, costPerCall, costPerConversion: cost over each (unknown when the count is 0)
- roi = (revenue − cost) / cost, when there is cost and some revenue was reported
- customerSatisfaction = mean of `satisfaction` (1–5) where calls report it
- widgetClickThroughRate = clicks / impressions
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

MICROS = 1_000_000

Kind = Literal["count", "sum", "square", "money"]

CONNECTED_OUTCOMES = ("connected", "transferred")
COST_CATEGORIES = ("telephony", "stt", "tts", "llm", "other")


@dataclass(frozen=True)
class Metric:
    """`name` counts (or sums `field` of) the events of `type` whose `when` field has one of
    the given values."""

    name: str
    type: str
    kind: Kind = "count"
    field: str | None = None
    when: tuple[str, tuple[str, ...]] | None = None

    @property
    def integral(self) -> bool:
        return self.kind in ("count", "money")


def _stats(prefix: str, type_: str, field: str, count: bool = True) -> list[Metric]:
    out = [Metric(f"{prefix}_count", type_, "count", field)] if count else []
    return out + [Metric(f"{prefix}_sum", type_, "sum", field), Metric(f"{prefix}_sq", type_, "square", field)]


METRICS: tuple[Metric, ...] = (
    Metric("calls_started", "call.started"),
    Metric("calls_completed", "call.completed"),
    Metric("calls_connected", "call.completed", when=("outcome", CONNECTED_OUTCOMES)),
    Metric("calls_failed", "call.failed"),
    *_stats("duration", "call.completed", "durationSec", count=False),
    *_stats("wait", "call.started", "waitSec"),
    *_stats("satisfaction", "call.completed", "satisfaction"),
    Metric("leads", "lead.qualified"),
    *_stats("lead_score", "lead.qualified", "score", count=False),
    Metric("conversions", "conversion"),
    Metric("revenue_micros", "conversion", "money", "revenue"),
    Metric("revenue_sq", "conversion", "square", "revenue"),
    Metric("cost_micros", "cost", "money", "amount"),
    *(Metric(f"cost_{c}_micros", "cost", "money", "amount", ("category", (c,))) for c in COST_CATEGORIES),
    Metric("widget_impressions", "widget.impression"),
    Metric("widget_clicks", "widget.click"),
    Metric("widget_displays", "widget.display"),
    *_stats("display_ms", "widget.display", "ms", count=False),
)

NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
INDEX: dict[str, int] = {name: i for i, name in enumerate(NAMES)}
WIDTH = len(METRICS)

# Per event type, what to do for each metric: (index, field, when-field, when-values, kind).
_PLAN: dict[str, list[tuple[int, str | None, str | None, tuple[str, ...], Kind]]] = {}
for _i, _m in enumerate(METRICS):
    _PLAN.setdefault(_m.type, []).append(
        (_i, _m.field, _m.when[0] if _m.when else None, _m.when[1] if _m.when else (), _m.kind)
    )


def zero() -> list[float]:
    return [0] * WIDTH


def accumulate(vector: list[Any], type_: str, data: dict[str, Any]) -> None:
    """Add one event's contribution to `vector` (a list indexed like METRICS)."""
    for index, field, when_field, when_values, kind in _PLAN.get(type_, ()):
        if when_field is not None and data.get(when_field) not in when_values:
            continue
        if field is None:
            vector[index] += 1
            continue
        value = data.get(field)
        if value is None:
            continue
        if kind == "count":
            vector[index] += 1
        elif kind == "sum":
            vector[index] += value
        elif kind == "square":
            vector[index] += value * value
        else:
            vector[index] += round(value * MICROS)


def add(into: list[Any], other: list[Any]) -> None:
    for i, v in enumerate(other):
        if v:
            into[i] += v


def to_sparse(vector: list[Any]) -> dict[str, Any]:
    return {NAMES[i]: v for i, v in enumerate(vector) if v}


def _sql_value(m: Metric) -> str:
    if m.field is None or m.kind == "count":
        return "1" if m.field is None else f"CASE WHEN data ? '{m.field}' THEN 1 ELSE 0 END"
    raw = f"(data->>'{m.field}')"
    if m.kind == "sum":
        return f"coalesce({raw}::float8, 0)"
    if m.kind == "square":
        return f"coalesce({raw}::float8 * {raw}::float8, 0)"
    return f"coalesce(round({raw}::numeric * {MICROS})::bigint, 0)"


def sql_select_list() -> str:
    """`sum(...) AS name, …` over analytics_events rows: the same rules as `accumulate`."""
    parts = []
    for m in METRICS:
        condition = f"type = '{m.type}'"
        if m.when:
            values = ", ".join(f"'{v}'" for v in m.when[1])
            condition += f" AND data->>'{m.when[0]}' IN ({values})"
        zero_ = "0" if m.integral else "0::float8"
        parts.append(f"coalesce(sum(CASE WHEN {condition} THEN {_sql_value(m)} ELSE {zero_} END), {zero_}) AS {m.name}")
    return ",\n       ".join(parts)


def sql_sum(name: str, alias: str = "r") -> str:
    """`sum` of a rollup column, typed like the column (Postgres widens bigint sums to numeric)."""
    cast = "bigint" if METRICS[INDEX[name]].integral else "float8"
    return f"coalesce(sum({alias}.{name}), 0)::{cast}"


def sql_sum_list(alias: str = "r") -> str:
    """`sum(r.name) AS name, …` over rollup rows, for every metric."""
    return ", ".join(f"{sql_sum(n, alias)} AS {n}" for n in NAMES)


# --- From sums to figures -------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def money(micros: float) -> float:
    return round(micros / MICROS, 6)


@dataclass(frozen=True)
class Figures:
    """Every figure the API reports about a set of events, derived from their sums."""

    total_calls: int
    completed_calls: int
    connected_calls: int
    failed_calls: int
    started_calls: int
    qualified_leads: int
    conversions: int
    connect_rate: float | None
    answer_rate: float | None
    qualification_rate: float | None
    conversion_rate: float | None
    call_failure_rate: float | None
    average_call_duration: float | None
    average_wait_time: float | None
    average_lead_score: float | None
    customer_satisfaction: float | None
    satisfaction_responses: int
    total_cost: float
    cost_by_category: dict[str, float]
    cost_per_lead: float | None
    cost_per_call: float | None
    cost_per_conversion: float | None
    revenue: float
    roi: float | None
    widget_impressions: int
    widget_clicks: int
    widget_click_through_rate: float | None
    average_display_time_ms: float | None

    def get(self, name: str) -> Any:
        return getattr(self, name)


def derive(sums: dict[str, Any] | list[Any]) -> Figures:
    s = sums if isinstance(sums, dict) else dict(zip(NAMES, sums, strict=True))
    g = lambda n: s.get(n) or 0  # noqa: E731
    completed, failed, connected = int(g("calls_completed")), int(g("calls_failed")), int(g("calls_connected"))
    total = completed + failed
    leads, conversions = int(g("leads")), int(g("conversions"))
    cost, revenue = money(g("cost_micros")), money(g("revenue_micros"))
    has_revenue = g("revenue_micros") > 0
    return Figures(
        total_calls=total,
        completed_calls=completed,
        connected_calls=connected,
        failed_calls=failed,
        started_calls=int(g("calls_started")),
        qualified_leads=leads,
        conversions=conversions,
        connect_rate=_ratio(connected, total),
        answer_rate=_ratio(connected, completed),
        qualification_rate=_ratio(leads, connected),
        conversion_rate=_ratio(conversions, completed),
        call_failure_rate=_ratio(failed, total),
        average_call_duration=_ratio(g("duration_sum"), completed),
        average_wait_time=_ratio(g("wait_sum"), g("wait_count")),
        average_lead_score=_ratio(g("lead_score_sum"), leads),
        customer_satisfaction=_ratio(g("satisfaction_sum"), g("satisfaction_count")),
        satisfaction_responses=int(g("satisfaction_count")),
        total_cost=cost,
        cost_by_category={c: money(g(f"cost_{c}_micros")) for c in COST_CATEGORIES},
        cost_per_lead=_ratio(cost, leads),
        cost_per_call=_ratio(cost, total),
        cost_per_conversion=_ratio(cost, conversions),
        revenue=revenue,
        roi=((revenue - cost) / cost) if cost and has_revenue else None,
        widget_impressions=int(g("widget_impressions")),
        widget_clicks=int(g("widget_clicks")),
        widget_click_through_rate=_ratio(g("widget_clicks"), g("widget_impressions")),
        average_display_time_ms=_ratio(g("display_ms_sum"), g("widget_displays")),
    )


def stddev(count: float, total: float, squares: float) -> float | None:
    """Sample standard deviation from sufficient statistics (None below two observations)."""
    if count < 2:
        return None
    variance = (squares - total * total / count) / (count - 1)
    return math.sqrt(max(variance, 0.0))
