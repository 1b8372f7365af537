"""The local job runner: CreateProcessingJob / CreateTrainingJob requests run on this machine.

It keeps SageMaker's container contract so ``include/jobs`` scripts run unchanged: inputs are
copied from the lake into ``/opt/ml/...`` (sharded by object across hosts for
``ShardedByS3Key``), one process runs per host, outputs are copied back when the job ends, and the
result has the shape of the Describe call. Every ``/opt/ml`` path in the entrypoint, arguments and
environment maps to ``<lake>/_jobs/<JobName>/<host>/opt/ml``, wiped when the job starts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from include.pipeline.core import clarify_container
from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.requests import images
from include.pipeline.settings import REPO_ROOT
from include.pipeline.targets.local import archives
from include.pipeline.targets.local.lake import atomic_copy, list_files, resolve
from include.pipeline.targets.local.names import safe_join, validate
from include.pipeline.targets.local.sagemaker import warm

ACCOUNT = "000000000000"
FAILURE_REASON_MAX = 1024  # AWS's FailureReason length limit
TAIL_LINES = 20
JOBS_SOURCE = REPO_ROOT / "include" / "jobs"

# Image repository name fragment -> local runtime. "python": the entry script runs with this
# interpreter; "clarify": the local Clarify-compatible processor module.
RUNTIMES = (
    ("sagemaker-clarify-processing", "clarify"),
    ("sagemaker-scikit-learn", "python"),
    ("pytorch-training", "python"),
    ("pytorch-inference", "python"),
    (
        images.BLAZINGTEXT_REPOSITORY,
        images.BLAZINGTEXT_REPOSITORY,
    ),  # the built-in, named by its image
)
# Built-in algorithms: runtime -> (the local module that implements the algorithm's container,
# the metric definitions SageMaker predefines for it: requests for built-ins carry none).
BUILTIN_ALGORITHMS = {
    images.BLAZINGTEXT_REPOSITORY: (
        "include.pipeline.targets.local.sagemaker.blazingtext",
        [
            {"Name": "train:accuracy", "Regex": r"#train_accuracy: ([0-9.]+)"},
            {"Name": "validation:accuracy", "Regex": r"#validation_accuracy: ([0-9.]+)"},
        ],
    ),
}
CLARIFY_COMMAND = (
    "-m",
    "include.pipeline.targets.local.clarify.processor",
    "--analysis-config",
    clarify_container.CONFIG_PATH,
    "--dataset",
    clarify_container.DATA_INPUT_DIR,
    "--output",
    clarify_container.OUTPUT_DIR,
)
_PYTHON = re.compile(r"^(?:.*/)?python(?:3(?:\.\d+)?)?$")
_OPT_ML = re.compile(r"(?<![\w./-])/opt/ml(?=/|\b|$)")

Log = Callable[[str], None]


def runtime_for(image_uri: str) -> str:
    """The local runtime of an image; ValueError naming an image with none."""
    for fragment, runtime in RUNTIMES:
        if f"/{fragment}:" in image_uri or image_uri.split(":")[0].endswith(fragment):
            return runtime
    known = ", ".join(f for f, _ in RUNTIMES)
    raise ValueError(f"image {image_uri!r} has no local runtime (known images: {known})")


def stage_code(code_uri: str, lake: Path, source: Path = JOBS_SOURCE) -> Path:
    """Copy the job scripts (``include/jobs``) to ``code_uri`` in the lake, as the aws target
    uploads them to S3; what a processing job's ``code`` input then points at."""
    target = resolve(code_uri, lake)
    for f in sorted(source.glob("*")):
        if f.is_file() and f.suffix in (".py", ".txt"):
            atomic_copy(f, target / f.name)
    return target


# The jobs this process runs, by name: what the Stop*Job calls reach (processing, training,
# tuning, transform and AutoML jobs alike: anything with a ``stop()``).
_RUNNING: dict[str, Stoppable] = {}
# Reentrant: Airflow calls on_kill (a stop) from its SIGTERM handler, in the thread that may be
# holding the lock while it starts or ends a job.
_RUNNING_LOCK = threading.RLock()
STOPPED_REASON = "stopped: the job was stopped (Stop*Job) before it ended"


