"""Days one to three of a live endpoint on the local target, through the main DAG.

Day one deploys a first model. Each later day copies an earlier day's lake, serves its endpoint
from an endpoint host of its own while a client sends reviews through boto3, and runs the main
DAG on a new file: the serving model (champion) is scored on the run's test rows, the challenger beside
it, and a better one replaces it by a blue/green update of the live endpoint, or rolls back.
Every check reads what the DAG and the host wrote: the run summary, DescribeEndpoint, the host's
update report and what the client saw.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from include.pipeline import sample
from include.pipeline.requests.deployment import (
    CHALLENGER_VARIANT,
    PRIMARY_VARIANT,
    ROLLBACK_ALARM_METRIC,
    SHADOW_VARIANT,
    alarm_name,
)
from include.pipeline.schema import RAW_TEXT
from include.pipeline.targets.local.endpoint.client import client as endpoint_client
from include.pipeline.targets.local.endpoint.host import RunningServer, start_server
from include.pipeline.targets.local.endpoint.state import EndpointStore
from include.pipeline.tasks.code import SOURCEDIR, sourcedir_bytes
from include.pipeline.tasks.deployment import resource_name
from tests.conftest import deployed_events
from tests.moto_server import free_port
from tests.test_inference import FLAKY_PREDICT_FN
from tests.test_pipeline_local import DEPLOY, dags_test, summaries
from tests.test_rollout_dag import load_dag, run

pytestmark = pytest.mark.slow

# Every day trains the fine-tune alone, untuned, and leaves the endpoint serving.
ALONE = {
    **DEPLOY,
    "candidates": ["finetune"],
    "tuning_max_jobs": 0,
    "min_accuracy": 0.0,
    "delete_endpoint_after_run": False,
}
# Day one's champion: a single training step, so a model trained on a whole epoch beats it.
DAY_ONE = {**ALONE, "train_steps_per_epoch": 1}
# A blue/green step long enough for the client's requests to reach the new fleet in it.
BAKE_SECONDS = 4
CANARY_PERCENT = 30
LINEAR_STEP_PERCENT = 50
UPDATES = {
    "canary": {"deployment_strategy": "canary", "canary_percent": CANARY_PERCENT},
    "linear": {"deployment_strategy": "linear", "linear_step_percent": LINEAR_STEP_PERCENT},
}
# Beside the champion: the challenger's variant, and its share of the callers' requests.
BESIDE = {"shadow": (SHADOW_VARIANT, 0.0), "ab": (CHALLENGER_VARIANT, 0.5)}
ROUTING = {  # the steps the host takes: the new fleet's share of the traffic at each
    "canary": [CANARY_PERCENT / 100, 1.0],
    "linear": [LINEAR_STEP_PERCENT / 100, 1.0],
}


@pytest.fixture(scope="module")
def day_one(airflow_db, tmp_path_factory):
    """The first deployment on a fresh lake (its endpoint host stopped after the run; a later
    day's host serves the same endpoint again from a copy of the lake)."""
    lake = tmp_path_factory.mktemp("day-one") / "lake"
    started = time.monotonic()
    proc = dags_test({"input_uri": "", **DAY_ONE}, lake)
    (lake.parent / "dags-test.log").write_text(proc.stdout + proc.stderr)  # for a failure's reader
    runs = summaries(lake)
    assert proc.returncode == 0 and len(runs) == 1, proc.stdout[-5000:] + proc.stderr[-5000:]
    print(f"day one: {time.monotonic() - started:.0f} s")
    return lake, runs[0]


def test_day_one_deploys_a_new_endpoint_with_no_champion_to_judge(day_one):
    _, summary = day_one
    assert summary["state"] == "success"
    assert summary["task_states"]["evaluate_champion"] == "skipped"
    assert summary["champion"]["champion"] is None
    deployment = summary["deployment"]
    assert deployment["deleted_after_run"] is False
    assert "traffic_steps" not in deployment  # a new endpoint: no update, no steps


class Client:
    """Reviews sent one per request through boto3's sagemaker-runtime, in a thread, until
    stopped: how many were answered and every failure the caller got."""

    def __init__(self, url: str, endpoint: str, reviews: list[str], pause: float = 0.1):
        self.endpoint, self.reviews, self.pause = endpoint, reviews, pause
        self.runtime = endpoint_client("sagemaker-runtime", url)
        self.answered = 0
        self.failures: list[str] = []
        self.variants: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lifecycle-client")

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            review = self.reviews[n % len(self.reviews)]
            n += 1
            try:
                response = self.runtime.invoke_endpoint(
                    EndpointName=self.endpoint,
                    Body=json.dumps({"features": [review]}),
                    ContentType="application/json",
                )
                response["Body"].read()
                self.answered += 1
                self.variants[response["InvokedProductionVariant"]] += 1
            except ClientError as err:
                self.failures.append(str(err))
            self._stop.wait(self.pause)

    @property
    def total(self) -> int:
        return self.answered + len(self.failures)

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def new_file(lake: Path, seed: int) -> Path:
    """A file of reviews the lake has not seen, dropped in its incoming/ folder."""
    source = lake / "reviews-pipeline" / "incoming" / f"day-{seed}.csv"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(sample.csv_bytes(n=300, seed=seed))
    return source


def reviews_of(source: Path) -> list[str]:
    import csv

    with source.open(newline="") as f:
        return [row[RAW_TEXT] for row in csv.DictReader(f) if row.get(RAW_TEXT)][:50]


def next_day(
    base: Path, endpoint: str, tmp_path: Path, conf: dict, seed: int, prepare=None
) -> dict:
    """A copy of an earlier day's lake (``base``), its ``endpoint`` served by a host of its
    own, a new file, and the main DAG run on it while a client sends reviews the whole time
    (``prepare(lake)`` edits the lake first). What the run, the host and the client recorded."""
    lake = tmp_path / "lake"
    shutil.copytree(base, lake, ignore=shutil.ignore_patterns("*.pid"))
    if prepare:
        prepare(lake)
    earlier = len(summaries(lake))
    source = new_file(lake, seed)
    port = free_port()
    host: RunningServer = start_server(lake, port=port)
    try:
        sagemaker = endpoint_client("sagemaker", host.url)
        assert sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"
        started = time.monotonic()
        with Client(host.url, endpoint, reviews_of(source)) as client:
            proc = dags_test({"input_uri": str(source), **ALONE, **conf}, lake, port=port)
            seconds = time.monotonic() - started
            time.sleep(0.5)  # callers keep calling the settled endpoint
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
        stats = host.service.stats(endpoint)
    finally:
        host.stop()
    (tmp_path / "dags-test.log").write_text(proc.stdout + proc.stderr)  # for a failure's reader
    runs = sorted(summaries(lake), key=lambda s: s["started_at"])
    assert len(runs) == earlier + 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"{conf.get('deployment_strategy')} day: {seconds:.0f} s, {client.total} requests")
    return {
        "lake": lake,
        "proc": proc,
        "before": runs[-2],
        "summary": runs[-1],
        "described": described,
        "update": stats["last_update"],
        "stats": stats,
        "client": client,
        "endpoint": endpoint,
    }


