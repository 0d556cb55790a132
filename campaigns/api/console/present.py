"""What the pages show, shaped from the services' answers: chart points, calendar days."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from campaigns.analytics.models import Analytics, ForecastSeries, TrendPoint
from campaigns.domain import charts
from campaigns.domain.forecast import forecast
from campaigns.domain.timeutil import zone
from campaigns.scheduling.models import Preview

RANGES = {"24h": ("24h", "hourly"), "7d": ("7d", "daily"), "30d": ("30d", "daily")}


def _label(t: TrendPoint, hourly: bool, tz: str) -> tuple[str, str]:
    start = t.start.astimezone(zone(tz))
    utc = t.start.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if hourly:
        return start.strftime("%H:00"), f"{start.strftime('%a %d %b %H:00')} ({utc})"
    return start.strftime("%a %d"), f"{start.strftime('%a %d %b %Y')} (from {utc})"


def _future(series: list[tuple[date, float, float, float]], after: date) -> list[charts.Point]:
    return [
        charts.Point(
            d.strftime("%a %d"), v, lo, hi, forecast=True, note=f"{d.strftime('%a %d %b %Y')} (forecast, 80% interval)"
        )
        for d, v, lo, hi in series
        if d > after
    ]


def _from_service(fc: ForecastSeries) -> list[tuple[date, float, float, float]]:
    return [(p.date, p.value, p.lower80, p.upper80) for p in fc.points]


def _from_history(history: list[float], last_day: date) -> list[tuple[date, float, float, float]]:
    fc = forecast(history, last_day=last_day)
    return [(p.date, p.value, p.lower80, p.upper80) for p in fc.points]


@dataclass
class ChartSet:
    charts: list[tuple[str, charts.LineChart]] = field(default_factory=list)  # (id, chart)
    forecast_note: str = ""


def trend_charts(report: Analytics, tz: str, today: date) -> ChartSet:
    """Calls, leads, cost and conversion over the period; by day, with the forecast and its band."""
    hourly = report.period.granularity == "hourly"
    labels = [_label(t, hourly, tz) for t in report.trends]
    complete = [t for t in report.trends if t.start.astimezone(zone(tz)).date() < today]
    last_day = today - timedelta(days=1)

    def measured(value: Callable[[TrendPoint], float | None]) -> list[charts.Point]:
        return [
            charts.Point(short, value(t), note=long) for t, (short, long) in zip(report.trends, labels, strict=True)
        ]

    specs: list[tuple[str, str, Callable[[TrendPoint], float | None], charts.Format, list]] = [
        ("calls", "Calls", lambda t: float(t.calls), charts.number, []),
        ("leads", "Qualified leads", lambda t: float(t.leads), charts.number, []),
        ("cost", f"Cost ({report.currency})", lambda t: t.cost, lambda v: charts.money(v, report.currency), []),
        ("conversion", "Conversion rate", lambda t: t.conversion_rate, charts.percent, []),
    ]
    out = ChartSet()
    for key, title, value, fmt, _ in specs:
        points = measured(value)
        if not hourly:
            if key == "leads":
                ahead = _from_service(report.forecasts.leads)
            elif key == "cost":
                ahead = _from_service(report.forecasts.cost)
            else:
                history = [v if (v := value(t)) is not None else 0.0 for t in complete]
                ahead = _from_history(history, last_day)
            points += _future(ahead, today)
        whole = key in ("calls", "leads")
        out.charts.append((key, charts.line_chart(points, title=title, fmt=fmt, whole=whole)))
    out.forecast_note = (
        "Forecasts are by day: switch to 7 or 30 days to see them."
        if hourly
        else "Dashed: the forecast for the next days; shaded: its 80% prediction interval."
    )
    return out


@dataclass(frozen=True)
class Block:
    """A piece of a calling window inside one day column of the week calendar."""

    y: float
    height: float
    text: str


@dataclass
class Day:
    date: date
    label: str
    blackout: bool
    dst: str | None  # "clocks go forward/back at …" when the offset changes that day
    blocks: list[Block] = field(default_factory=list)
    windows: list[tuple[datetime, datetime | None]] = field(default_factory=list)


HOUR_PX = 14.0  # the calendar's height per hour


def week(preview: Preview, blackouts: set[date], tz: str, now: datetime, days: int = 7) -> list[Day]:
    """The next `days` local days with the pieces of each window that fall on them."""
    z = zone(tz)
    first = now.astimezone(z).date()
    out = []
    for k in range(days):
        d = first + timedelta(days=k)
        start = datetime(d.year, d.month, d.day, tzinfo=z)
        end_local = datetime.combine(d + timedelta(days=1), datetime.min.time(), tzinfo=z)
        before, after = start.utcoffset(), (end_local - timedelta(seconds=1)).utcoffset()
        dst = None
        if before != after and before is not None and after is not None:
            dst = "clocks go forward" if after > before else "clocks go back"
        day = Day(d, d.strftime("%a %d %b"), d in blackouts, dst)
        day_start, day_end = start.astimezone(UTC), end_local.astimezone(UTC)
        for w in preview.windows:
            opens = w.opens_at or day_start
            closes = w.closes_at or day_end
            lo, hi = max(opens, day_start), min(closes, day_end)
            if hi <= lo:
                continue
            top = (lo - day_start).total_seconds() / 3600
            span = (hi - lo).total_seconds() / 3600
            local_span = f"{lo.astimezone(z).strftime('%H:%M')}–{hi.astimezone(z).strftime('%H:%M')}"
            text = f"{local_span} {tz} ({lo.strftime('%H:%M')}–{hi.strftime('%H:%M')} UTC)"
            day.blocks.append(Block(round(top * HOUR_PX, 1), round(max(span * HOUR_PX, 2), 1), text))
            day.windows.append((lo, hi))
        out.append(day)
    return out
