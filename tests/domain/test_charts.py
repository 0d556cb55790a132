"""Chart geometry: ticks cover the data, forecasts and bands land where they should."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from campaigns.domain import charts


# Business figures: counts, money and rates, not 1e-200.
figures = st.floats(-1e6, 1e6).filter(lambda v: v == 0 or abs(v) >= 1e-6)


@given(figures, figures.map(abs))
def test_ticks_cover_the_range(low, span):
    ticks = charts.nice_ticks(low, low + span)
    assert ticks[0] <= low and ticks[-1] >= low + span
    assert ticks == sorted(ticks) and len(ticks) <= 13


def test_counts_get_whole_ticks():
    chart = charts.line_chart([charts.Point("a", 0), charts.Point("b", 0)], title="Calls", whole=True)
    assert [label for _, label in chart.y_ticks] == ["0", "1", "2", "3", "4"]


def test_a_forecast_continues_the_line_with_its_band():
    points = [charts.Point(str(i), float(i)) for i in range(5)]
    points += [charts.Point(f"f{i}", 5.0 + i, 4.0 + i, 6.0 + i, forecast=True) for i in range(3)]
    chart = charts.line_chart(points, title="Leads")
    assert chart.line.count("L") == 4 and chart.forecast_line.count("L") == 3  # starts at the last measured point
    assert chart.band.endswith("Z") and chart.forecast_from is not None
    assert "forecast to 7 by f2" in chart.description
    assert chart.rows[-1] == ("f2", "7", "6 – 8")


def test_no_data_says_so():
    chart = charts.line_chart([charts.Point("a", None)], title="Cost")
    assert chart.empty and "no data" in chart.description


def test_intervals_sit_around_zero():
    plot = charts.interval_plot([charts.Interval("B", 0.1, -0.05, 0.25, "inconclusive")], title="Lift")
    (row,) = plot.rows
    assert row.x_lower < plot.zero_x < row.x_estimate < row.x_upper
    assert "B: +10.0% (-5.0% to +25.0%)" in plot.description


def test_formats():
    assert charts.number(12345) == "12.3k" and charts.number(3) == "3" and charts.number(None) == "—"
    assert charts.money(1234.5, "USD") == "$1,234.50" and charts.money(2, "SEK") == "2.00 SEK"
    assert charts.percent(0.1234) == "12.3%" and charts.signed_percent(-0.05) == "-5.0%"
