"""The rollout DAG's Airflow-side glue: read the endpoint, its captured traffic and rewards,
decide, and log the decision.

The decisions themselves are :mod:`include.pipeline.rollout` (pure functions over records); the
requests are :mod:`include.pipeline.requests.deployment`. Here: where the files are (the lake
locally, S3 on ``aws``), how the endpoint is described, and the one SageMaker call the provider
has no operator for (UpdateEndpointWeightsAndCapacities). Every path carries the endpoint name,
per-run files the run id, and each decision a stable id, so re-runs add nothing twice.
"""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import UTC, datetime

from include.pipeline import rollout, storage
from include.pipeline.core.names import short_hash
from include.pipeline.documents import rewards
from include.pipeline.documents import rollout as decisions_log
from include.pipeline.layout import Layout
from include.pipeline.requests import deployment
from include.pipeline.settings import Settings
from include.pipeline.times import utc

log = logging.getLogger(__name__)

MODES = ("evaluate", "bandit")
CHALLENGER_NAMES = (deployment.CHALLENGER_VARIANT, deployment.SHADOW_VARIANT)
_HOUR_FOLDER = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")


# ---------------------------------------------------------------- where things are


def list_uris(settings: Settings, prefix: str) -> list[str]:
    """Every object under an ``s3://`` prefix, sorted (the target's storage)."""
    return storage.for_settings(settings).list(prefix)


def as_file(settings: Settings, uri: str, *, write: bool = False):
    """A local path for ``uri`` (uploaded back when ``write``), so the file-based functions of
    :mod:`include.pipeline.rollout` serve both targets."""
    return storage.for_settings(settings).as_file(uri, write=write)


# ---------------------------------------------------------------- describe


def _variant_spec(variant: dict, config_name: str) -> dict:
    if "InstanceType" not in variant:
        raise ValueError(
            f"endpoint config {config_name}: variant {variant['VariantName']} has no "
            "InstanceType (serverless variants are not handled by the rollout DAG)"
        )
    return {
        "name": variant["VariantName"],
        "model_name": variant["ModelName"],
        "instance_type": variant["InstanceType"],
        "instance_count": variant.get("InitialInstanceCount", 1),
        "weight": float(variant.get("InitialVariantWeight", 1.0)),
    }


def describe(client, endpoint_name: str) -> dict | None:
    """The endpoint's variants (with live weights), capture prefix and config; None (with the
    reason logged) when there is nothing to decide: no endpoint, not InService, or a single
    production variant and no shadow."""
    from botocore.exceptions import ClientError

    try:
        endpoint = client.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as err:
        if "not found" in str(err).lower() or "could not find" in str(err).lower():
            log.info("endpoint %s does not exist: nothing to decide", endpoint_name)
            return None
        raise
    if endpoint["EndpointStatus"] != "InService":
        log.info("endpoint %s is %s: decide next time", endpoint_name, endpoint["EndpointStatus"])
        return None
    config_name = endpoint["EndpointConfigName"]
    config = client.describe_endpoint_config(EndpointConfigName=config_name)
    weights = {
        v["VariantName"]: float(v.get("CurrentWeight", v.get("DesiredWeight", 0.0)))
        for v in endpoint.get("ProductionVariants", [])
    }
    variants = [_variant_spec(v, config_name) for v in config["ProductionVariants"]]
    for variant in variants:
        variant["weight"] = weights.get(variant["name"], variant["weight"])
    shadows = [_variant_spec(v, config_name) for v in config.get("ShadowProductionVariants") or []]
    if len(variants) < 2 and not shadows:
        log.info("endpoint %s serves one variant and no shadow: nothing to decide", endpoint_name)
        return None
    capture = config.get("DataCaptureConfig")
    return {
        "endpoint_name": endpoint_name,
        "config_name": config_name,
        "config_created": utc(config["CreationTime"]).isoformat(),
        "variants": variants,
        "shadows": shadows,
        "weights": {v["name"]: v["weight"] for v in variants},
        "data_capture": capture,
        "capture_uri": capture["DestinationS3Uri"].rstrip("/") if capture else None,
    }


