"""The endpoint_rollout DAG end to end on the local target: a real endpoint server with two tiny
BERT variants, real invocations and data capture, then ``dag.test`` in bandit and evaluate mode."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from include.pipeline.documents import rewards
from include.pipeline.documents import rollout as decisions_log
from include.pipeline.layout import Layout
from include.pipeline.params import PARAMS
from include.pipeline.requests import autoscaling as autoscaling_requests
from include.pipeline.requests import deployment
from include.pipeline.targets.local.endpoint.host import start_server
from include.pipeline.targets.local.lake import resolve
from include.pipeline.tasks import autoscaling
from include.pipeline.tasks import deployment as deployment_step
from include.pipeline.tasks import rollout as rollout_tasks
from tests.aws_model import assert_valid
from tests.conftest import deployed_events, retire_pipeline_assets
from tests.dag_files import fresh_dag
from tests.test_endpoint_server import boto, wait_settled
from tests.test_inference import WORDS, build_tiny_model, register_model

CHAMPION, CHALLENGER = deployment.PRIMARY_VARIANT, deployment.CHALLENGER_VARIANT
MAIN_DEFAULTS = {name: param.value for name, param in PARAMS.items()}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def rollout_lake(tmp_path_factory, tiny_model) -> Path:
    """Champion and challenger: the same tiny model registered twice, so they agree."""
    root = tmp_path_factory.mktemp("lake").resolve()
    model = tiny_model
    register_model(root, model, "champion-model")
    register_model(root, model, "challenger-model")
    register_model(root, model, "solo-model")
    return root


@pytest.fixture(scope="module")
def server(rollout_lake):
    running = start_server(rollout_lake)
    yield running
    running.stop()


@pytest.fixture
def env(rollout_lake, server, monkeypatch) -> pipeline_settings.Settings:
    """The DAG's settings point at the test server and lake."""
    monkeypatch.setenv("PIPELINE_LAKE", str(rollout_lake))
    monkeypatch.setenv("PIPELINE_ENDPOINT_PORT", server.url.rsplit(":", 1)[1])
    monkeypatch.setenv("PIPELINE_ROLLOUT_SCHEDULE", "none")
    return pipeline_settings.load()


def load_dag():
    return fresh_dag("endpoint_rollout")


def deploy(settings, server, endpoint: str, variants: list[tuple[str, str, float]]) -> object:
    sm = boto("sagemaker", server.url)
    request = deployment.endpoint_config_request(
        config_name=f"{endpoint}-config",
        variants=[
            deployment.production_variant(
                variant_name=name, model_name=model, instance_type="ml.m5.large", weight=weight
            )
            for name, model, weight in variants
        ],
        data_capture=deployment.data_capture_config(settings.s3_uri("data-capture")),
    )
    assert_valid("sagemaker", "CreateEndpointConfig", request)
    sm.create_endpoint_config(**request)
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=request["EndpointConfigName"])
    assert wait_settled(sm, endpoint)["EndpointStatus"] == "InService"
    return sm


def deploy_from_main_dag(
    settings, server, tiny_model: Path, endpoint: str, weight: float, max_instances: int = 0
):
    """Two runs of the main DAG's deployment step: the first model alone, then the second with
    ``deployment_strategy=ab`` next to it, each variant autoscaled up to ``max_instances`` (0:
    off). Returns the client and the two model names."""
    sm = boto("sagemaker", server.url)
    scaling = boto("application-autoscaling", server.url)
    names = []
    for run_id in ("manual__1", "manual__2"):
        params = {**MAIN_DEFAULTS, "endpoint_name": endpoint, "traffic_wait_seconds": 0}
        params |= {"deployment_strategy": "ab", "ab_challenger_weight": weight}
        params |= {"autoscaling_max_instances": max_instances}
        built = deployment_step.build_deployment_requests(
            settings,
            params,
            run_id=run_id,
            model_data_url="s3://unused/model.tar.gz",
            champion_model=deployment_step.current_model(sm, endpoint),
        )
        # create_rollback_alarm: the step's alarm on the new model's variant (Challenger in A/B)
        targets.client(settings, "cloudwatch").put_metric_alarm(**built["rollback_alarm"])
        # The step's CreateModel names the model; the tiny model's archive stands in for it.
        register_model(settings.lake, tiny_model, built["model"]["ModelName"])
        names.append(built["model"]["ModelName"])
        assert_valid("sagemaker", "CreateEndpointConfig", built["endpoint_config"])
        sm.create_endpoint_config(**built["endpoint_config"])
        if run_id == "manual__1":
            sm.create_endpoint(**built["endpoint"])
        else:
            autoscaling.release(scaling, endpoint)  # release_autoscaling
            sm.update_endpoint(**{k: v for k, v in built["endpoint"].items() if k != "Tags"})
        assert wait_settled(sm, endpoint)["EndpointStatus"] == "InService"
        autoscaling.register(scaling, built["autoscaling"])  # register_autoscaling
    return sm, names


