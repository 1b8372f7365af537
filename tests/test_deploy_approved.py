"""Deploy what was approved: the endpoint's model is created from the approved model package
(every candidate kind), the local CreateModel resolves a package as SageMaker does and refuses
what SageMaker refuses, and approving a pending version later deploys it through
``deploy_approved_model`` (the registry's state change event, read by the local trigger)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path

import pytest

from include.pipeline import approvals, candidates, targets
from include.pipeline import settings as pipeline_settings
from include.pipeline.params import APPROVAL_PARAMS, PARAMS
from include.pipeline.requests import deployment
from include.pipeline.targets.local.endpoint import models
from include.pipeline.targets.local.endpoint.models import SageMakerValidationError
from include.pipeline.targets.local.registry_events import RegistryEventTrigger
from include.pipeline.targets.local.sagemaker import registry
from include.pipeline.tasks import approval
from include.pipeline.tasks import deployment as step
from tests.aws_model import assert_valid
from tests.dag_files import fresh_dag

DEFAULTS = {name: param.value for name, param in PARAMS.items()}
GROUP = approval.package_group()
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310"
ROLE = "arn:aws:iam::000000000000:role/SageMakerExecutionRole"
ARN = f"arn:aws:sagemaker:us-east-1:000000000000:model-package/{GROUP}/3"


# ------------------------------------------------------------------------------ the request
@pytest.mark.parametrize("kind", [k.name for k in candidates.ALL])
@pytest.mark.parametrize("strategy", deployment.DEPLOYMENT_STRATEGIES)
def test_every_kind_is_created_from_its_model_package(kind, strategy):
    """CreateModel names the package alone (its containers come from the registry): valid for
    botocore, no Image or ModelDataUrl, whatever the kind or the strategy."""
    entry = {
        "candidate": kind,
        "image_uri": IMAGE,
        "model_uri": "s3://b/m/model.tar.gz",
        "environment": {},
        "containers": [{"Image": IMAGE, "ModelDataUrl": "s3://b/m/model.tar.gz"}] * 3
        if kind == "autopilot"
        else None,
    }
    built = step.build_deployment_requests(
        pipeline_settings.load(),
        {**DEFAULTS, "deployment_strategy": strategy},
        run_id="r1",
        model_data_url=entry["model_uri"],
        champion_model="reviews-sentiment-0ld",
        candidate=entry,
        model_package_arn=ARN,
    )
    model = built["model"]
    assert_valid("sagemaker", "CreateModel", model)
    assert model["Containers"] == [{"ModelPackageName": ARN}]
    assert "PrimaryContainer" not in model
    assert_valid("sagemaker", "CreateEndpointConfig", built["endpoint_config"])


def test_a_package_model_needs_a_package():
    with pytest.raises(ValueError, match="model package ARN is required"):
        deployment.package_model_request(model_name="m", model_package_arn="", role_arn=ROLE)


# ----------------------------------------------------------------- the local CreateModel engine
def _container(name: str, **environment) -> dict:
    container = {"Image": IMAGE, "ModelDataUrl": f"s3://bucket/models/{name}/model.tar.gz"}
    if environment:
        container["Environment"] = environment
    return container


def register(lake: Path, containers: list[dict], status: str = "PendingManualApproval") -> str:
    """A version of the pipeline's group (the group created when missing)."""
    with contextlib.suppress(registry.ModelPackageGroupExists):
        registry.create_model_package_group({"ModelPackageGroupName": GROUP}, lake)
    request = {
        "ModelPackageGroupName": GROUP,
        "ModelApprovalStatus": status,
        "InferenceSpecification": {
            "Containers": containers,
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "CustomerMetadataProperties": {"model": containers[-1]["ModelDataUrl"]},
    }
    assert_valid("sagemaker", "CreateModelPackage", request)
    return registry.create_model_package(request, lake)["ModelPackageArn"]


def package_model(name: str, arn: str) -> dict:
    request = deployment.package_model_request(
        model_name=name, model_package_arn=arn, role_arn=ROLE
    )
    assert_valid("sagemaker", "CreateModel", request)
    return request


def test_create_model_serves_the_packages_containers(tmp_path):
    one = register(tmp_path, [_container("one", SAGEMAKER_PROGRAM="inference.py")], "Approved")
    pipeline = [_container(f"stage{i}", STAGE=str(i)) for i in range(3)]
    three = register(tmp_path, pipeline, "Approved")
    models.create_model(package_model("from-one", one), tmp_path)
    models.create_model(package_model("from-three", three), tmp_path)
    assert models.serving_containers("from-one", tmp_path) == [
        _container("one", SAGEMAKER_PROGRAM="inference.py")
    ]
    assert models.serving_containers("from-three", tmp_path) == pipeline  # served whole
    # DescribeModel answers the request as it was made, naming the package
    assert models.describe_model("from-one", tmp_path)["Containers"] == [{"ModelPackageName": one}]
    # by name (<group>/<version>) as well as by ARN
    models.create_model(package_model("by-name", f"{GROUP}/1"), tmp_path)
    assert models.serving_containers("by-name", tmp_path)[0]["ModelDataUrl"].endswith(
        "one/model.tar.gz"
    )


@pytest.mark.parametrize("status", ["PendingManualApproval", "Rejected"])
def test_create_model_refuses_a_version_that_is_not_approved(tmp_path, status):
    arn = register(tmp_path, [_container("m")], status)
    with pytest.raises(SageMakerValidationError, match=f"is {status}.*must be Approved"):
        models.create_model(package_model("m", arn), tmp_path)
    assert not (tmp_path / "_sagemaker" / "models" / "m.json").exists()
    registry.update_model_package(
        {"ModelPackageArn": arn, "ModelApprovalStatus": "Approved"}, tmp_path
    )
    models.create_model(package_model("m", arn), tmp_path)  # approved: now it deploys
    # a later rejection leaves the model made from the approved version as it is
    registry.update_model_package(
        {"ModelPackageArn": arn, "ModelApprovalStatus": "Rejected"}, tmp_path
    )
    assert models.serving_containers("m", tmp_path) == [_container("m")]


def test_create_model_refuses_what_sagemaker_refuses(tmp_path):
    arn = register(tmp_path, [_container("m")], "Approved")
    with_image = {**package_model("m", arn)}
    with_image["Containers"] = [{"ModelPackageName": arn, "Image": IMAGE}]
    with pytest.raises(
        SageMakerValidationError, match="Image cannot be given with ModelPackageName"
    ):
        models.create_model(with_image, tmp_path)
    missing = arn.rsplit("/", 1)[0] + "/99"
    with pytest.raises(SageMakerValidationError, match="does not exist"):
        models.create_model(package_model("m", missing), tmp_path)
    two = {**package_model("m", arn), "Containers": [{"ModelPackageName": arn}] * 2}
    with pytest.raises(SageMakerValidationError, match="one container naming it"):
        models.create_model(two, tmp_path)


# ------------------------------------------------------------------ the state change events
def first_event(folder: Path, timeout: float = 10) -> dict:
    """The first event the local approval trigger fires on ``folder``."""

    async def take():
        run = RegistryEventTrigger(str(folder), poll_interval=0.05).run()
        return await asyncio.wait_for(anext(run), timeout)

    return asyncio.run(take()).payload


def test_an_approval_is_an_eventbridge_event_the_trigger_reports_once(tmp_path):
    arn = register(tmp_path, [_container("m")])
    folder = registry.events_folder(tmp_path)
    for path in folder.iterdir():  # the registration's own event: not an approval
        assert (
            json.loads(path.read_text())["detail"]["ModelApprovalStatus"] == "PendingManualApproval"
        )
        path.unlink()
    registry.update_model_package(
        {"ModelPackageArn": arn, "ModelApprovalStatus": "Approved", "ApprovalDescription": "ok"},
        tmp_path,
    )
    payload = first_event(folder)
    (detail,) = approvals.state_changes([{"extra": {"from_trigger": True, "payload": payload}}])
    assert detail["ModelPackageArn"] == arn and detail["ModelApprovalStatus"] == "Approved"
    assert detail["ModelPackageGroupName"] == GROUP
    assert not list(folder.iterdir())  # deleted on reception, as the SQS trigger does
    # the same status again changes nothing: no event
    registry.update_model_package(
        {"ModelPackageArn": arn, "ModelApprovalStatus": "Approved"}, tmp_path
    )
    assert not list(folder.iterdir())


def test_the_event_rule_matches_what_the_registry_sends():
    pattern = approvals.event_rule_pattern(GROUP)
    assert pattern["detail-type"] == [registry.STATE_CHANGE]
    assert pattern["detail"]["ModelPackageGroupName"] == [GROUP]
    rule = json.loads(
        (Path(__file__).parents[1] / "deploy" / "eventbridge" / "approval-rule.json").read_text()
    )
    assert json.loads(rule["EventPattern"].replace("${MODEL_PACKAGE_GROUP}", GROUP)) == pattern


def test_not_json_and_other_events_are_ignored():
    batch = [{"Body": "nope"}, {"Body": json.dumps({"detail-type": "Other", "detail": {}})}]
    assert approvals.state_changes([{"extra": {"payload": {"message_batch": batch}}}]) == []


# ----------------------------------------------------------------- which version is deployed
class Client:
    """The local registry through the local client's methods, with no endpoint."""

    def __init__(self, lake: Path):
        from include.pipeline.targets.local.clients import LocalSageMakerClient

        self.registry = LocalSageMakerClient(lake, "us-east-1", "http://127.0.0.1:9")

    def __getattr__(self, name):
        return getattr(self.registry, name)


def changes_of(lake: Path) -> list[dict]:
    folder = registry.events_folder(lake)
    bodies = [{"Body": p.read_text()} for p in sorted(folder.iterdir())]
    return approvals.state_changes([{"extra": {"payload": {"message_batch": bodies}}}])


def test_choose_deploys_a_later_approval_and_leaves_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(approval, "served_package", lambda client, endpoint: None)
    client, params = Client(tmp_path), {**DEFAULTS, "model_package_arn": None}
    registered = register(tmp_path, [_container("a")], "Approved")
    arn, why = approval.choose(client, params, changes_of(tmp_path), GROUP)
    assert arn is None and "registered Approved" in why  # its run deploys it
    gated = register(tmp_path, [_container("b")])
    client.update_model_package(
        ModelPackageArn=gated,
        ModelApprovalStatus="Approved",
        ApprovalDescription=approvals.gate_note(True, "reviewer"),
    )
    arn, why = approval.choose(client, params, changes_of(tmp_path), GROUP)
    assert arn is None and "approval gate" in why
    early = register(tmp_path, [_container("c")])
    client.update_model_package(ModelPackageArn=early, ModelApprovalStatus="Approved")
    assert approval.choose(client, params, changes_of(tmp_path), GROUP)[0] == early
    later = register(tmp_path, [_container("d")])
    client.update_model_package(ModelPackageArn=later, ModelApprovalStatus="Approved")
    assert approval.choose(client, params, changes_of(tmp_path), GROUP)[0] == later
    # an old approval replayed never rolls back past a newer approved version
    old = [c for c in changes_of(tmp_path) if c["ModelPackageArn"] == early]
    arn, why = approval.choose(client, params, old, GROUP)
    assert arn is None and "not the newest Approved" in why
    # by hand: any Approved version of the group
    assert (
        approval.choose(client, {**params, "model_package_arn": registered}, [], GROUP)[0]
        == registered
    )
    client.update_model_package(ModelPackageArn=later, ModelApprovalStatus="Rejected")
    arn, why = approval.choose(client, {**params, "model_package_arn": later}, [], GROUP)
    assert arn is None and "Rejected now" in why


def test_the_form_checks_its_fields():
    from include.pipeline.params import limit_problems

    values = {name: param.value for name, param in APPROVAL_PARAMS.items()}
    assert limit_problems(values, APPROVAL_PARAMS) == []
    assert "delete_endpoint_after_run" not in APPROVAL_PARAMS
    assert limit_problems({**values, "model_package_arn": "not an arn"}, APPROVAL_PARAMS)


# ------------------------------------------------------- approving later deploys, end to end
@pytest.fixture
def served_lake(tmp_path, monkeypatch):
    """A lake with a tiny model's archive, the local endpoint host on it, the settings at both."""
    from include.pipeline.targets.local.endpoint.host import start_server
    from tests.test_inference import build_tiny_model, pack_model

    lake = tmp_path.resolve()
    model = build_tiny_model(tmp_path / "tiny")
    for name in ("v1", "v2"):
        pack_model(model, lake / "bucket" / "models" / name / "model.tar.gz")
    running = start_server(lake)
    monkeypatch.setenv("PIPELINE_LAKE", str(lake))
    monkeypatch.setenv("PIPELINE_ENDPOINT_PORT", running.url.rsplit(":", 1)[1])
    yield lake, running
    running.stop()


def load_dag():
    return fresh_dag("deploy_approved")


def test_approving_a_pending_version_deploys_it(airflow_db, served_lake):
    """v1 serves (deployed by hand through the DAG); v2 is registered pending, then approved
    with the registry CLI: its state change event reaches the approval trigger, the DAG chooses
    v2 from it and deploys it as a canary update; the endpoint serves v2's package."""
    from include.pipeline import registry_cli
    from include.pipeline.tasks.deployment import current_model
    from tests.conftest import deployed_events, retire_pipeline_assets

    lake, running = served_lake
    env = {"SAGEMAKER_PROGRAM": "inference.py"}
    v1 = register(lake, [_container("v1", **env)], "Approved")
    dag = load_dag()
    conf = {"endpoint_name": "reviews-approved", "traffic_wait_seconds": 0}
    retire_pipeline_assets()
    first = dag.test(run_conf={**conf, "model_package_arn": v1})
    assert first.state == "success"

    v2 = register(lake, [_container("v2", **env)])
    for path in registry.events_folder(lake).iterdir():
        path.unlink()  # the registrations' own events (not approvals)
    assert registry_cli.main(["approve", v2], out=io.StringIO()) == 0
    payload = first_event(registry.events_folder(lake))
    changes = approvals.state_changes([{"extra": {"from_trigger": True, "payload": payload}}])
    sm = targets.client(pipeline_settings.load(), "sagemaker")
    chosen, why = approval.choose(sm, {**DEFAULTS, **conf}, changes, GROUP)
    assert chosen == v2, why

    second = dag.test(run_conf={**conf, "model_package_arn": chosen})
    states = {ti.task_id: ti.state for ti in second.get_task_instances()}
    assert second.state == "success", states
    served = current_model(sm, "reviews-approved")
    assert sm.describe_model(ModelName=served)["Containers"] == [{"ModelPackageName": v2}]
    assert models.serving_containers(served, lake)[0]["ModelDataUrl"].endswith("v2/model.tar.gz")
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName="reviews-approved")[
            "EndpointConfigName"
        ]
    )
    assert [v["ModelName"] for v in config["ProductionVariants"]] == [served]
    (announced,) = deployed_events("reviews-approved", run_id=second.run_id)
    assert announced["model_package_arn"] == v2 and announced["registry_version"] == 2
    assert announced["candidate"] == candidates.PRIMARY.name


def test_the_approval_trigger_serializes_round_trip(tmp_path):
    """The triggerer rebuilds the watcher's trigger from what it serialized."""
    from airflow.sdk.module_loading import import_string

    trigger = RegistryEventTrigger(str(tmp_path), poll_interval=2)
    classpath, kwargs = trigger.serialize()
    assert classpath.endswith("registry_events.RegistryEventTrigger")
    assert import_string(classpath)(**kwargs).serialize() == (classpath, kwargs)