def after_day_one(day_one, tmp_path_factory, folder: str, conf: dict, seed: int, prepare=None):
    """``next_day`` on a copy of day one's lake, its endpoint served again."""
    lake, summary = day_one
    endpoint = summary["deployment"]["endpoint_name"]
    return next_day(lake, endpoint, tmp_path_factory.mktemp(folder), conf, seed, prepare)


# Day two's conf and file seed by strategy. A blue/green update: the model trained on the grown
# data replaces day one's. Shadow or A/B: the better model next to the serving one (shadow:
# copies of the requests; ab: half of them), where the endpoint_rollout DAG later promotes or
# rolls it back.
DAY_TWO = {
    **{s: ({**UPDATES[s], "traffic_wait_seconds": BAKE_SECONDS}, 7) for s in UPDATES},
    **{s: ({"deployment_strategy": s, "ab_challenger_weight": BESIDE[s][1]}, 17) for s in BESIDE},
}


def day_two(strategy: str):
    """The module fixture ``<strategy>_day``: day two under ``strategy``, a new file."""
    conf, seed = DAY_TWO[strategy]

    @pytest.fixture(scope="module", name=f"{strategy}_day")
    def day(day_one, tmp_path_factory):
        return after_day_one(day_one, tmp_path_factory, f"day-two-{strategy}", conf, seed)

    return day


canary_day, linear_day, shadow_day, ab_day = map(day_two, ("canary", "linear", "shadow", "ab"))


