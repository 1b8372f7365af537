"""The training job's profiler: what SageMaker Debugger's profiler records, recorded by the job.

Debugger is closed to new customers, so ``train.py`` records what its profiler did, with the
course's settings: system metrics every 500 ms (CPU per core, memory, GPU when present, disk
I/O; psutil) and a framework profile (``torch.profiler``) of a few steps (the course's
``FrameworkProfile(start_step=5, num_steps=10)``), plus each training step's time and how much of
it went to waiting for the batch. Everything goes under the job's output data folder in
``profiler-output/`` (in ``output.tar.gz``), where the pipeline's rule evaluation reads it
(:mod:`include.pipeline.profiler_rules`):

- ``system/system-metrics.jsonl``: one record per metric and sample, Debugger's system-metric
  record shape (``Timestamp``, ``Type``, ``Name``, ``Dimension``, ``Value``),
- ``framework/steps.json``: :class:`StepTimeline` (step times, batch waits, when the job started,
  the first step started and training ended, the device),
- ``framework/pytorch-profile.json``: the profiled steps' operators by self CPU time.

Standard library at the top: the Airflow side imports this module for the file names and
readers; torch and psutil are imported where the job uses them.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PROFILER_DIR = "profiler-output"
SYSTEM_FILE = f"{PROFILER_DIR}/system/system-metrics.jsonl"
STEPS_FILE = f"{PROFILER_DIR}/framework/steps.json"
FRAMEWORK_FILE = f"{PROFILER_DIR}/framework/pytorch-profile.json"
# The course's ProfilerConfig: system_monitor_interval_millis=500, and
# FrameworkProfile(start_step=5, num_steps=10).
INTERVAL_MS = 500
PROFILE_START_STEP = 5
PROFILE_NUM_STEPS = 10
TOP_OPERATORS = 25


@dataclass
class StepTimeline:
    """Each training step's wall time and the part of it spent waiting for its batch.

    ``steps[i]`` is step ``i + 1`` (counted over epochs); ``job_start`` is the process's start
    (epoch seconds), so ``first_step_start - job_start`` is the initialisation time Debugger's
    MaxInitializationTime rule judges. ``profiled_steps``: the steps ``torch.profiler`` ran on
    (slower by its own overhead; the step-outlier rule leaves them out).
    """

    device: str = "cpu"
    job_start: float = 0.0
    first_step_start: float | None = None
    training_end: float | None = None
    step_seconds: list[float] = field(default_factory=list)
    wait_seconds: list[float] = field(default_factory=list)
    profiled_steps: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict, name: str = STEPS_FILE) -> StepTimeline:
        if not isinstance(doc, dict):
            raise ValueError(f"{name}: not an object")
        known = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        timeline = cls(**known)
        if len(timeline.step_seconds) != len(timeline.wait_seconds):
            raise ValueError(
                f"{name}: {len(timeline.step_seconds)} step times but "
                f"{len(timeline.wait_seconds)} wait times"
            )
        return timeline


def _process_start() -> float:
    """When this process started (epoch seconds): psutil's, else now."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - no psutil, or no /proc: the job's own start will do
        return time.time()


class SystemMonitor:
    """Samples system metrics every ``interval_ms`` on a daemon thread into a JSON-lines file.

    Each sample costs about a millisecond of one core (psutil reads /proc), so the 500 ms
    interval takes well under 1% of the training loop.
    """

    def __init__(self, path: Path, interval_ms: int = INTERVAL_MS):
        self.path = path
        self.interval = interval_ms / 1000
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0

    def start(self) -> bool:
        try:
            import psutil  # noqa: F401
        except ImportError:
            print("profiler: psutil is not installed; no system metrics", flush=True)
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="system-monitor", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import psutil

        gpu = _gpu_sampler()
        psutil.cpu_percent(percpu=True)  # the first call only sets the baseline
        last_io = psutil.disk_io_counters()
        with self.path.open("w", encoding="utf-8") as out:
            while not self._stop.wait(self.interval):
                now = time.time()
                records = [
                    ("cpu", f"cpu{i}", "CPUUtilization", v)
                    for i, v in enumerate(psutil.cpu_percent(percpu=True))
                ]
                records.append(
                    ("memory", "memory", "MemoryUsedPercent", psutil.virtual_memory().percent)
                )
                io = psutil.disk_io_counters()
                if io is not None and last_io is not None:
                    records.append(("io", "disk", "ReadBytes", io.read_bytes - last_io.read_bytes))
                    records.append(
                        ("io", "disk", "WriteBytes", io.write_bytes - last_io.write_bytes)
                    )
                last_io = io
                records.extend(gpu())
                for kind, name, dimension, value in records:
                    out.write(
                        json.dumps(
                            {
                                "Timestamp": round(now, 3),
                                "Type": kind,
                                "Name": name,
                                "Dimension": dimension,
                                "Value": round(float(value), 3),
                            }
                        )
                        + "\n"
                    )
                out.flush()
                self.samples += 1