def reviews(n: int) -> list[str]:
    combos = itertools.cycle(itertools.permutations(WORDS, 4))
    return [" ".join(next(combos)) for _ in range(n)]


def predict(server, endpoint: str, texts: list[str], target: str, ids: list[str]) -> list:
    """``[(inference id, predicted label)]`` of one request per text, sent to ``target``."""
    runtime = boto("sagemaker-runtime", server.url)
    answers = []
    for text, iid in zip(texts, ids, strict=True):
        response = runtime.invoke_endpoint(
            EndpointName=endpoint,
            Body=json.dumps({"features": [text]}),
            ContentType="application/json",
            TargetVariant=target,
            InferenceId=iid,
        )
        answers.append((iid, json.loads(response["Body"].read())[0]["predicted_label"]))
    return answers


def invoke(server, endpoint: str, texts: list[str], target: str | None = None, ids=None) -> list:
    runtime = boto("sagemaker-runtime", server.url)
    answered = []
    for i, text in enumerate(texts):
        extra = {"TargetVariant": target} if target else {}
        if ids:
            extra["InferenceId"] = ids[i]
        response = runtime.invoke_endpoint(
            EndpointName=endpoint,
            Body=json.dumps({"features": [text]}),
            ContentType="application/json",
            **extra,
        )
        assert json.loads(response["Body"].read())[0]["predicted_label"] in (-1, 0, 1)
        answered.append(response["InvokedProductionVariant"])
    return answered


def run(dag, **conf):
    retire_pipeline_assets()  # this lake's asset URIs, not an earlier test's
    dag_run = dag.test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success", states
    return states


def weights(sm, endpoint: str) -> dict[str, float]:
    described = sm.describe_endpoint(EndpointName=endpoint)
    return {v["VariantName"]: v["DesiredWeight"] for v in described["ProductionVariants"]}


def test_bandit_shifts_weight_to_the_better_arm_and_logs_it(airflow_db, env, server, tiny_model):
    """From an A/B deployment of the main DAG: rewards derived from ground truth by inference id."""
    endpoint = "reviews-bandit"
    sm, (champion_model, new_model) = deploy_from_main_dag(env, server, tiny_model, endpoint, 0.5)
    assert weights(sm, endpoint) == {CHAMPION: 0.5, CHALLENGER: 0.5}
    served = invoke(server, endpoint, reviews(6))
    assert set(served) == {CHAMPION, CHALLENGER}  # 0.5 / 0.5 reaches both
    labels = {}
    for variant, good, total in ((CHALLENGER, 30, 35), (CHAMPION, 8, 35)):
        ids = [f"{variant}-{i}" for i in range(total)]
        predicted = predict(server, endpoint, reviews(total), variant, ids)
        # The first `good` labels agree with the variant's answer, the rest do not.
        labels |= {iid: p if i < good else (p + 2) % 3 - 1 for i, (iid, p) in enumerate(predicted)}
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    rollout_tasks.write_ground_truth(env, endpoint, labels, time=stamp, name="review-1")

    states = run(load_dag(), endpoint_name=endpoint, mode="bandit", seed=7, weight_floor=0.05)

    assert states["decide_challenger"] == states["settle_endpoint"] == "skipped"
    assert states["release_autoscaling"] == states["register_autoscaling"] == "skipped"
    after = weights(sm, endpoint)
    assert after[CHALLENGER] > 0.8 > 0.2 > after[CHAMPION]
    assert after[CHAMPION] >= 0.05  # the floor keeps the weaker arm learning
    request = deployment.weights_request(endpoint, after)
    assert_valid("sagemaker", "UpdateEndpointWeightsAndCapacities", request)

    decisions = decisions_log.read_decisions(
        resolve(Layout(env).rollout_decisions(endpoint), env.lake)
    )
    assert len(decisions) == 1
    assert decisions[0]["mode"] == "bandit"
    assert decisions[0]["weights"] == pytest.approx(after)
    assert decisions[0]["rewards"] == {CHALLENGER: [30, 5], CHAMPION: [8, 27]}
    png = resolve(Layout(env).rollout_weights_plot(endpoint), env.lake)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stats = json.loads(resolve(decisions_stats_uri(env, endpoint), env.lake).read_text())
    assert stats[CHAMPION]["requests"] + stats[CHALLENGER]["requests"] == 76
    store = resolve(Layout(env).rewards(endpoint), env.lake)
    assert len(rewards.read_rewards(store)) == 70  # the labelled requests; a re-run adds none


