"""``make demo``: run the main DAG once on this machine and print its run summary.

Uses Airflow's own ``dag.test()`` (a real DAG run in the metadata database, every task executed
by the task runner), then reads the summary the run wrote to the lake. The terminal gets one
line per finished task and the training's progress with an ETA; Airflow's full task logs go to
a file that ends up next to the summary (``demo.log``). The target's ``preflight`` runs first,
so a conflict known at the start (another lake's endpoint server on the port) fails at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from include.pipeline.documents.summary import render_text
from include.pipeline.layout import RunLayout
from include.pipeline.run_progress import TrainingProgress, task_line

DAG_ID = "reviews_pipeline"
DEMO_CONF = {"model_approval": "Approved", "traffic_wait_seconds": 5}


def load_dag(dag_id: str = DAG_ID):
    """The DAG object from its file in ``dags/`` (the file is named after the DAG id)."""
    import importlib.util

    path = pipeline_settings.REPO_ROOT / "dags" / f"{dag_id}.py"
    spec = importlib.util.spec_from_file_location(f"dags_{dag_id}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


class _Watcher(threading.Thread):
    """Prints finished tasks (from the metadata database) and training progress (from the full
    log) to the terminal while ``dag.test()`` runs in the main thread."""

    def __init__(self, terminal, log_path: Path, since: datetime, interval: float = 1.0):
        super().__init__(daemon=True)
        # Imported here, in the main thread: a first import racing dag.test()'s can deadlock.
        from airflow.models import DagRun, TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import State

        self.models = DagRun, TaskInstance, create_session, State.finished
        self.terminal, self.log_path, self.since = terminal, log_path, since
        self.interval = interval
        self.stopped = threading.Event()
        self.run_id: str | None = None
        self.shown: set[str] = set()
        self.training = TrainingProgress()
        self.offset = 0

    def say(self, line: str) -> None:
        self.terminal.write(line + "\n")
        self.terminal.flush()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.poll()
        self.poll()

    def poll(self) -> None:
        with contextlib.suppress(Exception):  # a busy SQLite file: next time
            self._tasks()
        with contextlib.suppress(OSError):
            self._log()

    def _tasks(self) -> None:
        DagRun, TaskInstance, create_session, finished_states = self.models  # noqa: N806
        with create_session() as session:
            if self.run_id is None:
                run = (
                    session.query(DagRun)
                    .filter(DagRun.dag_id == DAG_ID, DagRun.start_date >= self.since)
                    .order_by(DagRun.start_date.desc())
                    .first()
                )
                if run is None:
                    return
                self.run_id = run.run_id
                self.say(f"Run {self.run_id}: full log in {self.log_path}")
            finished = (
                session.query(TaskInstance.task_id, TaskInstance.state, TaskInstance.duration)
                .filter(
                    TaskInstance.dag_id == DAG_ID,
                    TaskInstance.run_id == self.run_id,
                    TaskInstance.state.in_(list(finished_states)),
                )
                .order_by(TaskInstance.end_date)
                .all()
            )
        for task_id, state, seconds in finished:
            if task_id not in self.shown:
                self.shown.add(task_id)
                self.say(task_line(task_id, str(state), seconds))

    def _log(self) -> None:
        with self.log_path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data.rfind(b"\n") + 1
        self.offset += complete
        for raw in data[:complete].decode(errors="replace").splitlines():
            line = self.training.feed(raw)
            if line:
                self.say(line)


@contextlib.contextmanager
def _output_to(log_path: Path):
    """File descriptors 1 and 2 (Python's, Airflow's and the jobs' output) into ``log_path``;
    yields a stream to the terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    with log_path.open("ab") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.close()


def run_quietly(dag, conf: dict, log_path: Path):
    """``dag.test(run_conf=conf)`` with the full log in ``log_path`` and a digest on screen."""
    since = datetime.now(UTC)
    with _output_to(log_path) as terminal:
        watcher = _Watcher(terminal, log_path, since)
        watcher.start()
        try:
            return dag.test(run_conf=conf)
        finally:
            watcher.stopped.set()
            watcher.join(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", default="", help="local path or s3:// URI (default: sample)")
    parser.add_argument("--conf", default="{}", help="more run parameters as JSON")
    parser.add_argument("--verbose", action="store_true", help="Airflow's task logs on screen")
    args = parser.parse_args(argv)

    settings = pipeline_settings.load()
    target = targets.load(settings)
    try:
        target.preflight()
    except (RuntimeError, TimeoutError) as exc:
        print(f"Not starting the run: {exc}")
        return 1
    # The demo deploys what it trains (a person approves versions in production runs).
    conf = {**DEMO_CONF, **json.loads(args.conf), "input_uri": args.input}
    from airflow.configuration import AIRFLOW_HOME

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log_path = Path(AIRFLOW_HOME) / "demo-logs" / f"{DAG_ID}-{stamp}.log"
    started = time.monotonic()
    dag = load_dag()
    if args.verbose:
        dag_run = dag.test(run_conf=conf)
    else:
        print(f"Running {DAG_ID} (Airflow's task logs: {log_path})")
        dag_run = run_quietly(dag, conf, log_path)
    layout = RunLayout(settings, dag_run.run_id)
    if not args.verbose:
        log_uri = target.storage.write(layout.demo_log(), log_path.read_bytes())
        log_path = target.storage.location(log_uri)
    uri = layout.summary()
    try:
        document = target.storage.read_json(uri)
    except FileNotFoundError:
        print(f"The run {dag_run.run_id} ended {dag_run.state} without a summary at {uri}")
        return 1
    print("\n" + "=" * 72)
    print(render_text(document))
    location = target.storage.location(uri)
    print(f"\nSummary: {uri}" + (f" ({location})" if location != uri else ""))
    if not args.verbose:
        print(f"Full log: {log_path}")
    print(f"Wall time: {(time.monotonic() - started) / 60:.1f} min")
    notice = target.endpoint_notice(document.get("deployment") or {})
    if notice:
        print(f"\n{notice}")
    return 0 if document.get("state") == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
