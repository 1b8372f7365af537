"""How long a SageMaker job or endpoint update may take, and whether an update took, read from
the request itself: the same answer for both targets' operators.

The provider's waits give up after 30 minutes (60 attempts x 30 s) while a job's
``MaxRuntimeInSeconds`` allows hours; a retry then started a second job. The operators size
their waits from these figures instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable

# SageMaker's default StoppingCondition.MaxRuntimeInSeconds (training and processing): one day.
DEFAULT_MAX_RUNTIME_SECONDS = 86_400
# Provisioning, image and data download before the clock starts, model upload after it stops.
STARTUP_MARGIN_SECONDS = 3_600
# An endpoint create (or an update without a blue/green policy): instances and health checks.
ENDPOINT_CREATE_SECONDS = 3_600

# ``job_type`` (the provider trigger's name) -> (name field, status field)
JOB_FIELDS = {
    "Training": ("TrainingJobName", "TrainingJobStatus"),
    "Processing": ("ProcessingJobName", "ProcessingJobStatus"),
    "Transform": ("TransformJobName", "TransformJobStatus"),
    "Tuning": ("HyperParameterTuningJobName", "HyperParameterTuningJobStatus"),
}
# States a previous attempt's job can be adopted in (waited on, or its result returned). A
# Stopping job was stopped on purpose (a person marked or cleared the task) and ends Stopped:
# the next attempt starts a new job instead.
ADOPTABLE_STATES = frozenset({"InProgress", "Completed"})
# The Stop* call of each job type, with the name field of JOB_FIELDS (AutoML: its own).
STOP_CALLS = {
    "Training": "stop_training_job",
    "Processing": "stop_processing_job",
    "Transform": "stop_transform_job",
    "Tuning": "stop_hyper_parameter_tuning_job",
    "AutoML": "stop_auto_ml_job",
}
STOP_NAME_FIELDS = {**{k: v[0] for k, v in JOB_FIELDS.items()}, "AutoML": "AutoMLJobName"}


# The attempts of a tuning or AutoML job after a failed or stopped one (AWS keeps the names of
# ended jobs of these kinds, and the provider adds no suffix): <name>-r1 ... (attempt_name).
MAX_ATTEMPTS = 9


def attempt_name(name: str, attempt: int) -> str:
    """The name of attempt ``attempt`` (1-9) after job ``name`` ended unadoptable: within AWS's
    32 characters."""
    if not 1 <= attempt <= MAX_ATTEMPTS:
        raise ValueError(f"attempt {attempt} is not in 1..{MAX_ATTEMPTS}")
    return f"{name[:28]}-r{attempt}"


def latest_attempt(
    base: str,
    describe: Callable[[str], dict | None],
    status_field: str,
    passed_over: Callable[[str, str], None] = lambda name, status: None,
) -> tuple[str, dict | None]:
    """The attempt of job ``base`` to adopt or to start: ``base`` itself, else the first of
    ``<base>-r1`` ... that runs, has completed or does not exist yet (``describe`` answers
    None). A failed or stopped one (a person cleared or marked its task) is passed over (and
    told to ``passed_over``). Returns the name and its description (None: start it)."""
    name, described = base, describe(base)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if described is None or described[status_field] in ADOPTABLE_STATES:
            break
        passed_over(name, described[status_field])
        name = attempt_name(base, attempt)
        described = describe(name)
    return name, described


def stop_request(job_type: str, name: str) -> tuple[str, dict]:
    """``(client method, keyword arguments)`` of the call that stops job ``name``."""
    if job_type not in STOP_CALLS:
        raise ValueError(f"job type {job_type!r} is not one of {sorted(STOP_CALLS)}")
    return STOP_CALLS[job_type], {STOP_NAME_FIELDS[job_type]: name}


# The error codes of a Stop* call on a job that has ended or never started: nothing is left to
# stop, which is what the caller wanted.
NOT_RUNNING_ERRORS = frozenset({"ValidationException", "ResourceNotFound"})


def _seconds(value, default: int) -> int:
    return int(value) if value not in (None, "") else default


def job_wait_seconds(job_type: str, request: dict) -> int:
    """The longest the job of ``request`` (a Create*Job request) may take to end."""
    if job_type == "Tuning":
        config = request.get("HyperParameterTuningJobConfig") or {}
        limits = config.get("ResourceLimits") or {}
        if limits.get("MaxRuntimeInSeconds"):
            return int(limits["MaxRuntimeInSeconds"]) + STARTUP_MARGIN_SECONDS
        definition = request.get("TrainingJobDefinition") or {}
        per_job = job_wait_seconds("Training", definition)
        rounds = math.ceil(
            int(limits.get("MaxNumberOfTrainingJobs") or 1)
            / max(int(limits.get("MaxParallelTrainingJobs") or 1), 1)
        )
        return per_job * rounds
    stopping = request.get("StoppingCondition") or {}
    if job_type == "Training" and stopping.get("MaxWaitTimeInSeconds"):  # managed spot
        runtime = int(stopping["MaxWaitTimeInSeconds"])
    else:
        runtime = _seconds(stopping.get("MaxRuntimeInSeconds"), DEFAULT_MAX_RUNTIME_SECONDS)
    return runtime + STARTUP_MARGIN_SECONDS


def endpoint_wait_seconds(endpoint_request: dict) -> int:
    """The longest CreateEndpoint / UpdateEndpoint of ``endpoint_request`` may take to settle:
    the blue/green policy's MaximumExecutionTimeoutInSeconds plus its termination wait."""
    policy = (endpoint_request.get("DeploymentConfig") or {}).get("BlueGreenUpdatePolicy") or {}
    if not policy.get("MaximumExecutionTimeoutInSeconds"):
        return ENDPOINT_CREATE_SECONDS
    return (
        int(policy["MaximumExecutionTimeoutInSeconds"])
        + int(policy.get("TerminationWaitInSeconds") or 0)
        + ENDPOINT_CREATE_SECONDS
    )