def decisions_stats_uri(settings, endpoint: str) -> str:
    """The one stats file the single run of this endpoint wrote."""
    (uri,) = rollout_tasks.list_uris(settings, Layout(settings).rollout_stats_folder(endpoint))
    return uri


def test_evaluate_promotes_an_agreeing_challenger(airflow_db, env, server, tiny_model):
    """The challenger the main DAG's ``ab`` strategy deployed, autoscaled, promoted from captured
    traffic: the winner alone keeps the variants' autoscaling."""
    endpoint = "reviews-ab"
    sm, (champion_model, new_model) = deploy_from_main_dag(
        env, server, tiny_model, endpoint, 0.5, max_instances=3
    )
    scaling = boto("application-autoscaling", server.url)
    assert len(autoscaling.endpoint_targets(scaling, endpoint)) == 2
    texts = reviews(12)
    ids = [f"req-{i}" for i in range(len(texts))]
    # The same requests to both variants (one inference id each), so answers can be paired.
    assert set(invoke(server, endpoint, texts, CHAMPION, ids)) == {CHAMPION}
    assert set(invoke(server, endpoint, texts, CHALLENGER, ids)) == {CHALLENGER}

    # The glue on its own: the request it would send is valid for the AWS API.
    client = boto("sagemaker", server.url)
    described = rollout_tasks.describe(client, endpoint)
    params = {"min_requests": 10, "max_error_rate": 0.01, "min_agreement": 0.8}
    params["max_latency_ratio"] = 1.5
    collected = rollout_tasks.collect_stats(env, described, run_id="manual")
    assert collected["variants"][CHALLENGER]["requests"] == 12
    outcome = rollout_tasks.decide(env, described, collected, params, run_id="manual")
    assert outcome["decision"]["agreement"] == 1.0
    assert outcome["decision"]["paired_requests"] == 12
    assert_valid("sagemaker", "CreateEndpointConfig", outcome["request"]["EndpointConfig"])
    assert_valid("sagemaker", "UpdateEndpoint", outcome["request"]["Endpoint"])

    states = run(load_dag(), endpoint_name=endpoint, mode="evaluate", **params)

    assert states["settle_endpoint"] == "success"
    assert states["release_autoscaling"] == states["register_autoscaling"] == "success"
    assert states["update_bandit_weights"] == "skipped"
    # released before the update (the local host, like AWS, refuses to drop an autoscaled
    # variant) and registered again on the winner with the same bounds and target
    (target,) = autoscaling.endpoint_targets(scaling, endpoint)
    assert target["ResourceId"] == autoscaling_requests.resource_id(endpoint, CHAMPION)
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)
    (policy,) = scaling.describe_scaling_policies(
        **autoscaling_requests.target_request(target["ResourceId"])
    )["ScalingPolicies"]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 70
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert [v["VariantName"] for v in described["ProductionVariants"]] == [CHAMPION]
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    assert [v["ModelName"] for v in config["ProductionVariants"]] == [new_model]
    assert config["DataCaptureConfig"]["DestinationS3Uri"] == env.s3_uri("data-capture")
    (decision,) = decisions_log.read_decisions(
        resolve(Layout(env).rollout_decisions(endpoint), env.lake)
    )
    assert decision["decision"]["decision"] == "promote"
    assert decision["weights"] == {CHAMPION: 1.0}
    # settle_endpoint announced it: the new model now serves alone (reviews_deployed)
    (announced,) = deployed_events(endpoint)
    assert announced["model_name"] == new_model and announced["variant"] == CHAMPION
    assert announced["decision"] == "promote"

    # Now a single variant and no shadow: the next run stops at describe_endpoint.
    states = run(load_dag(), endpoint_name=endpoint, mode="evaluate", **params)
    assert states["describe_endpoint"] == "success"
    assert states["collect_variant_stats"] == states["record_decision"] == "skipped"