# ---------------------------------------------------------------- statistics


def _after_hour(uri: str, since: datetime) -> bool:
    """Capture keys end in yyyy/mm/dd/hh/<file>: skip whole hours before ``since``."""
    match = _HOUR_FOLDER.search(uri)
    if not match:
        return True
    return "".join(match.groups()) >= since.strftime("%Y%m%d%H")


def capture_records(settings: Settings, described: dict, variant: str) -> list[dict]:
    """The captured requests of ``variant`` since its endpoint config was created."""
    if not described["capture_uri"]:
        return []
    since = utc(described["config_created"])
    store = storage.for_settings(settings)
    prefix = f"{described['capture_uri']}/{described['endpoint_name']}/{variant}/"
    records = []
    for uri in list_uris(settings, prefix):
        if uri.endswith(".jsonl") and _after_hour(uri, since):
            records += rollout.read_capture(store.read(uri).splitlines(), source=uri)
    return [
        r
        for r in records
        if "inferenceTime" not in r["eventMetadata"]
        or utc(r["eventMetadata"]["inferenceTime"]) >= since
    ]


def metric_period(since: datetime, now: datetime) -> int:
    """A GetMetricStatistics period covering ``since``..``now`` in at most 1,440 datapoints,
    and a multiple of what CloudWatch keeps for data that old (60 s up to 15 days, 300 s up to
    63 days, 3600 s beyond)."""
    age_days = (now - since).total_seconds() / 86400
    unit = 60 if age_days <= 15 else 300 if age_days <= 63 else 3600
    return max(unit, math.ceil((now - since).total_seconds() / 1440 / unit) * unit)


def failed_requests(settings: Settings, described: dict, variant: str) -> int:
    """Requests of ``variant`` that failed (SageMaker captures answered ones only): CloudWatch
    ``Invocation5XXErrors`` since the config was created (locally: the shadow log's failed
    shadow answers; production failures reach the caller and are not captured)."""
    since = utc(described["config_created"])
    endpoint = described["endpoint_name"]
    from include.pipeline import targets

    now = datetime.now(UTC)
    period = metric_period(since, now)
    answer = targets.client(settings, "cloudwatch").get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ],
        StartTime=since,
        EndTime=now,
        Period=period,
        Statistics=["Sum"],
    )
    return int(sum(point["Sum"] for point in answer.get("Datapoints", [])))


def collect_stats(settings: Settings, described: dict, *, run_id: str) -> dict:
    """Statistics of every variant; the full ones (with predictions, too big for XCom) go to
    ``Layout.rollout_stats``, the summary (without) is returned for XCom and the task log."""
    names = [v["name"] for v in described["variants"] + described["shadows"]]
    full = {
        name: rollout.variant_stats(
            capture_records(settings, described, name),
            errors=failed_requests(settings, described, name),
        )
        for name in names
    }
    uri = Layout(settings).rollout_stats(described["endpoint_name"], run_id)
    storage.for_settings(settings).write(uri, json.dumps(full, sort_keys=True).encode())
    summary = {n: {k: v for k, v in s.items() if k != "predictions"} for n, s in full.items()}
    return {"stats_uri": uri, "variants": summary}


# ---------------------------------------------------------------- evaluate a challenger


def _champion_and_challenger(described: dict) -> tuple[dict, dict]:
    everyone = {v["name"]: v for v in described["variants"] + described["shadows"]}
    champion = everyone.get(deployment.PRIMARY_VARIANT)
    challengers = [everyone[n] for n in CHALLENGER_NAMES if n in everyone]
    if champion is None or not challengers:
        raise ValueError(
            f"endpoint {described['endpoint_name']} (config {described['config_name']}): "
            f"need a {deployment.PRIMARY_VARIANT!r} variant and one of {CHALLENGER_NAMES}, "
            f"have {sorted(everyone)}"
        )
    return champion, challengers[0]


