"""What `chorus predict --wait` and `chorus watch` show while a prediction runs, on standard error
(standard output stays for the result):

- on a terminal, one live line (status, steps done, elapsed time, redrawn ten times a second),
  above which each ensemble step is printed as it finishes;
- anywhere else (a pipe, a file, CI), plain lines, one per change:

      prediction 3f2a… (digits-ensemble): queued
      running
      step svm (digits-svm): succeeded in 0.12 s
      step forest (digits-forest): succeeded in 0.31 s
      step stacker (digits-stacker): succeeded in 0.10 s
      succeeded in 0.80 s
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

from chorus_client.models import Prediction, Step, StepStatus

TICK = 0.1  # seconds between redraws of the live line
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
MARKS = {StepStatus.SUCCEEDED: "✓", StepStatus.FAILED: "✗", StepStatus.CANCELED: "✗", StepStatus.EXPIRED: "✗"}
ASCII_MARKS = {StepStatus.SUCCEEDED: "+", StepStatus.FAILED: "x", StepStatus.CANCELED: "x", StepStatus.EXPIRED: "x"}


def _took(seconds: float | None) -> str:
    return "" if seconds is None else f" in {seconds:.2f} s"


def describe_step(step: Step) -> str:
    """`svm (digits-svm): succeeded in 0.12 s`, with a fan-out's items and a failure's error."""
    text = f"{step.name}{f' ({step.service})' if step.service else ' (rule)'}: {step.status.value}"
    if step.items is not None:
        text += f", {step.items} item{'s' if step.items != 1 else ''}"
        if step.failed_items:
            text += f" ({step.failed_items} failed)"
    text += _took(step.duration_seconds)
    if step.error is not None:
        text += f": {step.error.code}: {step.error.message}"
    return text


class Progress:
    """Shows one prediction's progress on `stream`; `update()` is the client's `on_update`."""

    def __init__(self, stream: TextIO, *, live: bool | None = None, label: str = "") -> None:
        self._stream = stream
        self._label = label  # shown until the prediction exists (the service being asked)
        self.live = stream.isatty() if live is None else live
        fancy = "utf" in (getattr(stream, "encoding", None) or "").lower()
        self._spinner = SPINNER if fancy else "|/-\\"
        self._marks = MARKS if fancy else ASCII_MARKS
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._started = time.monotonic()
        self._current: Prediction | None = None
        self._finished_steps: set[str] = set()
        self._frame = 0
        self._drawn = False

    @property
    def current(self) -> Prediction | None:
        """The latest state shown (None before the prediction was created)."""
        return self._current

    def __enter__(self) -> Progress:
        if self.live:
            self._ticker = threading.Thread(target=self._tick, name="chorus-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            self._clear()

    def update(self, prediction: Prediction) -> None:
        with self._lock:
            first, previous = self._current is None, self._current
            self._current = prediction
            self._clear()
            if first:
                status = "" if prediction.terminal else f": {prediction.status.value}"
                self._line(f"prediction {prediction.id} ({prediction.service}){status}")
            elif (
                not self.live
                and previous is not None
                and previous.status != prediction.status
                and not prediction.terminal
            ):
                self._line(prediction.status.value)
            for step in prediction.steps or ():
                if step.status.finished and step.name not in self._finished_steps:
                    self._finished_steps.add(step.name)
                    mark = self._marks.get(step.status, "-")
                    self._line(f"  {mark} step {describe_step(step)}" if self.live else f"step {describe_step(step)}")
            if prediction.terminal:
                total = prediction.metrics.total_seconds
                mark = self._marks.get(StepStatus(prediction.status.value), "-") + " " if self.live else ""
                self._line(f"{mark}{prediction.status.value}{_took(total)}")
            self._draw()

    def note(self, text: str) -> None:
        """A line of its own (a retry, say), printed above the live line."""
        with self._lock:
            self._clear()
            self._line(text)
            self._draw()

    # --- drawing (under the lock) ------------------------------------------------------------------

    def _line(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()

    def _clear(self) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._drawn = False

    def _draw(self) -> None:
        current = self._current
        if not self.live or (current is not None and current.terminal) or (current is None and not self._label):
            return
        elapsed = time.monotonic() - self._started
        text = f"{self._spinner[self._frame % len(self._spinner)]} "
        if current is None:
            self._stream.write(f"\r\x1b[2K{text}{self._label} submitting · {elapsed:.1f} s")
            self._stream.flush()
            self._drawn = True
            return
        text += f"{current.service} {current.id[:12]} {current.status.value}"
        if current.steps:
            done = sum(1 for s in current.steps if s.status.finished)
            running = [s.name for s in current.steps if s.status is StepStatus.RUNNING]
            text += f" · {done}/{len(current.steps)} steps"
            if running:
                text += f" ({', '.join(running)} running)"
        text += f" · {elapsed:.1f} s"
        self._stream.write("\r\x1b[2K" + text)
        self._stream.flush()
        self._drawn = True

    def _tick(self) -> None:
        while not self._stop.wait(TICK):
            with self._lock:
                self._frame += 1
                self._draw()