def test_evaluate_waits_without_enough_traffic(airflow_db, env, server):
    endpoint = "reviews-wait"
    sm = deploy(
        env,
        server,
        endpoint,
        [(CHAMPION, "champion-model", 0.5), (CHALLENGER, "challenger-model", 0.5)],
    )
    invoke(server, endpoint, reviews(4))
    states = run(load_dag(), endpoint_name=endpoint, mode="evaluate", min_requests=50)
    assert states["settle_endpoint"] == "skipped"
    assert states["release_autoscaling"] == states["register_autoscaling"] == "skipped"
    assert states["record_decision"] == "success"
    assert weights(sm, endpoint) == {CHAMPION: 0.5, CHALLENGER: 0.5}  # untouched
    (decision,) = decisions_log.read_decisions(
        resolve(Layout(env).rollout_decisions(endpoint), env.lake)
    )
    assert decision["decision"]["decision"] == "wait"
    assert "need 50 requests" in decision["decision"]["reason"]
    assert rollout_tasks.describe(sm, "no-such-endpoint") is None  # nothing to decide


def test_evaluate_promotes_a_shadow_from_its_captured_copies(airflow_db, env, server):
    endpoint = "reviews-shadow"
    sm = boto("sagemaker", server.url)
    request = deployment.endpoint_config_request(
        config_name=f"{endpoint}-config",
        variants=[
            deployment.production_variant(
                variant_name=CHAMPION, model_name="champion-model", instance_type="ml.m5.large"
            )
        ],
        shadow_variants=[
            deployment.production_variant(
                variant_name=deployment.SHADOW_VARIANT,
                model_name="challenger-model",
                instance_type="ml.m5.large",
            )
        ],
        data_capture=deployment.data_capture_config(env.s3_uri("data-capture")),
    )
    sm.create_endpoint_config(**request)
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=request["EndpointConfigName"])
    assert wait_settled(sm, endpoint)["EndpointStatus"] == "InService"
    assert set(invoke(server, endpoint, reviews(12))) == {CHAMPION}
    deadline = time.monotonic() + 30
    while server.service.stats(endpoint)["live"]["shadows"]["Shadow"]["invocations"] < 12:
        assert time.monotonic() < deadline, "shadow copies did not finish"
        time.sleep(0.05)

    run(load_dag(), endpoint_name=endpoint, mode="evaluate", min_requests=10)

    (decision,) = decisions_log.read_decisions(
        resolve(Layout(env).rollout_decisions(endpoint), env.lake)
    )
    assert decision["decision"]["decision"] == "promote", decision
    assert decision["decision"]["paired_requests"] == 12  # paired by input, no inference ids
    described = sm.describe_endpoint(EndpointName=endpoint)
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    assert [v["ModelName"] for v in config["ProductionVariants"]] == ["challenger-model"]
    assert "ShadowProductionVariants" not in config
    live = server.service.stats(endpoint)["live"]
    assert (live["config"], list(live["variants"]), live["shadows"]) == (
        described["EndpointConfigName"],
        [CHAMPION],
        {},
    )


