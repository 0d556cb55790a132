"""The simulator's progress display: one line, redrawn in place on a terminal, or a line
every ten seconds when the output is a log."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from campaigns.simulator.traffic import Totals


class Progress:
    def __init__(self, rate: float, *, lines: bool, out: TextIO | None = None, every_s: float = 10.0) -> None:
        self.rate = rate
        self.lines = lines
        self.out = out or sys.stderr
        self.every_s = every_s if lines else 0.25
        self.started = time.monotonic()
        self._shown = 0.0

    def text(self, t: Totals, *, campaigns: int, pending: int = 0) -> str:
        elapsed = time.monotonic() - self.started
        minutes, seconds = divmod(int(elapsed), 60)
        idle = "  (no active campaign with an open window yet)" if campaigns == 0 else ""
        return (
            f"simulate {minutes:02d}:{seconds:02d}  {campaigns} campaigns · {t.calls} calls ({t.in_progress} live) · "
            f"{t.leads} leads · {t.conversions} conversions ${t.revenue:,.0f} · cost ${t.cost:,.2f} · "
            f"widget {t.impressions}/{t.clicks} · {t.events_sent} events"
            + (f" ({t.events_rejected} rejected)" if t.events_rejected else "")
            + idle
        )

    def show(self, totals: Totals, *, campaigns: int, pending: int = 0) -> None:
        now = time.monotonic()
        if now - self._shown < self.every_s:
            return
        self._shown = now
        line = self.text(totals, campaigns=campaigns, pending=pending)
        if self.lines:
            print(line, file=self.out, flush=True)
        else:
            print("\r\x1b[2K" + line, end="", file=self.out, flush=True)

    def done(self, totals: Totals, *, campaigns: int) -> None:
        if not self.lines:
            print(file=self.out)
        print(self.text(totals, campaigns=campaigns), file=self.out, flush=True)