class Stoppable(Protocol):
    def stop(self) -> None: ...


class StopSignal:
    """The stop of a job that runs in this process (tuning, transform): ``stop()`` sets
    ``event``, which the engine checks between its steps, then runs ``on_stop`` (which ends
    what runs now, e.g. the current trial's processes)."""

    def __init__(self, on_stop: Callable[[], None] | None = None):
        self.event = threading.Event()
        self._on_stop = on_stop

    def stop(self) -> None:
        self.event.set()
        if self._on_stop is not None:
            self._on_stop()

    def is_set(self) -> bool:
        return self.event.is_set()


@contextmanager
def running(name: str, job: Stoppable) -> Iterator[Stoppable]:
    """Job ``name`` can be stopped (:func:`stop_job`) while the block runs."""
    with _RUNNING_LOCK:
        _RUNNING[name] = job
    try:
        yield job
    finally:
        with _RUNNING_LOCK:
            if _RUNNING.get(name) is job:
                del _RUNNING[name]


def stop_job(name: str) -> bool:
    """Stop*Job of a job this process runs: its processes are killed and it ends ``Stopped``
    (no outputs uploaded). False when no such job runs (it ended)."""
    with _RUNNING_LOCK:
        job = _RUNNING.get(name)
    if job is None:
        return False
    job.stop()
    return True


@dataclass(frozen=True)
class Process:
    """One host's process of a job as the runner is about to start it."""

    job: str
    kind: str  # "processing", "training"; "" for a process of no job request
    image: str
    host: str
    folder: Path  # the host's folder of the job, wiped when the job starts
    argv: list[str]
    env: dict[str, str]
    cwd: Path


# lake -> how the processes of the jobs over it start (set by :func:`process_setup`).
_SETUP: dict[Path, Callable[[Process], Process]] = {}


@contextmanager
def process_setup(lake: Path, setup: Callable[[Process], Process]) -> Iterator[None]:
    """While the block runs, each process of a job over ``lake`` starts as ``setup`` returns it:
    how a test harness runs a job in its image's environment. The local target sets none."""
    key = Path(lake).resolve()
    _SETUP[key] = setup
    try:
        yield
    finally:
        _SETUP.pop(key, None)


