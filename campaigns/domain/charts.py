"""Chart geometry for the console: scales, ticks and SVG path data, with no I/O.

The console draws its charts as SVG on the server, so a page needs no chart library and
reads the same without script. These functions turn numbers into coordinates; the
templates turn coordinates into markup (escaping every label).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Format = Callable[[float], str]


def number(value: float | None) -> str:
    """A count or amount, short: 1,234 · 12.3k · 1.2M."""
    if value is None:
        return "—"
    v = abs(value)
    sign = "-" if value < 0 else ""
    if v >= 1e6:
        return f"{sign}{v / 1e6:.1f}M"
    if v >= 1e4:
        return f"{sign}{v / 1e3:.1f}k"
    if v == int(v):
        return f"{sign}{int(v):,}"
    return f"{sign}{v:,.2f}" if v < 100 else f"{sign}{v:,.0f}"


def money(value: float | None, currency: str = "USD") -> str:
    if value is None:
        return "—"
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "AUD": "A$", "CAD": "C$"}.get(currency)
    body = f"{abs(value):,.2f}" if abs(value) < 1e5 else number(abs(value))
    sign = "-" if value < 0 else ""
    return f"{sign}{symbol}{body}" if symbol else f"{sign}{body} {currency}"


def percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def signed_percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:+.{digits}f}%"


def nice_ticks(low: float, high: float, count: int = 4, *, min_step: float = 0.0) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2 or 5 × 10ⁿ, at least `min_step`)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high - low < 1e-9 * max(1.0, abs(low), abs(high)):  # no spread worth a scale: show one unit
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = max(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), min_step)
    first = math.floor(low / step) * step
    ticks: list[float] = []
    value = first
    while value < high + step * 0.5 and len(ticks) < 12:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


@dataclass(frozen=True)
class Point:
    """One x position: its label, value and interval (either may be None), and whether it is
    a forecast rather than a measurement."""

    label: str
    value: float | None
    lower: float | None = None
    upper: float | None = None
    forecast: bool = False
    note: str = ""  # a longer label for the table and the hover title (e.g. the UTC time)


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    text: str  # what a hover shows: "label: value"
    forecast: bool


@dataclass
class LineChart:
    title: str
    description: str
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    line: str = ""  # path data of the measured values
    forecast_line: str = ""  # from the last measured value through the forecast
    band: str = ""  # polygon of the interval, where points have one
    # Each point's own interval as a vertical bar: what a band cannot show for a lone point.
    whiskers: list[tuple[float, float, float]] = field(default_factory=list)  # x, y of upper, y of lower
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    forecast_from: float | None = None  # x where the forecast starts (a dashed divider)
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # label, value, interval
    empty: bool = False


def _fmt_interval(fmt: Format, lower: float | None, upper: float | None) -> str:
    return "" if lower is None or upper is None else f"{fmt(lower)} – {fmt(upper)}"


def line_chart(
    points: Sequence[Point],
    *,
    title: str,
    fmt: Format = number,
    width: int = 560,
    height: int = 200,
    max_x_labels: int = 7,
    whole: bool = False,
) -> LineChart:
    """A line of the measured points, a dashed line of the forecast, and the intervals as a band."""
    # Room on the left for the widest label, e.g. "+150.0%" or "$12,500".
    left, right, top, bottom = 66.0, width - 12.0, 12.0, height - 28.0
    chart = LineChart(title, "", width, height, left, right, top, bottom)
    chart.rows = [
        (p.note or p.label, fmt(p.value) if p.value is not None else "—", _fmt_interval(fmt, p.lower, p.upper))
        for p in points
    ]
    values = [v for p in points for v in (p.value, p.lower, p.upper) if v is not None]
    if not points or not values:
        chart.empty = True
        chart.description = f"{title}: no data in this period."
        return chart
    # Counts (`whole`) get whole-number ticks: no "0.25 calls".
    top_value = max(values) if max(values) > 0 else (4.0 if whole else 1.0)
    ticks = nice_ticks(min(0.0, min(values)), top_value, min_step=1.0 if whole else 0.0)
    lo, hi = ticks[0], ticks[-1]
    n = len(points)

    def x(i: int) -> float:
        return left + (right - left) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return bottom - (bottom - top) * ((v - lo) / (hi - lo) if hi > lo else 0)

    chart.y_ticks = [(round(y(t), 1), fmt(t)) for t in ticks]
    every = max(1, math.ceil(n / max_x_labels))
    chart.x_ticks = [(round(x(i), 1), p.label) for i, p in enumerate(points) if i % every == 0]

    measured = [(i, p) for i, p in enumerate(points) if not p.forecast and p.value is not None]
    chart.line = _path([(x(i), y(p.value)) for i, p in measured if p.value is not None])
    predicted = [(i, p) for i, p in enumerate(points) if p.forecast and p.value is not None]
    if predicted:
        start = [measured[-1]] if measured else []
        chart.forecast_line = _path([(x(i), y(p.value)) for i, p in start + predicted if p.value is not None])
        chart.forecast_from = round(x(predicted[0][0]), 1)
    banded = [(i, p) for i, p in enumerate(points) if p.lower is not None and p.upper is not None]
    if banded:
        upper = [(x(i), y(p.upper)) for i, p in banded if p.upper is not None]
        lower = [(x(i), y(p.lower)) for i, p in reversed(banded) if p.lower is not None]
        chart.band = _path(upper + lower) + " Z"
        chart.whiskers = [
            (round(x(i), 1), round(y(p.upper), 1), round(y(p.lower), 1))
            for i, p in banded
            if p.upper is not None and p.lower is not None
        ]
    chart.marks = [
        Mark(round(x(i), 1), round(y(p.value), 1), f"{p.note or p.label}: {fmt(p.value)}", p.forecast)
        for i, p in enumerate(points)
        if p.value is not None
    ]
    shown = [p.value for p in points if not p.forecast and p.value is not None]
    summary = f"{title}: {len(shown)} points from {points[0].label} to {points[-1].label}"
    if shown:
        summary += f", lowest {fmt(min(shown))}, highest {fmt(max(shown))}, last {fmt(shown[-1])}"
    if predicted:
        summary += f"; forecast to {fmt(predicted[-1][1].value or 0)} by {predicted[-1][1].label}"
    chart.description = summary + "."
    return chart


def _path(points: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{'M' if k == 0 else 'L'}{px:.1f},{py:.1f}" for k, (px, py) in enumerate(points))


@dataclass(frozen=True)
class Interval:
    """One comparison against control: its estimate and interval."""

    label: str
    estimate: float
    lower: float
    upper: float
    outcome: str  # better, worse, equivalent, inconclusive


@dataclass(frozen=True)
class IntervalRow:
    label: str
    y: float
    x_lower: float
    x_upper: float
    x_estimate: float
    outcome: str
    text: str


@dataclass
class IntervalPlot:
    title: str
    description: str
    width: int
    height: int
    left: float
    right: float
    zero_x: float
    rows: list[IntervalRow]
    x_ticks: list[tuple[float, str]]


def interval_plot(
    intervals: Sequence[Interval], *, title: str, fmt: Format = signed_percent, width: int = 560
) -> IntervalPlot:
    """Each interval as a horizontal bar around its estimate, against a line at zero (no change)."""
    row_height = 34
    left, right = 150.0, width - 36.0  # room for the last tick's label, e.g. "+200.0%"
    height = max(1, len(intervals)) * row_height + 30
    reach = max([abs(v) for i in intervals for v in (i.lower, i.upper, i.estimate)] + [1e-9])
    ticks = nice_ticks(-reach, reach, 4)
    span = max(abs(ticks[0]), abs(ticks[-1]))

    def x(v: float) -> float:
        return left + (right - left) * (v + span) / (2 * span)

    rows = [
        IntervalRow(
            i.label,
            14 + k * row_height + row_height / 2,
            round(x(i.lower), 1),
            round(x(i.upper), 1),
            round(x(i.estimate), 1),
            i.outcome,
            f"{i.label}: {fmt(i.estimate)} ({fmt(i.lower)} to {fmt(i.upper)}), {i.outcome}",
        )
        for k, i in enumerate(intervals)
    ]
    description = f"{title}. " + "; ".join(r.text for r in rows) + "." if rows else f"{title}: no comparison yet."
    return IntervalPlot(
        title,
        description,
        width,
        height,
        left,
        right,
        round(x(0), 1),
        rows,
        [(round(x(t), 1), fmt(t)) for t in ticks if abs(t) <= span],
    )


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    y_ok: float
    h_ok: float
    y_bad: float
    h_bad: float
    text: str


def stacked_bars(slots: Sequence[tuple[str, int, int]], *, width: int = 240, height: int = 36) -> tuple[list[Bar], str]:
    """Small bars per slot: successes below, failures stacked above (a delivery sparkline).
    `slots` are (label, succeeded, failed). Returns the bars and a text summary."""
    peak = max([ok + bad for _, ok, bad in slots] + [1])
    step = width / max(len(slots), 1)
    bars = []
    for k, (label, ok, bad) in enumerate(slots):
        h_ok = (height - 2) * ok / peak
        h_bad = (height - 2) * bad / peak
        bars.append(
            Bar(
                round(k * step + 1, 1),
                round(max(step - 2, 1), 1),
                round(height - h_ok, 1),
                round(h_ok, 1),
                round(height - h_ok - h_bad, 1),
                round(h_bad, 1),
                f"{label}: {ok} succeeded, {bad} failed",
            )
        )
    total_ok = sum(ok for _, ok, _ in slots)
    total_bad = sum(bad for _, _, bad in slots)
    return bars, f"{total_ok} attempts succeeded and {total_bad} failed over {len(slots)} hours"