def attempts(wait_seconds: int, delay_seconds: int) -> int:
    """Waiter attempts that cover ``wait_seconds`` at one describe per ``delay_seconds``."""
    return math.ceil(wait_seconds / max(int(delay_seconds), 1)) + 1


def rollback_alarms(endpoint_request: dict) -> list[str]:
    rollback = (endpoint_request.get("DeploymentConfig") or {}).get(
        "AutoRollbackConfiguration"
    ) or {}
    return [a["AlarmName"] for a in rollback.get("Alarms") or []]


def previous_attempt(described: dict, endpoint_request: dict) -> str | None:
    """What a retried CreateEndpoint / UpdateEndpoint finds (``described``: DescribeEndpoint):
    ``"waiting"`` when the request is already being applied (a previous attempt sent it; a
    second UpdateEndpoint is refused while Updating), ``"done"`` when the endpoint already
    serves it, None when it must be sent."""
    pending = (described.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
    status, serving = described.get("EndpointStatus"), described.get("EndpointConfigName")
    wanted = endpoint_request["EndpointConfigName"]
    if (status == "Updating" and pending == wanted) or (status == "Creating" and serving == wanted):
        return "waiting"
    return "done" if status == "InService" and serving == wanted else None


def not_serving_reason(described: dict, endpoint_request: dict, alarms: list[dict]) -> str | None:
    """Why a settled endpoint does not serve the config just requested (None when it does).

    A blue/green update that SageMaker rolls back ends ``InService`` on the old config, so
    ``InService`` alone says nothing; ``alarms`` are DescribeAlarms' MetricAlarms of the
    update's rollback alarms, named when they are (or were) in ALARM.
    """
    name, wanted = endpoint_request["EndpointName"], endpoint_request["EndpointConfigName"]
    status, serving = described.get("EndpointStatus"), described.get("EndpointConfigName")
    if status == "InService" and serving == wanted:
        return None
    tripped = [
        f"{a['AlarmName']} ({a.get('StateValue')}: {a.get('StateReason', '')})"
        for a in alarms
        if a.get("StateValue") == "ALARM"
    ]
    reason = described.get("FailureReason") or "no FailureReason given"
    if status == "InService":
        return (
            f"endpoint {name}: the update to {wanted} was rolled back, it still serves "
            f"{serving}; alarm tripped: {', '.join(tripped) or 'none in ALARM now'}; {reason}"
        )
    return f"endpoint {name} is {status} (wanted {wanted} InService): {reason}"