class _Job:
    """Folders and process plumbing shared by processing and training jobs."""

    def __init__(
        self,
        name: str,
        hosts: list[str],
        lake: Path,
        log: Log,
        stopped: threading.Event | None = None,
        *,
        kind: str = "",
        image: str = "",
    ):
        self.name, self.hosts, self.lake, self.log = name, hosts, Path(lake), log
        self.kind, self.image = kind, image
        self.root = safe_join(self.lake / "_jobs", name)
        self._lock = threading.RLock()  # reentrant: see _RUNNING_LOCK
        self.lines: list[str] = []
        # Set by stop(), or shared with the job this one runs for (a tuning job's trial).
        self.stopped = stopped if stopped is not None else threading.Event()
        self._procs: list = []

    def stop(self) -> None:
        self.log(f"[{self.name}] stopping")
        with self._lock:
            self.stopped.set()
            procs = list(self._procs)
        for proc in procs:
            proc.kill()

    def reset(self) -> None:
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)
        for host in self.hosts:
            (self.host_root(host) / "opt" / "ml").mkdir(parents=True, exist_ok=True)

    def host_root(self, host: str) -> Path:
        return self.root / host

    def local(self, container_path: str, host: str) -> Path:
        if not container_path.startswith("/opt/ml"):
            raise ValueError(f"container path {container_path!r} is not under /opt/ml")
        return self.host_root(host) / container_path.lstrip("/")

    def map_text(self, text: str, host: str) -> str:
        """Every ``/opt/ml`` path inside a string, mapped to the host's folder."""
        return _OPT_ML.sub(str(self.host_root(host) / "opt" / "ml"), str(text))

    def write_json(self, container_path: str, host: str, data: object) -> None:
        atomic_write_bytes(self.local(container_path, host), json.dumps(data, indent=2).encode())

    def run(
        self,
        commands: dict[str, tuple[list[str], dict, Path]],
        timeout: float | None,
        handle: Stoppable | None = None,
    ):
        """Start one process per host, stream their output line by line; returns
        ``{host: (exit code, last lines)}``. ``handle``: what :func:`stop_job` calls instead
        of this job's ``stop`` (one that does more first)."""
        procs, readers, tails = {}, [], {}  # type: tuple[dict, list, dict[str, deque]]
        with running(self.name, handle or self):
            return self._run(commands, timeout, procs, readers, tails)

    def _set_up(self, host: str, argv: list[str], env: dict, cwd: Path) -> tuple[list, dict, Path]:
        setup = _SETUP.get(self.lake.resolve())
        if setup is None:
            return argv, env, cwd
        process = Process(
            self.name, self.kind, self.image, host, self.host_root(host), argv, env, cwd
        )
        process = setup(process)
        return process.argv, process.env, process.cwd

    def _run(self, commands, timeout, procs, readers, tails):
        for host, (argv, env, cwd) in commands.items():
            argv, env, cwd = self._set_up(host, argv, env, cwd)
            self.log(f"[{self.name}] {host}: {' '.join(argv)}")
            with self._lock:  # stop() kills what was started before it, and nothing starts after
                if self.stopped.is_set():
                    break
                procs[host] = warm.popen(argv, env, cwd)
                self._procs.append(procs[host])
            if self.stopped.is_set():  # stopped while it started (a signal handler, this thread)
                procs[host].kill()
            tails[host] = deque(maxlen=TAIL_LINES)
            prefix = f"[{host}] " if len(commands) > 1 else ""
            reader = threading.Thread(
                target=self._pump, args=(procs[host], prefix, tails[host]), daemon=True
            )
            reader.start()
            readers.append(reader)
        deadline = time.monotonic() + timeout if timeout else None
        codes = {}
        for host, proc in procs.items():
            try:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                codes[host] = proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                for p in procs.values():
                    p.kill()
                codes[host] = -9
                tails[host].append(f"stopped: MaxRuntimeInSeconds ({timeout:g} s) exceeded")
        for proc in procs.values():
            proc.wait()
        for reader in readers:
            reader.join()
        if self.stopped.is_set():
            return {host: (-9, [STOPPED_REASON]) for host in commands}
        return {host: (codes[host], list(tails[host])) for host in procs}

    def _pump(self, proc: subprocess.Popen | warm.WarmProcess, prefix: str, tail: deque) -> None:
        assert proc.stdout is not None  # both kinds of process are started with a stdout pipe
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            with self._lock:
                self.lines.append(line)
                self.log(prefix + line)
        proc.stdout.close()


def run_process(
    name: str,
    argv: list[str],
    *,
    lake: Path,
    log: Log,
    cwd: Path,
    env: dict[str, str],
    wrap: Callable[[Stoppable], Stoppable] | None = None,
) -> tuple[int, list[str], bool]:
    """Run job ``name`` as one process of its own (stopped by :func:`stop_job`, as a processing
    job is): its exit code, last lines of output, and whether it was stopped. ``wrap``: builds,
    from the process's stop, the stop that :func:`stop_job` calls."""
    job = _Job(name, ["algo-1"], lake, log)
    handle = wrap(job) if wrap else None
    code, tail = job.run({"algo-1": (argv, env, cwd)}, None, handle)["algo-1"]
    return code, tail, job.stopped.is_set()


def _status(job: _Job, reason: str | None) -> str:
    """Completed, Failed, or Stopped (a Stop*Job call killed it)."""
    if job.stopped.is_set():
        return "Stopped"
    return "Completed" if reason is None else "Failed"


def _failure(results: dict) -> str | None:
    failed = {h: r for h, r in results.items() if r[0] != 0}
    if not failed:
        return None
    host, (code, tail) = next(iter(failed.items()))
    header = f"AlgorithmError: {host} exited with code {code}: "
    return header + "\n".join(tail)[-(FAILURE_REASON_MAX - len(header)) :]


def _shard(s3: dict, host_index: int, hosts: int) -> slice:
    """Which of an S3 input's objects one host gets: every ``hosts``-th one when the input is
    ``ShardedByS3Key``, else all of them (``FullyReplicated``)."""
    if s3.get("S3DataDistributionType") == "ShardedByS3Key":
        return slice(host_index, None, hosts)
    return slice(None)