def test_aws_glue_reads_capture_rewards_and_metrics_and_writes_the_log_in_s3(monkeypatch):
    """The aws branches of the glue (S3 listing and objects, CloudWatch errors) on moto."""
    import boto3

    from tests.moto_server import moto_server

    with moto_server() as (url, moto_env):
        for key, value in {**moto_env, "PIPELINE_TARGET": "aws"}.items():
            monkeypatch.setenv(key, value)
        settings = pipeline_settings.load()
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        s3.create_bucket(Bucket=settings.bucket)
        endpoint, created = "reviews-aws", "2026-03-01T10:30:00+00:00"
        described = {
            "endpoint_name": endpoint,
            "config_name": f"{endpoint}-config",
            "config_created": created,
            "variants": [{"name": CHAMPION}, {"name": CHALLENGER}],
            "shadows": [],
            "weights": {CHAMPION: 0.5, CHALLENGER: 0.5},
            "capture_uri": settings.s3_uri("data-capture"),
        }

        def capture(minute: int, label: int) -> str:
            return json.dumps(
                {
                    "captureData": {
                        "endpointInput": {"data": "{}", "encoding": "JSON", "mode": "INPUT"},
                        "endpointOutput": {
                            "data": json.dumps([{"predicted_label": label}]),
                            "encoding": "JSON",
                            "mode": "OUTPUT",
                        },
                    },
                    "eventMetadata": {"inferenceTime": f"2026-03-01T10:{minute:02d}:00Z"},
                }
            )

        base = f"data-capture/{endpoint}/{CHAMPION}/2026/03/01"
        s3.put_object(Bucket=settings.bucket, Key=f"{base}/09/a.jsonl", Body=capture(5, 1))
        body = "\n".join([capture(10, 1), capture(40, 1), capture(50, -1)])  # one too early
        s3.put_object(Bucket=settings.bucket, Key=f"{base}/10/b.jsonl", Body=body)
        cloudwatch = boto3.client("cloudwatch", endpoint_url=url, region_name="us-east-1")
        cloudwatch.put_metric_data(
            Namespace="AWS/SageMaker",
            MetricData=[
                {
                    "MetricName": "Invocation5XXErrors",
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": endpoint},
                        {"Name": "VariantName", "Value": CHAMPION},
                    ],
                    "Timestamp": "2026-03-01T10:45:00Z",
                    "Value": 3.0,
                }
            ],
        )

        uris = rollout_tasks.list_uris(settings, settings.s3_uri(base) + "/")
        assert uris == [settings.s3_uri(base, "09/a.jsonl"), settings.s3_uri(base, "10/b.jsonl")]
        records = rollout_tasks.capture_records(settings, described, CHAMPION)
        assert len(records) == 2  # the 09:05 file and the 10:10 line predate the config
        assert rollout_tasks.failed_requests(settings, described, CHAMPION) == 3
        collected = rollout_tasks.collect_stats(settings, described, run_id="aws-run")
        assert collected["variants"][CHAMPION]["requests"] == 5
        assert collected["variants"][CHAMPION]["label_counts"] == {"-1": 1, "0": 0, "1": 1}

        lines = [
            json.dumps(rewards.reward_record(v, r, inference_id=f"{v}{i}", time=created))
            for i, (v, r) in enumerate([(CHALLENGER, 1)] * 20 + [(CHAMPION, 0)] * 20)
        ]
        rewards_key = Layout(settings).key(Layout(settings).rewards(endpoint))
        s3.put_object(Bucket=settings.bucket, Key=rewards_key, Body="\n".join(lines))
        params = {"seed": 1, "weight_floor": 0.1}
        outcome = rollout_tasks.bandit_weights(settings, described, params)
        assert outcome["rewards"] == {CHALLENGER: [20, 0], CHAMPION: [0, 20]}
        assert outcome["weights"][CHALLENGER] > 0.85 > outcome["weights"][CHAMPION] >= 0.1

        for _attempt in range(2):  # a retried task adds no second line
            rollout_tasks.record(
                settings,
                endpoint_name=endpoint,
                run_id="aws-run",
                time=created,
                mode="bandit",
                outcome=outcome,
            )
        log_key = Layout(settings).key(Layout(settings).rollout_decisions(endpoint))
        log_lines = s3.get_object(Bucket=settings.bucket, Key=log_key)["Body"].read().splitlines()
        assert [json.loads(line)["decision_id"] for line in log_lines] == [f"{endpoint}:aws-run"]
        png_key = Layout(settings).key(Layout(settings).rollout_weights_plot(endpoint))
        png = s3.get_object(Bucket=settings.bucket, Key=png_key)["Body"].read()
        assert png[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("hours", "expected"),
    [(1, 60), (24 * 14, 840), (24 * 30, 1800), (24 * 100, 7200)],
)
def test_metric_period_fits_cloudwatch_retention_and_datapoint_limit(hours, expected):
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 6, 1, tzinfo=UTC)
    period = rollout_tasks.metric_period(now - timedelta(hours=hours), now)
    assert period == expected
    assert hours * 3600 / period <= 1440
