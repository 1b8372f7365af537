"""endpoint_rollout reads the rollback alarm on the challenger's variant: the local CloudWatch
evaluates a Shadow variant's alarm over the answers the endpoint host logged for it, and an
alarm in ALARM rolls the challenger back however little traffic was captured."""

from __future__ import annotations

import json

from include.pipeline import rollout as rollout_rules
from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from include.pipeline.params import ROLLOUT_PARAMS
from include.pipeline.requests import deployment
from include.pipeline.targets.local.endpoint.data_capture import CaptureWriter
from include.pipeline.tasks import rollout

ENDPOINT = "reviews-sentiment"
PARAMS = {name: param.value for name, param in ROLLOUT_PARAMS.items()}


def _variant(name: str, model: str) -> dict:
    spec = {"name": name, "model_name": model, "instance_type": "ml.m5.large"}
    return spec | {"instance_count": 1, "weight": 1.0}


DESCRIBED = {
    "endpoint_name": ENDPOINT,
    "config_name": "with-shadow",
    "variants": [_variant("AllTraffic", "champion-model")],
    "shadows": [_variant("Shadow", "challenger-model")],
    "weights": {"AllTraffic": 1.0},
    "data_capture": None,
}


def _shadow_answers(lake, failed: int, answered: int) -> None:
    """What the endpoint host logs for a shadow variant's copies (its errors included)."""
    writer = CaptureWriter(lake)
    request = (b'{"features": ["nice dress"]}', "application/json")
    for i in range(failed + answered):
        error = "ModelError: predict exploded" if i < failed else None
        output = None if error else b'[{"predicted_label": 1, "probability": 0.9}]'
        writer.log_shadow(ENDPOINT, "AllTraffic", "Shadow", request, b"[]", output, error)


def _alarms(settings) -> None:
    cloudwatch = targets.client(settings, "cloudwatch")
    for variant in ("AllTraffic", "Shadow"):
        request = deployment.rollback_alarm_request(endpoint_name=ENDPOINT, variant_name=variant)
        cloudwatch.put_metric_alarm(**request)


def test_the_local_cloudwatch_evaluates_the_shadows_alarm_from_its_logged_answers(tmp_path):
    settings = pipeline_settings.load({"PIPELINE_LAKE": str(tmp_path)})
    _alarms(settings)
    _shadow_answers(tmp_path, failed=3, answered=7)
    cloudwatch = targets.client(settings, "cloudwatch")
    states = {a["AlarmName"]: a["StateValue"] for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert states == {
        f"{ENDPOINT}-Shadow-5xx-rate": "ALARM",  # 30% of its calls failed, over 5%
        f"{ENDPOINT}-AllTraffic-5xx-rate": "INSUFFICIENT_DATA",  # the champion: nothing seen
    }
    found = rollout.challenger_alarm(cloudwatch, DESCRIBED)
    assert found["name"] == f"{ENDPOINT}-Shadow-5xx-rate" and found["state"] == "ALARM"
    assert "Shadow failed 3 of 10 calls" in found["reason"]


def test_a_challenger_alarm_in_alarm_rolls_back_before_enough_requests(tmp_path):
    settings = pipeline_settings.load({"PIPELINE_LAKE": str(tmp_path)})
    _alarms(settings)
    stats = {
        "AllTraffic": rollout_rules.variant_stats([]),
        "Shadow": rollout_rules.variant_stats([]),
    }
    uri = settings.s3_uri("rollout", ENDPOINT, "stats", "r1.json")
    targets.load(settings).storage.write(uri, json.dumps(stats).encode())
    collected = {"stats_uri": uri}
    quiet = rollout.decide(settings, DESCRIBED, collected, PARAMS, run_id="r1", alarm=None)
    assert quiet["decision"]["decision"] == "wait" and quiet["request"] is None
    _shadow_answers(tmp_path, failed=2, answered=0)
    alarm = rollout.challenger_alarm(targets.client(settings, "cloudwatch"), DESCRIBED)
    outcome = rollout.decide(settings, DESCRIBED, collected, PARAMS, run_id="r1", alarm=alarm)
    assert outcome["decision"]["decision"] == "rollback"
    assert outcome["decision"]["reason"].startswith(f"alarm {ENDPOINT}-Shadow-5xx-rate is in ALARM")
    variants = outcome["request"]["EndpointConfig"]["ProductionVariants"]
    assert [(v["VariantName"], v["ModelName"]) for v in variants] == [
        ("AllTraffic", "champion-model")
    ]