def _copy_down(
    uri: str, destination: Path, lake: Path, *, shard: slice = slice(None), what: str
) -> int:
    """Copy the objects under ``uri`` (the ``shard`` of them) into ``destination``."""
    root = resolve(uri, lake)
    files = list_files(uri, lake)
    if not files:
        raise ValueError(f"{what}: nothing at {uri} ({root})")
    files = files[shard]
    destination.mkdir(parents=True, exist_ok=True)
    for f in files:
        rel = f.name if root.is_file() else f.relative_to(root)
        atomic_copy(f, destination / rel)
    return len(files)


def _copy_up(source: Path, uri: str, lake: Path) -> int:
    files = [p for p in source.rglob("*") if p.is_file()] if source.exists() else []
    target = resolve(uri, lake)
    for f in files:
        atomic_copy(f, target / f.relative_to(source))
    return len(files)


def _python_env(job: _Job, host: str, extra: dict[str, str], code_dir: Path | None) -> dict:
    env = dict(os.environ)
    env.update({k: job.map_text(v, host) for k, v in extra.items()})
    paths = [str(code_dir)] if code_dir else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- processing


def _processing_command(job: _Job, app: dict, host: str) -> tuple[list[str], Path]:
    runtime = runtime_for(app.get("ImageUri", ""))
    arguments = [job.map_text(a, host) for a in app.get("ContainerArguments", [])]
    if runtime == "clarify":
        argv = [sys.executable, *(job.map_text(a, host) for a in CLARIFY_COMMAND)]
        return argv + arguments, REPO_ROOT
    entry = [job.map_text(a, host) for a in app.get("ContainerEntrypoint", [])]
    if not entry or not _PYTHON.match(entry[0]):
        raise ValueError(
            f"image {app.get('ImageUri')!r}: the local runtime runs python entrypoints, got {entry}"
        )
    script = next((Path(a) for a in entry[1:] if a.endswith(".py")), None)
    cwd = script.parent if script else job.host_root(host)
    return [sys.executable, *entry[1:], *arguments], cwd


def run_processing_job(request: dict, *, lake: Path, log: Log = print) -> dict:
    """Run a CreateProcessingJob request; returns a DescribeProcessingJob-shaped dict.

    A failing script gives ``ProcessingJobStatus: Failed`` with the last lines of its output as
    ``FailureReason`` (never an exception); an invalid request raises ValueError.
    """
    name = validate(
        "sagemaker",
        "CreateProcessingJob",
        "ProcessingJobName",
        request.get("ProcessingJobName", ""),
    )
    cluster = request.get("ProcessingResources", {}).get("ClusterConfig", {})
    count = int(cluster.get("InstanceCount", 1))
    if count < 1:
        raise ValueError(f"{name}: InstanceCount must be at least 1, got {count}")
    hosts = [f"algo-{i + 1}" for i in range(count)]
    app = request.get("AppSpecification") or {}
    runtime_for(app.get("ImageUri", ""))  # fail fast on an image with no local runtime
    job = _Job(name, hosts, lake, log, kind="processing", image=app.get("ImageUri", ""))
    created = _now()
    job.reset()

    commands = {}
    for index, host in enumerate(hosts):
        for item in request.get("ProcessingInputs", []):
            s3 = item.get("S3Input")
            if not s3:
                raise ValueError(f"{name}: input {item.get('InputName')!r} is not an S3Input")
            if s3.get("S3DataType", "S3Prefix") != "S3Prefix":
                raise ValueError(f"{name}: input {item['InputName']!r}: only S3Prefix is supported")
            _copy_down(
                s3["S3Uri"],
                job.local(s3["LocalPath"], host),
                job.lake,
                shard=_shard(s3, index, count),
                what=f"{name}: input {item['InputName']!r}",
            )
        outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
        for item in outputs:
            job.local(item["S3Output"]["LocalPath"], host).mkdir(parents=True, exist_ok=True)
        job.write_json(
            "/opt/ml/config/resourceconfig.json", host, {"current_host": host, "hosts": hosts}
        )
        job.write_json("/opt/ml/config/processingjobconfig.json", host, request)
        argv, cwd = _processing_command(job, app, host)
        env = {
            **request.get("Environment", {}),
            "SM_CURRENT_HOST": host,
            "SM_HOSTS": json.dumps(hosts),
        }
        commands[host] = (argv, _python_env(job, host, env, cwd), cwd)

    started = _now()
    timeout = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
    reason = _failure(job.run(commands, timeout))
    if reason is None:
        for host in hosts:
            for item in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
                out = item["S3Output"]
                _copy_up(job.local(out["LocalPath"], host), out["S3Uri"], job.lake)
    ended = _now()
    region = _region(request.get("Environment", {}))
    describe = {
        "ProcessingJobName": name,
        "ProcessingJobArn": f"arn:aws:sagemaker:{region}:{ACCOUNT}:processing-job/{name.lower()}",
        "ProcessingInputs": request.get("ProcessingInputs", []),
        "ProcessingOutputConfig": request.get("ProcessingOutputConfig", {"Outputs": []}),
        "ProcessingResources": request.get("ProcessingResources", {}),
        "StoppingCondition": request.get("StoppingCondition", {}),
        "AppSpecification": app,
        "Environment": request.get("Environment", {}),
        "RoleArn": request.get("RoleArn", ""),
        "ProcessingJobStatus": _status(job, reason),
        "CreationTime": created,
        "ProcessingStartTime": started,
        "ProcessingEndTime": ended,
        "LastModifiedTime": ended,
    }
    if reason is not None:
        describe["FailureReason"] = reason
        describe["ExitMessage"] = reason
    log(f"[{name}] {describe['ProcessingJobStatus']}")
    return describe