def _gpu_sampler():
    """A function returning the GPUs' records of one sample: utilisation (NVML, through
    ``torch.cuda.utilization``) and memory in use; none without a GPU."""
    try:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001
        count = 0

    def sample() -> list[tuple]:
        records = []
        for i in range(count):
            with contextlib.suppress(Exception):  # no NVML bindings: memory only
                records.append(("gpu", f"gpu{i}", "GPUUtilization", torch.cuda.utilization(i)))
            free, total = torch.cuda.mem_get_info(i)
            records.append(("gpu", f"gpu{i}", "GPUMemoryUtilization", 100 * (total - free) / total))
        return records

    return sample


class Profiler:
    """Step timing, the system monitor and ``torch.profiler`` around a training loop.

    ``train.py`` calls :meth:`batch_ready` and :meth:`step_end` in its loop (two clock reads a
    step) and :meth:`close` at the end, which writes the files under ``output_dir``.
    """

    def __init__(
        self,
        output_dir: Path | None,
        device: str,
        *,
        interval_ms: int = INTERVAL_MS,
        start_step: int = PROFILE_START_STEP,
        num_steps: int = PROFILE_NUM_STEPS,
    ):
        self.output_dir = output_dir
        self.timeline = StepTimeline(device=device, job_start=_process_start())
        self.start_step, self.num_steps = start_step, num_steps
        self.monitor = (
            SystemMonitor(output_dir / SYSTEM_FILE, interval_ms)
            if output_dir is not None and interval_ms > 0
            else None
        )
        self._torch_profile = None
        self._operators: list[dict] = []
        self._step_start = 0.0
        self._ready = 0.0
        if self.monitor is not None:
            self.monitor.start()

    @property
    def step(self) -> int:
        """The steps finished so far."""
        return len(self.timeline.step_seconds)

    def step_begin(self) -> None:
        self._step_start = time.perf_counter()
        if self.timeline.first_step_start is None:
            self.timeline.first_step_start = time.time()
        if (
            self.num_steps > 0
            and self.step + 1 == self.start_step
            and self._torch_profile is None
            and not self.timeline.profiled_steps
        ):
            self._start_torch_profile()

    def batch_ready(self) -> None:
        self._ready = time.perf_counter()

    def step_end(self) -> None:
        end = time.perf_counter()
        self.timeline.step_seconds.append(round(end - self._step_start, 6))
        self.timeline.wait_seconds.append(round(max(self._ready - self._step_start, 0.0), 6))
        if self._torch_profile is not None:
            self.timeline.profiled_steps.append(self.step)
            if self.step + 1 >= self.start_step + self.num_steps:
                self._stop_torch_profile()

    def _start_torch_profile(self) -> None:
        import torch.profiler as tp

        activities = [tp.ProfilerActivity.CPU]
        if self.timeline.device.startswith("cuda"):
            activities.append(tp.ProfilerActivity.CUDA)
        self._torch_profile = tp.profile(activities=activities, record_shapes=False)
        self._torch_profile.start()

    def _stop_torch_profile(self) -> None:
        prof, self._torch_profile = self._torch_profile, None
        prof.stop()
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        self._operators = [
            {
                "name": e.key,
                "calls": e.count,
                "self_cpu_time_us": round(e.self_cpu_time_total, 1),
                "cpu_time_total_us": round(e.cpu_time_total, 1),
                "self_device_time_us": round(getattr(e, "self_device_time_total", 0.0), 1),
            }
            for e in events[:TOP_OPERATORS]
        ]

    def close(self) -> None:
        """Stop sampling and write the profile (a no-op without an output folder)."""
        if self._torch_profile is not None:
            self._stop_torch_profile()
        if self.monitor is not None:
            self.monitor.stop()
        self.timeline.training_end = time.time()
        if self.output_dir is None:
            return
        steps = self.output_dir / STEPS_FILE
        steps.parent.mkdir(parents=True, exist_ok=True)
        steps.write_text(json.dumps(self.timeline.to_dict()))
        profiled = self.timeline.profiled_steps
        (self.output_dir / FRAMEWORK_FILE).write_text(
            json.dumps(
                {
                    "profiled_steps": profiled,
                    "seconds": round(sum(self.timeline.step_seconds[s - 1] for s in profiled), 6),
                    "operators": self._operators,
                },
                indent=1,
            )
        )


def read_system_metrics(text: str, name: str = SYSTEM_FILE) -> list[dict]:
    """The system-metric records of ``system-metrics.jsonl`` (a bad line names its number)."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            float(record["Value"]), float(record["Timestamp"]), str(record["Dimension"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{name}: line {number} is not a system-metric record: {exc}"
            ) from None
        records.append(record)
    return records
