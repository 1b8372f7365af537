"""``make demo``: run the main DAG once on this machine and end with the run's report card.

Uses Airflow's own ``dag.test()`` (a real DAG run in the metadata database, every task executed
by the task runner), then reads the summary the run wrote to the lake. The terminal gets one
line per finished task and the training's progress with an ETA; Airflow's full task logs go to
a file that ends up next to the summary (``demo.log``). The target's ``preflight`` runs first,
so a conflict known at the start (another lake's endpoint server on the port) fails at once.
The run ends with a report card of a screenful (:func:`report_card`); the whole summary stays
in its file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from include.pipeline.documents import summary as summary_doc
from include.pipeline.layout import RunLayout
from include.pipeline.run_progress import TrainingProgress, task_line
from include.pipeline.targets.step_reuse import REUSED_KEY

DAG_ID = "reviews_pipeline"
DEMO_CONF = {"model_approval": "Approved", "traffic_wait_seconds": 5}
REPORTS_PAGE = "http://127.0.0.1:8080/reviews/runs/{run_id}"  # the UI's page (make ui)


def load_dag(dag_id: str = DAG_ID):
    """The DAG object from its file in ``dags/`` (the file is named after the DAG id)."""
    import importlib.util

    path = pipeline_settings.REPO_ROOT / "dags" / f"{dag_id}.py"
    spec = importlib.util.spec_from_file_location(f"dags_{dag_id}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no DAG file {path}")
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
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from airflow.utils.state import State

        self.models = DagRun, TaskInstance, create_session, State.finished
        self.xcom = XComModel
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
            reused = {  # tasks that reused a completed job (step_reuse's XCom)
                row.task_id
                for row in session.query(self.xcom.task_id).filter(
                    self.xcom.dag_id == DAG_ID,
                    self.xcom.run_id == self.run_id,
                    self.xcom.key == REUSED_KEY,
                )
            }
        for task_id, state, seconds in finished:
            if task_id not in self.shown:
                self.shown.add(task_id)
                shown = "reused" if task_id in reused and str(state) == "success" else str(state)
                self.say(task_line(task_id, shown, seconds))

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


def _kib(size) -> str:
    if not isinstance(size, int | float):
        return "-"
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def _number(value, form: str = ".3f") -> str:
    return format(value, form) if isinstance(value, int | float) else "-"


def _leaderboard(board: dict) -> list[str]:
    """The candidates best first: scores on the test split (accuracy with its 95% Wilson
    interval: a small test split's figures differ by chance), archive size, ms per review."""
    rows = [("candidate", "accuracy", "95% interval", "macro F1", "size", "ms/review", "training")]
    for entry in board.get("entries") or []:
        best = " *" if entry.get("candidate") == board.get("best") else ""
        latency = entry.get("inference_ms_per_review")
        low, high = entry.get("accuracy_interval") or (None, None)
        rows.append(
            (
                f"{entry.get('candidate')}{best}",
                _number(entry.get("accuracy")),
                f"[{_number(low)}, {_number(high)}]" if low is not None else "",
                _number(entry.get("macro_f1")),
                _kib(entry.get("model_size_bytes")),
                _number(latency, ".2f" if isinstance(latency, float) and latency < 0.1 else ".1f"),
                f"{_number(entry.get('training_time_s'), '.0f')} s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]


def _gates(document: dict) -> list[str]:
    """Each gate's verdict: bias, training rules, accuracy (registration) and approval."""
    lines = []
    bias = summary_doc.entry(document, "bias")
    if bias:
        found = bias.get("violations") or []
        verdict = "passed" if bias.get("passed") else f"{len(found)} violation(s)"
        if found and bias.get("mode") == "warn":
            verdict += ", run continued (warn)"
        first = found[0] if found else None
        if first:
            verdict += (
                f"; e.g. {first.get('metric')} {_number(first.get('value'))} for "
                f"{first.get('facet')}={first.get('value_or_threshold')} (limit {first.get('threshold')})"
            )
        lines.append(f"  bias:           {verdict}")
    rules = (summary_doc.entry(document, "training") or {}).get("rule_statuses") or []
    if rules:
        issues = [
            r["RuleConfigurationName"]
            for r in rules
            if r.get("RuleEvaluationStatus") != "NoIssuesFound"
        ]
        lines.append(
            f"  training rules: {len(rules) - len(issues)} of {len(rules)} without issues"
            + (f" ({', '.join(issues)})" if issues else "")
        )
    registration = document.get("registration")
    if isinstance(registration, dict) and "skipped" in registration:
        lines.append(f"  accuracy:       stopped: {registration['skipped']}")
    elif isinstance(registration, dict):
        lines.append("  accuracy:       passed: the best candidate is registered")
        approval = str(registration.get("status"))
        deployment = document.get("deployment")
        if isinstance(deployment, dict) and "skipped" in deployment:
            approval += f": {deployment['skipped']}"
        lines.append(f"  approval:       {approval} ({registration.get('model_package_arn')})")
    return lines or ["  (no gate ran)"]


def _champion(entry) -> list[str]:
    """Day two: the serving model and this run's best on the same test rows, and the verdict."""
    if not isinstance(entry, dict) or not entry.get("champion"):
        return []

    def scored(side: dict | None) -> str:
        if not side:
            return "not scored"
        low, high = side.get("accuracy_interval") or (None, None)
        return (
            f"accuracy {_number(side.get('accuracy'))} "
            f"[{_number(low)}, {_number(high)}] on {side.get('n_samples')} rows"
        )

    champion, challenger = entry["champion"], entry.get("challenger")
    lines = [
        "",
        "Champion vs challenger (the same test rows)"
        if entry.get("same_rows")
        else "Champion vs challenger (different test rows)",
    ]
    lines.append(f"  champion    {champion.get('model_name') or '-'}: {scored(champion)}")
    name = (challenger or {}).get("candidate") or "-"
    lines.append(f"  challenger  {name}: {scored(challenger)}")
    decision = entry.get("decision") or {}
    if decision:
        verdict = "registered" if decision.get("register") else "not registered"
        lines.append(f"  decision    {verdict}: {decision.get('why')}")
    return lines


def _serving(deployment) -> list[str]:
    if not isinstance(deployment, dict) or "skipped" in deployment:
        return [
            "  nothing deployed" + (f": {deployment['skipped']}" if deployment else ""),
            *_traffic_steps((deployment or {}).get("traffic_steps")),  # a rolled-back update's
        ]
    weights = ", ".join(
        f"{v.get('VariantName')} {_number(v.get('CurrentWeight'), '.2f')}"
        for v in deployment.get("variants") or []
    )
    where = (
        "deleted after the run"
        if deployment.get("deleted_after_run")
        else deployment.get("endpoint_url")
    )
    return [
        f"  {deployment.get('candidate')} on endpoint {deployment.get('endpoint_name')} at {where}",
        f"  strategy {deployment.get('strategy')}; variants: {weights or '-'}",
        *_traffic_steps(deployment.get("traffic_steps")),
    ]


def _traffic_steps(steps) -> list[str]:
    """The update's traffic steps on one line (a canary's share, then all traffic), with the
    requests the new model answered and failed in each; none for a new endpoint."""
    if not steps:
        return []
    shown = [
        f"{_number(100 * s.get('share', 0), '.0f')}% for {_number(s.get('seconds'), '.1f')} s "
        f"({s.get('requests', 0)} requests, {s.get('failed_requests', 0)} failed)"
        for s in steps
    ]
    return [f"  traffic moved to the new model: {' -> '.join(shown)}"]


def report_card(
    document: dict, *, locations: dict[str, str], notice: str = "", told: Sequence[dict] = ()
) -> str:
    """What a run did, in a screenful: its outcome, the leaderboard as a table, the gates'
    verdicts, what serves where, where the reports and the whole summary are, and (``notice``)
    a request that works for the served candidate. On a target whose AWS names are stand-ins
    (local), the summary's own notice says so under the outcome. ``locations``: ``summary``, ``reports``,
    ``reports_page`` and, when there is one, ``log``; ``told``: the run's notifications."""
    seconds = document.get("task_seconds") or {}
    head = (
        f"Run {document.get('run_id')} of {document.get('dag_id')} on {document.get('target')}: "
        f"{str(document.get('state', '?')).upper()}"
    )
    if seconds:
        head += f" ({len(seconds)} tasks, {sum(seconds.values()) / 60:.1f} min of task time)"
    lines = [head]
    names_notice = summary_doc.NAMES_NOTICE.get(str(document.get("target")))
    if names_notice:
        lines.append(f"  {names_notice}")
    if document.get("failed_tasks"):
        lines.append(f"  failed tasks: {', '.join(document['failed_tasks'])}")
    if document.get("reused"):
        jobs = ", ".join(f"{task} ({job})" for task, job in document["reused"].items())
        lines.append(f"  reused (no new job, same request as a finished one): {jobs}")
    ingestion = summary_doc.entry(document, "ingestion")
    if ingestion:
        lines.append(
            f"  data: {ingestion.get('rows')} reviews ingested, {ingestion.get('quarantined', 0)} "
            f"quarantined, from {ingestion.get('input_uri')}"
        )
        if (ingestion.get("files") or 1) > 1:
            lines.append(
                f"  trained on {ingestion.get('reviews_total')} reviews from the lake's "
                f"{ingestion.get('files')} files ({ingestion.get('reviews_this_file')} from this one)"
            )
    board = summary_doc.entry(document, "leaderboard")
    if board:
        lines += ["", f"Leaderboard (test split, best by {board.get('metric')}: *)"]
        lines += _leaderboard(board)
    lines += _champion(summary_doc.entry(document, "champion"))
    lines += ["", "Gates", *_gates(document)]
    lines += ["", "Serving", *_serving(document.get("deployment"))]
    if told:
        lines += ["", "Notifications (notifications/notifications.jsonl)"]
        lines += [f"  {n['kind']}: {n['subject']}" for n in told]
    lines += [
        "",
        f"Reports:  {locations['reports']}",
        f"          {locations['reports_page']} (make ui)",
    ]
    lines.append(f"Summary:  {locations['summary']}")
    if locations.get("log"):
        lines.append(f"Full log: {locations['log']}")
    if notice:
        lines += ["", notice]
    return "\n".join(lines)


def allowed_run(input_arg: str) -> tuple[str, pipeline_settings.Settings]:
    """The run's input and the settings it runs with. A person on the command line names their
    own file, so its folder joins ``PIPELINE_INPUT_ROOTS`` first (in this process's environment,
    which the DAG reads too); the settings read after it let ``check_configuration`` take it."""
    input_uri = pipeline_settings.allow_input(input_arg)
    return input_uri, pipeline_settings.load()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", default="", help="local path or s3:// URI (default: sample)")
    parser.add_argument("--conf", default="{}", help="more run parameters as JSON")
    parser.add_argument("--verbose", action="store_true", help="Airflow's task logs on screen")
    args = parser.parse_args(argv)

    input_uri, settings = allowed_run(args.input)  # before the DAG reads the environment
    target = targets.load(settings)
    try:
        target.preflight()
    except (RuntimeError, TimeoutError) as exc:
        print(f"Not starting the run: {exc}")
        return 1
    # The demo deploys what it trains (a person approves versions in production runs).
    conf = {**DEMO_CONF, **json.loads(args.conf), "input_uri": input_uri or None}
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
        log_path = Path(target.storage.location(log_uri))
    uri = layout.summary()
    try:
        document = target.storage.read_json(uri)
    except FileNotFoundError:
        print(f"The run {dag_run.run_id} ended {dag_run.state} without a summary at {uri}")
        return 1
    location = target.storage.location(uri)
    locations = {
        "summary": uri + (f" ({location})" if location != uri else ""),
        "reports": target.storage.location(layout.uri("")),
        "reports_page": REPORTS_PAGE.format(run_id=quote(dag_run.run_id, safe="")),
        "log": "" if args.verbose else str(log_path),
    }
    notice = target.endpoint_notice(document.get("deployment") or {})
    print("\n" + "=" * 72)
    from include.pipeline import reports

    told = reports.notifications(settings, run_id=dag_run.run_id)
    print(report_card(document, locations=locations, notice=notice, told=told))
    print(f"Wall time: {(time.monotonic() - started) / 60:.1f} min")
    return 0 if document.get("state") == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