def _region(env: dict) -> str:
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"


# ---------------------------------------------------------------- training


def _decode(value: str) -> object:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _cli_value(value: object) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _channel_env(channel: str) -> list[str]:
    names = [f"SM_CHANNEL_{channel.upper()}"]
    safe = f"SM_CHANNEL_{re.sub(r'[^A-Za-z0-9_]', '_', channel).upper()}"
    return names if safe == names[0] else [*names, safe]


def _pack(source: Path, target: Path) -> None:
    """``source`` folder as a .tar.gz at ``target`` (atomically)."""
    atomic_write_bytes(target, archives.folder_tar_gz(source))


def _local_profile(output_data: Path):
    """What train.py's profiler left in the job's output data folder (None: nothing)."""
    from include.jobs.profiler import FRAMEWORK_FILE, STEPS_FILE, SYSTEM_FILE
    from include.pipeline.profiler_rules import profile_from_files

    files = {
        name: (output_data / name).read_bytes()
        for name in (SYSTEM_FILE, STEPS_FILE, FRAMEWORK_FILE)
        if (output_data / name).is_file()
    }
    return profile_from_files(files, str(output_data))


def _rule_statuses(
    rule_configs: list[dict], series: dict[str, list[float]], output_data: Path | None = None
) -> list[dict]:
    try:
        from include.pipeline.training_rules import evaluate_rules
    except ImportError as exc:
        return [
            {
                "RuleConfigurationName": r.get("RuleConfigurationName", ""),
                "RuleEvaluationStatus": "Error",
                "StatusDetails": f"local rule evaluation unavailable: {exc}",
                "LastModifiedTime": _now(),
            }
            for r in rule_configs
        ]
    profile = _local_profile(output_data) if output_data is not None else None
    return evaluate_rules(rule_configs, series, profile=profile)


def _metrics(definitions: list[dict], lines: list[str]) -> dict[str, list[float]]:
    series: dict[str, list[float]] = {d["Name"]: [] for d in definitions}
    patterns = [(d["Name"], re.compile(d["Regex"])) for d in definitions]
    for line in lines:
        for metric, pattern in patterns:
            match = pattern.search(line)
            if match:
                try:
                    series[metric].append(float(match.group(1)))
                except (IndexError, ValueError):
                    continue
    return series


