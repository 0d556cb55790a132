"""The metrics a test may judge variants by, and the sufficient statistics each needs.

Every metric is computed from the analytics rollups (per campaign, 15-minute slot and
variant: counts, sums and sums of squares; see `campaigns/domain/metrics.py`), never from
raw events, so a test's results cost the same at a thousand events as at a billion.

| metric                 | kind       | value                                   | unit        | better |
|------------------------|------------|-----------------------------------------|-------------|--------|
| conversionRate         | proportion | conversions / completed calls           | calls       | higher |
| qualificationRate      | proportion | qualified leads / connected calls       | calls       | higher |
| connectRate            | proportion | connected calls / calls                 | calls       | higher |
| answerRate             | proportion | connected calls / completed calls       | calls       | higher |
| callFailureRate        | proportion | failed calls / calls                    | calls       | lower  |
| widgetClickThroughRate | proportion | widget clicks / impressions             | impressions | higher |
| averageCallDuration    | mean       | seconds per completed call              | calls       | (say)  |
| averageWaitTime        | mean       | seconds waited per call that reports it | calls       | lower  |
| customerSatisfaction   | mean       | 1–5 score per call that reports it      | calls       | higher |
| averageLeadScore       | mean       | 0–100 score per qualified lead          | calls       | higher |
| revenuePerCall         | mean       | revenue per completed call              | calls       | higher |
| costPerLead            | ratio      | cost / qualified leads                  | calls       | lower  |
| costPerCall            | ratio      | cost / calls                            | calls       | lower  |
| costPerConversion      | ratio      | cost / conversions                      | calls       | lower  |

Proportions treat each unit as one trial (a completed call converts or not); means treat
each unit as one observation (revenuePerCall counts a call without a conversion as 0,
so it assumes at most one conversion per call). Ratios are ratios of totals whose events
are not tied one-to-one to calls (several cost events per call, leads reported later), so
their variance comes from the delta method over the variant's 15-minute slots as units:
each slot contributes its totals (yⱼ, xⱼ), and the slot-to-slot spread measures the noise.

`unit` is what the sample-ratio check and the minimum-calls gate count: calls
(completed + failed) for call metrics, impressions for the widget's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from campaigns.domain.abtest.estimates import Mean, Proportion, Ratio, Stats

Kind = Literal["proportion", "mean", "ratio"]
Direction = Literal["increase", "decrease"]
Unit = Literal["calls", "impressions"]

MICROS = 1e-6

# The rollup columns that count each unit.
UNIT_COLUMNS: dict[Unit, tuple[str, ...]] = {
    "calls": ("calls_completed", "calls_failed"),
    "impressions": ("widget_impressions",),
}


@dataclass(frozen=True)
class MetricDef:
    """`num` and `den` are rollup columns summed into the numerator (successes, the sum, the
    ratio's numerator) and the denominator (units, the ratio's denominator); `sq` is the
    column of squares a mean needs; `scale` turns the numerator into display units."""

    name: str
    kind: Kind
    label: str
    num: tuple[str, ...]
    den: tuple[str, ...]
    direction: Direction | None
    unit: Unit = "calls"
    sq: str | None = None
    scale: float = 1.0
    format: Literal["rate", "number", "money", "seconds"] = "number"


def _p(
    name: str, label: str, num: tuple[str, ...], den: tuple[str, ...], direction: Direction, unit: Unit = "calls"
) -> MetricDef:
    return MetricDef(name, "proportion", label, num, den, direction, unit, format="rate")


CATALOGUE: dict[str, MetricDef] = {
    m.name: m
    for m in (
        _p("conversionRate", "Conversion rate", ("conversions",), ("calls_completed",), "increase"),
        _p("qualificationRate", "Qualification rate", ("leads",), ("calls_connected",), "increase"),
        _p("connectRate", "Connect rate", ("calls_connected",), ("calls_completed", "calls_failed"), "increase"),
        _p("answerRate", "Answer rate", ("calls_connected",), ("calls_completed",), "increase"),
        _p("callFailureRate", "Call failure rate", ("calls_failed",), ("calls_completed", "calls_failed"), "decrease"),
        _p(
            "widgetClickThroughRate",
            "Widget click-through rate",
            ("widget_clicks",),
            ("widget_impressions",),
            "increase",
            unit="impressions",
        ),
        MetricDef(
            "averageCallDuration",
            "mean",
            "Average call duration",
            ("duration_sum",),
            ("calls_completed",),
            None,
            sq="duration_sq",
            format="seconds",
        ),
        MetricDef(
            "averageWaitTime",
            "mean",
            "Average wait time",
            ("wait_sum",),
            ("wait_count",),
            "decrease",
            sq="wait_sq",
            format="seconds",
        ),
        MetricDef(
            "customerSatisfaction",
            "mean",
            "Customer satisfaction",
            ("satisfaction_sum",),
            ("satisfaction_count",),
            "increase",
            sq="satisfaction_sq",
        ),
        MetricDef(
            "averageLeadScore",
            "mean",
            "Average lead score",
            ("lead_score_sum",),
            ("leads",),
            "increase",
            sq="lead_score_sq",
        ),
        MetricDef(
            "revenuePerCall",
            "mean",
            "Revenue per call",
            ("revenue_micros",),
            ("calls_completed",),
            "increase",
            sq="revenue_sq",
            scale=MICROS,
            format="money",
        ),
        MetricDef(
            "costPerLead",
            "ratio",
            "Cost per lead",
            ("cost_micros",),
            ("leads",),
            "decrease",
            scale=MICROS,
            format="money",
        ),
        MetricDef(
            "costPerCall",
            "ratio",
            "Cost per call",
            ("cost_micros",),
            ("calls_completed", "calls_failed"),
            "decrease",
            scale=MICROS,
            format="money",
        ),
        MetricDef(
            "costPerConversion",
            "ratio",
            "Cost per conversion",
            ("cost_micros",),
            ("conversions",),
            "decrease",
            scale=MICROS,
            format="money",
        ),
    )
}

NAMES: tuple[str, ...] = tuple(CATALOGUE)


def columns() -> set[str]:
    """Every rollup column the catalogue reads."""
    out = {c for cols in UNIT_COLUMNS.values() for c in cols}
    for m in CATALOGUE.values():
        out.update(m.num + m.den + ((m.sq,) if m.sq else ()))
    return out


# --- From the sums a repository returns to sufficient statistics --------------------------
#
# A repository returns, per variant, a flat dict with these keys for each metric it was
# asked about (and `units:<unit>` for each unit):
#   proportion  "<name>:x", "<name>:n"
#   mean        "<name>:sum", "<name>:sq", "<name>:n"
#   ratio       "<name>:m", "<name>:sy", "<name>:sx", "<name>:syy", "<name>:sxx", "<name>:sxy"
#               (y, x: a slot's numerator and denominator totals; m: slots with either)


def stats(metric: MetricDef, sums: dict[str, float]) -> Stats:
    g = lambda key: float(sums.get(f"{metric.name}:{key}") or 0)  # noqa: E731
    if metric.kind == "proportion":
        return Proportion(n=g("n"), x=g("x"))
    if metric.kind == "mean":
        return Mean(n=g("n"), sum=g("sum") * metric.scale, sumsq=g("sq"))
    s = metric.scale
    return Ratio(m=g("m"), sy=g("sy") * s, sx=g("sx"), syy=g("syy") * s * s, sxx=g("sxx"), sxy=g("sxy") * s)


def units(unit: Unit, sums: dict[str, float]) -> float:
    return float(sums.get(f"units:{unit}") or 0)