def settle_config_name(endpoint_name: str, decision: str, run_id: str) -> str:
    """Per-run config name: a retried task targets the same config."""
    return f"{endpoint_name[:40]}-{decision}-{short_hash(run_id)}"


def challenger_alarm(cloudwatch, described: dict) -> dict | None:
    """The state of the rollback alarm on the challenger's variant (``create_rollback_alarm``
    of the main DAG): ``{name, state, reason}``, or None when there is none."""
    _, challenger = _champion_and_challenger(described)
    name = deployment.alarm_name(
        described["endpoint_name"], challenger["name"], deployment.ROLLBACK_ALARM_METRIC
    )
    found = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    if not found:
        return None
    return {"name": name, "state": found[0]["StateValue"], "reason": found[0].get("StateReason")}


def decide(
    settings: Settings,
    described: dict,
    collected: dict,
    params: dict,
    *,
    run_id: str,
    alarm: dict | None = None,
):
    """challenger_decision on the captured traffic; for promote / rollback also the
    SageMakerEndpointOperator config (``update``) that leaves the winner alone on the endpoint.
    The challenger's rollback ``alarm`` (:func:`challenger_alarm`) in ALARM rolls back whatever
    the captured traffic says (failed calls are not captured)."""
    champion, challenger = _champion_and_challenger(described)
    full = json.loads(storage.for_settings(settings).read(collected["stats_uri"]))
    verdict = rollout.challenger_decision(
        full[champion["name"]],
        full[challenger["name"]],
        min_requests=params["min_requests"],
        max_error_rate=params["max_error_rate"],
        min_agreement=params["min_agreement"],
        max_latency_ratio=params["max_latency_ratio"],
    )
    verdict.update(champion=champion["name"], challenger=challenger["name"])
    if alarm and alarm["state"] == "ALARM":
        verdict.update(
            decision="rollback",
            reason=f"alarm {alarm['name']} is in ALARM: {alarm.get('reason') or 'no reason given'}",
        )
    if verdict["decision"] == "wait":
        return {"decision": verdict, "weights": described["weights"], "request": None}
    config_name = settle_config_name(described["endpoint_name"], verdict["decision"], run_id)
    variants = deployment.settle_variants(
        verdict["decision"], champion=champion, challenger=challenger
    )
    endpoint_config = deployment.endpoint_config_request(
        config_name=config_name,
        variants=variants,
        data_capture=_capture_request(described["data_capture"]),
        settings=settings,
    )
    request = deployment.endpoint_operator_config(
        endpoint_name=described["endpoint_name"],
        config_name=config_name,
        operation="update",
        endpoint_config=endpoint_config,
    )
    weights = {v["VariantName"]: v["InitialVariantWeight"] for v in variants}
    return {
        "decision": verdict,
        "weights": weights,
        "request": request,
        "announcement": settle_announcement(described, verdict, run_id=run_id),
    }


def settle_announcement(described: dict, verdict: dict, *, run_id: str) -> dict:
    """The ``reviews_deployed`` extra of a promotion or a rollback: the winner now serves alone
    as the primary variant. The candidate kind is not known here (None)."""
    from include.pipeline import deployment_events

    champion, challenger = _champion_and_challenger(described)
    winner = challenger if verdict["decision"] == "promote" else champion
    return deployment_events.announcement(
        endpoint_name=described["endpoint_name"],
        variant=deployment.PRIMARY_VARIANT,
        model_name=winner["model_name"],
        candidate=None,
        run_id=run_id,
        decision=verdict["decision"],
    )


_CAPTURE_KEYS = (
    "EnableCapture",
    "InitialSamplingPercentage",
    "DestinationS3Uri",
    "KmsKeyId",
    "CaptureOptions",
    "CaptureContentTypeHeader",
)