def run_training_job(
    request: dict, *, lake: Path, log: Log = print, stopped: threading.Event | None = None
) -> dict:
    """Run a CreateTrainingJob request in script mode, like the SageMaker PyTorch container, or
    a built-in algorithm's module (:data:`BUILTIN_ALGORITHMS`); returns a DescribeTrainingJob-shaped
    dict (plus ``LocalMetricSeries``). ``stopped``: the stop of the job this one runs for (a
    tuning job's): once set, the job starts no process and ends Stopped."""
    name = validate(
        "sagemaker", "CreateTrainingJob", "TrainingJobName", request.get("TrainingJobName", "")
    )
    algo = request.get("AlgorithmSpecification") or {}
    image = algo.get("TrainingImage", "")
    runtime = runtime_for(image)
    builtin, builtin_metrics = BUILTIN_ALGORITHMS.get(runtime, (None, []))
    if runtime != "python" and builtin is None:
        raise ValueError(f"{name}: training image {image!r} has no local script-mode runtime")
    raw_hps = dict(request.get("HyperParameters") or {})
    program = _decode(raw_hps.get("sagemaker_program", ""))
    submit = _decode(raw_hps.get("sagemaker_submit_directory", ""))
    if builtin is None and (not program or not submit):
        raise ValueError(
            f"{name}: HyperParameters need sagemaker_program and sagemaker_submit_directory"
        )
    count = int(request.get("ResourceConfig", {}).get("InstanceCount", 1))
    hosts = [f"algo-{i + 1}" for i in range(count)]
    job = _Job(name, hosts, lake, log, stopped, kind="training", image=image)
    created = _now()
    job.reset()
    hps = {k: _decode(v) for k, v in raw_hps.items() if not k.startswith("sagemaker_")}
    user_args = [part for k, v in hps.items() for part in (f"--{k}", _cli_value(v))]
    channels = request.get("InputDataConfig", [])
    checkpoint = request.get("CheckpointConfig")
    checkpoint_path = (checkpoint or {}).get("LocalPath", "/opt/ml/checkpoints")
    archive = resolve(str(submit), job.lake) if builtin is None else None
    if archive is not None and not archive.is_file():
        raise ValueError(f"{name}: sagemaker_submit_directory {submit!r} not found ({archive})")

    commands = {}
    for index, host in enumerate(hosts):
        code = job.local("/opt/ml/code", host)
        code.mkdir(parents=True, exist_ok=True)
        if archive is not None:
            archives.extract(archive, code)
        if archive is not None and not (code / str(program)).is_file():
            raise ValueError(f"{name}: {program!r} is not in {submit}")
        env = {
            "SM_MODEL_DIR": "/opt/ml/model",
            "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
            "SM_OUTPUT_DIR": "/opt/ml/output",
            "SM_INPUT_DIR": "/opt/ml/input",
            "SM_INPUT_CONFIG_DIR": "/opt/ml/input/config",
            "SM_CHANNELS": json.dumps([c["ChannelName"] for c in channels]),
            "SM_HPS": json.dumps(hps),
            "SM_USER_ARGS": json.dumps(user_args),
            "SM_CURRENT_HOST": host,
            "SM_HOSTS": json.dumps(hosts),
            "SM_NUM_GPUS": "0",
            "SM_NUM_CPUS": str(os.cpu_count() or 1),
            "SM_MODULE_DIR": str(submit),
            "SM_USER_ENTRY_POINT": str(program),
            "SM_TRAINING_ENV": json.dumps({"job_name": name, "hosts": hosts, "current_host": host}),
            # Where CheckpointConfig.LocalPath lands in this job's folder (synced with its S3Uri).
            **({"SM_CHECKPOINT_DIR": checkpoint_path} if checkpoint else {}),
            **(request.get("Environment") or {}),
        }
        for channel in channels:
            cname = channel["ChannelName"]
            s3 = channel["DataSource"]["S3DataSource"]
            folder = f"/opt/ml/input/data/{cname}"
            _copy_down(
                s3["S3Uri"],
                job.local(folder, host),
                job.lake,
                shard=_shard(s3, index, count),
                what=f"{name}: channel {cname!r}",
            )
            env.update(dict.fromkeys(_channel_env(cname), folder))
        if checkpoint and list_files(checkpoint["S3Uri"], job.lake):
            _copy_down(
                checkpoint["S3Uri"],
                job.local(checkpoint_path, host),
                job.lake,
                what=f"{name}: checkpoints",
            )
        for folder in ("/opt/ml/model", "/opt/ml/output/data", checkpoint_path):
            job.local(folder, host).mkdir(parents=True, exist_ok=True)
        job.write_json("/opt/ml/input/config/hyperparameters.json", host, raw_hps)
        job.write_json(
            "/opt/ml/input/config/resourceconfig.json", host, {"current_host": host, "hosts": hosts}
        )
        job.write_json(
            "/opt/ml/input/config/inputdataconfig.json",
            host,
            {c["ChannelName"]: {k: v for k, v in c.items() if k != "DataSource"} for c in channels},
        )
        if builtin is None:
            argv = [sys.executable, str(program), *user_args]
            commands[host] = (argv, _python_env(job, host, env, code), code)
        else:  # the algorithm reads /opt/ml/input/config/hyperparameters.json, like its image
            argv = [sys.executable, "-m", builtin]
            # A fresh interpreter, as its own image would be: fastText training forked from the
            # warm one stopped with "Encountered NaN" on its test's toy data (cause not found).
            builtin_env = _python_env(job, host, env, REPO_ROOT) | {warm.SWITCH: "0"}
            commands[host] = (argv, builtin_env, REPO_ROOT)

    started = _now()
    timeout = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
    reason = _failure(job.run(commands, timeout))
    if checkpoint:
        _copy_up(job.local(checkpoint_path, hosts[0]), checkpoint["S3Uri"], job.lake)

    output = request.get("OutputDataConfig", {}).get("S3OutputPath", "").rstrip("/")
    prefix = f"{output}/{name}/output"
    series = _metrics(algo.get("MetricDefinitions") or builtin_metrics, job.lines)
    ended = _now()
    describe = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{_region(request.get('Environment') or {})}:"
        f"{ACCOUNT}:training-job/{name.lower()}",
        "TrainingJobStatus": _status(job, reason),
        "SecondaryStatus": _status(job, reason),
        "HyperParameters": raw_hps,
        "AlgorithmSpecification": algo,
        "RoleArn": request.get("RoleArn", ""),
        "InputDataConfig": channels,
        "OutputDataConfig": request.get("OutputDataConfig", {}),
        "ResourceConfig": request.get("ResourceConfig", {}),
        "StoppingCondition": request.get("StoppingCondition", {}),
        "CreationTime": created,
        "TrainingStartTime": started,
        "TrainingEndTime": ended,
        "LastModifiedTime": ended,
        "TrainingTimeInSeconds": int((ended - started).total_seconds()),
        "BillableTimeInSeconds": int((ended - started).total_seconds()),
        "FinalMetricDataList": [
            {"MetricName": k, "Value": v[-1], "Timestamp": ended} for k, v in series.items() if v
        ],
        "LocalMetricSeries": series,
    }
    if checkpoint:
        describe["CheckpointConfig"] = checkpoint
    if reason is None:
        model_tar = f"{prefix}/model.tar.gz"
        _pack(job.local("/opt/ml/model", hosts[0]), resolve(model_tar, job.lake))
        _pack(
            job.local("/opt/ml/output/data", hosts[0]), resolve(f"{prefix}/output.tar.gz", job.lake)
        )
        describe["ModelArtifacts"] = {"S3ModelArtifacts": model_tar}
    else:
        describe["FailureReason"] = reason
    if output:
        atomic_write_bytes(
            resolve(f"{prefix}/metrics.json", job.lake), json.dumps(series, indent=2).encode()
        )
    if request.get("DebugRuleConfigurations"):
        describe["DebugRuleConfigurations"] = request["DebugRuleConfigurations"]
        describe["DebugRuleEvaluationStatuses"] = _rule_statuses(
            request["DebugRuleConfigurations"], series
        )
    if request.get("ProfilerRuleConfigurations"):
        describe["ProfilerRuleConfigurations"] = request["ProfilerRuleConfigurations"]
        describe["ProfilerRuleEvaluationStatuses"] = _rule_statuses(
            request["ProfilerRuleConfigurations"],
            series,
            job.local("/opt/ml/output/data", hosts[0]),
        )
    log(f"[{name}] {describe['TrainingJobStatus']}")
    return describe
