"""Progress of a run on stderr: tqdm bars in a terminal, plain timed lines elsewhere (CI, pipes, files).

Both renderers are `ProgressFn` callbacks, ``progress(stage, done, total)``, as `auditor.api.run_audit`
and `auditor.mitigate.run.run_mitigation` call them. A stage is a check's name (its images through the
model against the cost plan's passes, `auditor.cost.PassCounter`), ``predict``, a mitigation's ``train``
or ``validate``, or a part of a check, ``"check: part"`` (the attacks' ``attacks: pgd linf``). A stage
starts when first reported and ends when ``done`` reaches ``total``; reported again later, it starts anew.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TextIO

__all__ = ["PlainLines", "TerminalBars", "make_reporter", "format_duration", "DEFAULT_UNITS", "INTERVAL"]

INTERVAL = 30.0
"""Seconds between two progress lines of the plain renderer while a stage runs."""

DEFAULT_UNITS: Mapping[str, str] = {"predict": "images", "train": "batches", "validate": "images"}
"""What ``done``/``total`` count for the stages whose unit is known before the run; a check's own stage
counts passes (set by the CLI from the cost plan)."""

SEP = ": "
"""Between a check and its part in a stage name."""


def format_duration(seconds: float) -> str:
    """``42s``, ``3m10s``, ``1h02m``: a duration for a log line."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _parent(stage: str) -> str | None:
    return stage.split(SEP, 1)[0] if SEP in stage else None


@dataclass
class _Stage:
    started: float
    done: int
    total: int
    announced: bool = False


class PlainLines:
    """Progress as plain lines on ``stream`` (default stderr), for logs that are not a terminal.

    One line when a stage starts, one when it ends (with its duration), and while stages run at most one
    line every ``interval`` seconds: the running check's ``done/total``, share and ETA, and the part of it
    under way, e.g. ``auditor: spurious 412/1500 passes (27%), ETA 3m10s; masks 96/2560``. Parts of a
    check (``"check: part"``) get no start and end lines of their own. The start line comes with the
    stage's second report (its first progress, or its end), so a run that fails at once (an unreadable
    image in the first batch) prints its one-line error alone. ``clock`` is for tests."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic, units: Mapping[str, str] | None = None) -> None:
        self.stream = stream
        self.interval = float(interval)
        self.clock = clock
        self.units: dict[str, str] = dict(DEFAULT_UNITS if units is None else units)
        self._stages: dict[str, _Stage] = {}
        self._current: str | None = None
        self._last_line = clock()

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = self.clock()
        top = _parent(stage) is None
        st = self._stages.get(stage)
        started = st is None or done < st.done
        if started:
            st = self._stages[stage] = _Stage(now, done, total)
        elif top and not st.announced:
            st.announced = True
            self._emit(self._start_text(stage, st), now)
        st.done, st.total = done, total
        if top or self._current is None or self._current not in self._stages:
            self._current = stage
        if done >= total:
            self._end(stage, now)
        elif not started and now - self._last_line >= self.interval:
            line = self._status(now)
            if line:
                self._emit(line, now)

    def _end(self, stage: str, now: float) -> None:
        st = self._stages.pop(stage)
        if _parent(stage) is None:
            if not st.announced:  # first reported at its end
                self._emit(self._start_text(stage, st), now)
            for part in [s for s in self._stages if _parent(s) == stage]:  # a part left open ends with its check
                del self._stages[part]
            self._emit(f"{stage} done in {format_duration(now - st.started)}", now)
        if self._current == stage:
            self._current = next(reversed(self._stages), None)

    def _start_text(self, stage: str, st: _Stage) -> str:
        return f"{stage} started" + (f" ({self._count(stage, st.total)})" if st.total > 0 else "")

    def _count(self, stage: str, n: int) -> str:
        """``1500 passes``: ``n`` with the stage's unit, when it has one."""
        unit = self.units.get(stage)
        return f"{n} {unit}" if unit else str(n)

    def _status(self, now: float) -> str | None:
        """The running top-level stage (or the part, when no top-level stage runs), with its part under way."""
        name = self._current
        if name is None or name not in self._stages:
            return None
        top = _parent(name) or name
        main = top if top in self._stages else name
        text = self._numbers(main, self._stages[main], now)
        part = name if name != main else next((s for s in reversed(self._stages) if _parent(s) == main), None)
        if part is not None:
            p = self._stages[part]
            text += f"; {part.split(SEP, 1)[1]} {p.done}/{p.total}"
        return text

    def _numbers(self, name: str, st: _Stage, now: float) -> str:
        share = st.done / st.total if st.total > 0 else 0.0
        text = f"{name} {st.done}/{self._count(name, st.total)} ({share:.0%})"
        elapsed = now - st.started
        if st.done > 0 and elapsed > 0:
            return text + f", ETA {format_duration(elapsed * (st.total - st.done) / st.done)}"
        return text + f", running {format_duration(elapsed)}"

    def _emit(self, text: str, now: float) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        print(f"auditor: {text}", file=stream, flush=True)
        self._last_line = now

    def close(self) -> None:
        """Forget the stages still open (an interrupted run); prints nothing."""
        self._stages.clear()
        self._current = None


class TerminalBars:
    """One tqdm bar per running stage on ``stream`` (default stderr), for a terminal. A check's bar counts
    its images through the model against the cost plan's passes, so it shows the check's ETA; its parts
    get bars of their own below it. A bar goes when its stage ends."""

    def __init__(self, stream: TextIO | None = None, *, units: Mapping[str, str] | None = None) -> None:
        self.stream = stream
        self.units: dict[str, str] = dict(DEFAULT_UNITS if units is None else units)
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is not None and (done < bar.n or total != bar.total):
            bar.close()
            bar = None
        if bar is None:
            unit = " " + self.units[stage] if stage in self.units else "it"
            bar = self.bars[stage] = tqdm(total=total, desc=stage, file=self.stream if self.stream is not None else sys.stderr,
                                          leave=False, disable=False, unit=unit, unit_scale=total >= 10_000, dynamic_ncols=True)
        bar.update(done - bar.n)
        if done >= total:
            self.bars.pop(stage).close()
            for part in [s for s in self.bars if _parent(s) == stage]:  # a part left open goes with its check
                self.bars.pop(part).close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def make_reporter(*, quiet: bool = False, stream: TextIO | None = None,
                  interval: float = INTERVAL) -> PlainLines | TerminalBars | None:
    """The renderer for ``stream`` (default stderr): None when ``quiet``, bars on a terminal, else plain lines."""
    if quiet:
        return None
    target = stream if stream is not None else sys.stderr
    isatty = getattr(target, "isatty", None)
    if callable(isatty) and isatty():
        return TerminalBars(stream)
    return PlainLines(stream, interval=interval)
