"""What ``make demo`` shows while a run goes: one line per finished task, the training's ETA.

Pure text in, text out (no Airflow imports), so the formats are tested without a DAG run; the
demo feeds it task instances from the metadata database and the lines of the full run log.
"""

from __future__ import annotations

import re
import time

# train.py's lines (include/jobs/train.py): the plan, then one line per log interval.
_PLAN = re.compile(r"training on \S+: \d+ rows, (\d+) epoch\(s\) x (\d+) steps")
_STEP = re.compile(r"epoch=(\d+) step=(\d+)/(\d+) train_loss=([0-9.]+) samples_per_sec=([0-9.]+)")
_RESUMED = re.compile(r"resumed from .* after epoch (\d+)")


def task_line(task_id: str, state: str, seconds: float | None) -> str:
    """``  success      train_model                       312.4 s``."""
    took = f"{seconds:8.1f} s" if isinstance(seconds, int | float) else "       - s"
    return f"  {state:<16} {task_id:<44} {took}"


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class TrainingProgress:
    """Turns train.py's log lines into ``training: epoch 1/1, step 40/169 (24%), ...`` lines.

    The ETA is the remaining steps times the mean wall time per step seen so far (the clock is
    injectable for tests), so it includes whatever the loop pays besides the steps.
    """

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.epochs = 1
        self.steps = 0
        self.done_before = 0  # steps of epochs a checkpoint resumed past
        self.first: tuple[float, int] | None = None

    def feed(self, line: str) -> str | None:
        """The progress line for ``line`` when it is a training step line, else None."""
        plan = _PLAN.search(line)
        if plan:  # a job starts (tuning trials, then the final fine-tune): its own clock
            self.epochs, self.steps = int(plan.group(1)), int(plan.group(2))
            self.done_before, self.first = 0, None
            return None
        resumed = _RESUMED.search(line)
        if resumed:
            self.done_before = int(resumed.group(1)) * self.steps
            return None
        found = _STEP.search(line)
        if not found:
            return None
        epoch, step, per_epoch = (int(found.group(i)) for i in (1, 2, 3))
        rate = float(found.group(5))
        self.steps = self.steps or per_epoch
        done = (epoch - 1) * per_epoch + step
        total = self.epochs * per_epoch
        now = self.clock()
        if self.first is None:
            self.first = (now, done)
            eta = ""
        else:
            started, at = self.first
            per_step = (now - started) / max(done - at, 1)
            eta = f", ETA {duration(per_step * (total - done))}"
        return (
            f"  training: epoch {epoch}/{self.epochs}, step {step}/{per_epoch}"
            f" ({100 * done / max(total, 1):.0f}%), {rate:.1f} samples/s{eta}"
        )