@pytest.mark.parametrize("strategy", sorted(UPDATES))
def test_day_two_a_better_model_replaces_the_live_one_with_no_failed_request(strategy, request):
    day = request.getfixturevalue(f"{strategy}_day")
    proc, summary, client = day["proc"], day["summary"], day["client"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary["state"] == "success" and summary["run_id"] != day["before"]["run_id"]
    # The client was answered the whole time, by the old model and then the new one.
    assert client.failures == [] and client.answered > 20
    assert day["update"]["Outcome"] == "Promoted" and day["update"]["NewFleetInvocations"] > 0
    # The endpoint ends on this run's config, reached by the strategy's blue/green update.
    described = day["described"]
    assert described["EndpointConfigName"] == resource_name(day["endpoint"], summary["run_id"])
    assert "FailureReason" not in described
    routing = described["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert routing["TrafficRoutingConfiguration"]["Type"] == strategy.upper()
    # The serving model was judged on this run's test rows, beside the challenger, and lost.
    assert summary["task_states"]["evaluate_champion"] == "success"
    comparison = summary["champion"]
    champion, challenger = comparison["champion"], comparison["challenger"]
    assert champion["model_name"] == resource_name(day["endpoint"], day["before"]["run_id"])
    assert comparison["same_rows"] is True and champion["n_samples"] == challenger["n_samples"]
    assert challenger["accuracy"] > champion["accuracy"]
    assert comparison["decision"]["register"] is True
    # The summary records the steps the host took, as it took them.
    steps = summary["deployment"]["traffic_steps"]
    assert [s["share"] for s in steps] == ROUTING[strategy]
    assert steps[0]["seconds"] >= BAKE_SECONDS and steps[0]["requests"] > 0
    assert sum(s["failed_requests"] for s in steps) == 0
    assert sum(s["requests"] for s in steps) == day["update"]["NewFleetInvocations"]


def break_serving(lake: Path) -> None:
    """Day one's code bundle in the lake, with an inference.py that answers the endpoint's
    warm-up and fails every request after it. The bundle is stored under its content hash, so
    the run reuses it: the model trains and scores as before (evaluation loads the weights
    itself), and its archive carries the broken handler that only serving runs."""
    (bundle,) = (lake / "reviews-pipeline" / "code").iterdir()
    scripts = bundle / "scripts"
    (scripts / "inference.py").write_text(FLAKY_PREDICT_FN)
    files = {p.name: p.read_bytes() for p in sorted(scripts.iterdir())}
    (bundle / SOURCEDIR).write_bytes(sourcedir_bytes(files))


@pytest.fixture(scope="module")
def broken_day(day_one, tmp_path_factory):
    conf = {**UPDATES["canary"], "traffic_wait_seconds": BAKE_SECONDS}
    return after_day_one(
        day_one, tmp_path_factory, "day-three-broken", conf, seed=11, prepare=break_serving
    )


def test_day_three_a_model_that_fails_when_served_is_rolled_back_by_the_canarys_alarm(
    broken_day,
):
    day = broken_day
    proc, summary, client, update = day["proc"], day["summary"], day["client"], day["update"]
    before = day["before"]
    # It passed the gates: it beat the champion on the same rows and was registered.
    assert summary["champion"]["decision"]["register"] is True
    assert summary["registration"]["status"] == "Approved"
    # The canary failed, the alarm on its variant fired, the endpoint is back on day one's model.
    assert proc.returncode != 0
    assert summary["state"] == "failed" and summary["task_states"]["deploy_endpoint"] == "failed"
    assert summary["task_states"]["smoke_test_endpoint"] == "upstream_failed"
    alarm = alarm_name(day["endpoint"], PRIMARY_VARIANT, ROLLBACK_ALARM_METRIC)
    fired = f"Alarm {alarm} fired: the new fleet's {PRIMARY_VARIANT} failed"
    assert fired in proc.stdout + proc.stderr  # the deploy task's failure names it
    assert fired in day["described"]["FailureReason"]
    assert day["described"]["EndpointConfigName"] == resource_name(
        day["endpoint"], before["run_id"]
    )
    assert update["Outcome"] == "RolledBack"
    (canary,) = update["TrafficSteps"]  # it never got all the traffic
    assert canary["NewFleetShare"] == CANARY_PERCENT / 100
    # Only the requests routed to the canary failed: every failure the client saw was one of
    # the new fleet's, every other request was answered by the old one.
    assert client.failures and all("flaky model failed" in f for f in client.failures)
    assert len(client.failures) == update["NewFleetFailedRequests"] == canary["NewFleetInvocations"]
    assert client.answered > len(client.failures)
    # The summary says so: nothing deployed, why, and the step the update got to.
    deployment = summary["deployment"]
    assert (
        deployment["skipped"].startswith("the update was rolled back")
        and fired in (deployment["skipped"])
    )
    (step,) = deployment["traffic_steps"]
    assert step["share"] == CANARY_PERCENT / 100
    assert step["failed_requests"] == step["requests"] == len(client.failures)


@pytest.fixture(scope="module")
def worse_day(canary_day, tmp_path_factory):
    """Day three on day two's lake (its better model serves), with a challenger trained for a
    single step, as day one's was."""
    conf = {**UPDATES["canary"], "train_steps_per_epoch": 1}
    folder = tmp_path_factory.mktemp("day-three-worse")
    return next_day(canary_day["lake"], canary_day["endpoint"], folder, conf, seed=13)


def test_day_three_a_worse_challenger_is_not_deployed(worse_day):
    day = worse_day
    proc, summary, before = day["proc"], day["summary"], day["before"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary["state"] == "success"
    # The champion rule, as the run applied it: the serving model scored higher on the same rows.
    comparison = summary["champion"]
    champion, challenger = comparison["champion"], comparison["challenger"]
    assert champion["model_name"] == resource_name(day["endpoint"], before["run_id"])
    assert comparison["same_rows"] is True
    assert challenger["accuracy"] <= champion["accuracy"]
    assert comparison["decision"]["register"] is False
    assert "does not beat the serving model's" in comparison["decision"]["why"]
    assert summary["registration"]["skipped"] == comparison["decision"]["why"]
    assert summary["deployment"]["skipped"].startswith("nothing was registered")
    states = summary["task_states"]
    assert states["register_model_version"] == states["deploy_endpoint"] == "skipped"
    # The endpoint still serves day two's model, and its callers saw nothing of the run.
    assert day["described"]["EndpointConfigName"] == resource_name(
        day["endpoint"], before["run_id"]
    )
    assert day["client"].failures == [] and day["client"].answered > 20


@pytest.mark.parametrize("strategy", sorted(BESIDE))
def test_day_two_the_challenger_serves_beside_the_champion_watched_by_its_own_alarm(
    strategy, request
):
    day = request.getfixturevalue(f"{strategy}_day")
    proc, summary, client, before = day["proc"], day["summary"], day["client"], day["before"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary["state"] == "success" and summary["champion"]["decision"]["register"] is True
    variant, share = BESIDE[strategy]
    endpoint, described = day["endpoint"], day["described"]
    # This run's config: day one's model stays the primary variant, the new one beside it.
    assert described["EndpointConfigName"] == resource_name(endpoint, summary["run_id"])
    config = EndpointStore(day["lake"]).describe_config(described["EndpointConfigName"])
    served = {
        v["VariantName"]: v["ModelName"]
        for v in config["ProductionVariants"] + config.get("ShadowProductionVariants", [])
    }
    assert served == {
        PRIMARY_VARIANT: resource_name(endpoint, before["run_id"]),
        variant: resource_name(endpoint, summary["run_id"]),
    }
    # The update's rollback alarm watches the challenger's variant, not the champion's.
    alarms = described["LastDeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    assert alarms == [{"AlarmName": alarm_name(endpoint, variant, ROLLBACK_ALARM_METRIC)}]
    (announced,) = deployed_events(endpoint, run_id=summary["run_id"])
    assert announced["variant"] == variant
    # Callers were answered the whole time; after the update the challenger took its share.
    assert client.failures == [] and client.answered > 20
    live = day["stats"]["live"]
    if strategy == "shadow":  # it answered copies nobody received
        assert set(client.variants) == {PRIMARY_VARIANT}
        assert live["shadows"][variant]["invocations"] > 0
        assert live["shadows"][variant]["errors"] == 0
    else:
        assert client.variants[variant] > 0
        assert live["variants"][variant]["errors"] == 0


def test_endpoint_rollout_promotes_the_shadow_from_the_copies_it_answered(shadow_day, monkeypatch):
    """The endpoint_rollout DAG on the shadow day's endpoint (served again by a host of its
    own), judging the traffic the client sent: the shadow, answering without errors, is
    promoted and serves alone (agreement and latency are not judged here: day one's model
    trained for one step and disagrees with any better one)."""
    from include.pipeline.documents import rollout as decisions_log
    from include.pipeline.layout import Layout
    from include.pipeline.settings import load as load_settings
    from include.pipeline.targets.local.lake import resolve

    lake, endpoint, summary = shadow_day["lake"], shadow_day["endpoint"], shadow_day["summary"]
    host = start_server(lake, port=free_port())
    try:
        monkeypatch.setenv("PIPELINE_LAKE", str(lake))
        monkeypatch.setenv("PIPELINE_ENDPOINT_PORT", host.url.rsplit(":", 1)[1])
        monkeypatch.setenv("PIPELINE_ROLLOUT_SCHEDULE", "none")
        limits = {"min_requests": 10, "min_agreement": 0.0, "max_latency_ratio": 1000.0}
        states = run(load_dag(), endpoint_name=endpoint, mode="evaluate", **limits)
        described = endpoint_client("sagemaker", host.url).describe_endpoint(EndpointName=endpoint)
    finally:
        host.stop()
    assert states["settle_endpoint"] == "success"
    log = resolve(Layout(load_settings()).rollout_decisions(endpoint), lake)
    decision = decisions_log.read_decisions(log)[-1]["decision"]
    assert decision["decision"] == "promote", decision
    assert decision["paired_requests"] >= 10
    config = EndpointStore(lake).describe_config(described["EndpointConfigName"])
    new_model = resource_name(endpoint, summary["run_id"])
    assert [v["ModelName"] for v in config["ProductionVariants"]] == [new_model]
    assert not config.get("ShadowProductionVariants")
    announced = deployed_events(endpoint)[-1]
    assert (announced["model_name"], announced["decision"]) == (new_model, "promote")