def _capture_request(described_capture: dict | None) -> dict | None:
    """The DataCaptureConfig of the old config, carried over (the describe adds no keys on aws,
    but keep only the request's keys)."""
    if not described_capture:
        return None
    return {k: described_capture[k] for k in _CAPTURE_KEYS if k in described_capture}


# ---------------------------------------------------------------- rewards and the bandit


def write_ground_truth(
    settings: Settings, endpoint_name: str, labels: dict, *, time: datetime, name: str
) -> str:
    """Store the labels ``{inference_id: label or [labels]}`` of served requests as one
    ground-truth file of hour ``time``; the same ``name`` rewrites the same file (idempotent).
    The human-review loop calls this; so does the main DAG's smoke test (known labels)."""
    hour = time.astimezone(UTC).strftime("%Y/%m/%d/%H")
    uri = f"{Layout(settings).ground_truth(endpoint_name)}{hour}/{name}.jsonl"
    storage.for_settings(settings).write(uri, rewards.ground_truth_lines(labels))
    return uri


def derive_rewards(settings: Settings, described: dict, collected: dict, *, time: str) -> dict:
    """Append the rewards of every production variant's captured requests that have ground
    truth: the join of data capture and labels by inference id (idempotent per request)."""
    endpoint = described["endpoint_name"]
    store = storage.for_settings(settings)
    truth: dict[str, list[int]] = {}
    for uri in list_uris(settings, Layout(settings).ground_truth(endpoint)):
        if uri.endswith(".jsonl"):
            truth |= rewards.read_ground_truth(store.read(uri).splitlines(), source=uri)
    full = json.loads(store.read(collected["stats_uri"]))
    predictions = {
        v["name"]: {
            key.removeprefix("id:"): labels
            for key, labels in full.get(v["name"], {}).get("predictions", {}).items()
            if key.startswith("id:")
        }
        for v in described["variants"]
    }
    records = rewards.rewards_from_labels(predictions, truth, time=time, source="ground_truth")
    uri = Layout(settings).rewards(endpoint)
    with as_file(settings, uri, write=True) as path:
        added = rewards.append_rewards(path, records)
    return {"rewards_uri": uri, "labelled_requests": len(truth), "added": added}


def bandit_weights(settings: Settings, described: dict, params: dict) -> dict:
    """Thompson-sampling weights of the production variants from the reward store."""
    names = [v["name"] for v in described["variants"]]
    if len(names) < 2:
        raise ValueError(
            f"endpoint {described['endpoint_name']}: bandit mode needs two or more production "
            f"variants, has {names} (shadows {[v['name'] for v in described['shadows']]})"
        )
    with as_file(settings, Layout(settings).rewards(described["endpoint_name"])) as path:
        records = [r for r in rewards.read_rewards(path) if r["variant"] in names]
    counts = rewards.reward_counts(records, variants=names)
    weights = rollout.thompson_weights(counts, seed=params["seed"], floor=params["weight_floor"])
    return {
        "rewards": {k: list(v) for k, v in counts.items()},
        "weights": weights,
        "request": deployment.weights_request(described["endpoint_name"], weights),
    }


# ---------------------------------------------------------------- decisions log


def record(
    settings: Settings, *, endpoint_name: str, run_id: str, time: str, mode: str, outcome: dict
) -> dict:
    """Append the decision (idempotent per run) and redraw the weights plot."""
    entry = decisions_log.decision(
        endpoint_name=endpoint_name, run_id=run_id, time=time, mode=mode, outcome=outcome
    )
    layout = Layout(settings)
    log_uri = layout.rollout_decisions(endpoint_name)
    plot_uri = layout.rollout_weights_plot(endpoint_name)
    with as_file(settings, log_uri, write=True) as path:
        added = decisions_log.append_decision(path, entry)
        decisions = decisions_log.read_decisions(path)
    with as_file(settings, plot_uri, write=True) as path:
        rollout.plot_weights(decisions, path)
    return {"decisions_uri": log_uri, "plot_uri": plot_uri, "added": added}
