"""Sensors for the checks the Amazon provider does not wait for (``aws`` target only).

All subclass the provider's ``AwsBaseSensor`` (the SageMaker ones its ``SageMakerBaseSensor``)
and default to ``mode="reschedule"``, so a long wait holds no worker slot between pokes.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow.providers.amazon.aws.hooks.athena import AthenaHook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException
from airflow.sdk.exceptions import AirflowFailException

from include.pipeline.requests.features import FEATURE_STORE_DATABASE
from include.pipeline.requests.training import RULE_FINDINGS
from include.pipeline.targets.offline_store import OfflineStoreCount

RULE_TERMINAL_STATES = frozenset({"NoIssuesFound", "IssuesFound", "Error", "Stopped"})
_PENDING, _DONE, _ISSUES = "InProgress", "Completed", "IssuesFound"


class _TerminalSensor(SageMakerBaseSensor):
    """A failed state is final: fail without retries (the provider raises a retryable error)."""

    def poke(self, context) -> bool:
        response = self.get_sagemaker_response()
        if response["ResponseMetadata"]["HTTPStatusCode"] != 200:
            self.log.info("Bad HTTP response: %s", response)
            return False
        state = self.state_from_response(response)
        self.log.info("%s currently %s", self.resource_type, state)
        if state in self.failed_states():
            raise AirflowFailException(
                f"SageMaker {self.resource_type}: {self.get_failed_reason_from_response(response)}"
            )
        return state not in self.non_terminal_states()


def rule_statuses(response: dict) -> list[dict]:
    """Debugger and profiler rule evaluations of a DescribeTrainingJob response, together."""
    return [
        *response.get("DebugRuleEvaluationStatuses", []),
        *response.get("ProfilerRuleEvaluationStatuses", []),
    ]


class SageMakerDebugRulesSensor(_TerminalSensor):
    """Wait until every Debugger / Profiler rule of a training job has a terminal status.

    ``IssuesFound`` and ``Error`` (the rule could not be evaluated) fail the task naming the
    rules (``fail_on_issues=True``, without retries) or only log a warning; ``Stopped`` warns. While the
    training job runs and SageMaker has listed no rule evaluation yet, the sensor keeps waiting.
    """

    template_fields: Sequence[str] = aws_template_fields("job_name", "fail_on_issues")
    template_ext: Sequence[str] = ()

    def __init__(self, *, job_name: str, fail_on_issues: bool | str = True, **kwargs):
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 60)
        super().__init__(resource_type="debugger rules", **kwargs)
        self.job_name = job_name
        self.fail_on_issues = fail_on_issues

    @property
    def _fail_on_issues(self) -> bool:
        """True for ``True`` or a rendered template ``"True"`` (a Param)."""
        return str(self.fail_on_issues).lower() == "true"

    def non_terminal_states(self) -> set[str]:
        return {_PENDING}

    def failed_states(self) -> set[str]:
        return {_ISSUES}

    def get_sagemaker_response(self) -> dict:
        self.log.info("Poking rule evaluations of training job %s", self.job_name)
        return self.hook.describe_training_job(self.job_name)

    def state_from_response(self, response: dict) -> str:
        statuses = rule_statuses(response)
        job_running = response.get("TrainingJobStatus") in SageMakerHook.non_terminal_states
        if (job_running and not statuses) or any(
            s.get("RuleEvaluationStatus") not in RULE_TERMINAL_STATES for s in statuses
        ):
            return _PENDING
        if not statuses and response.get("DebugRuleConfigurations"):
            self.log.warning(
                "Training job %s is %s but reports no rule evaluations for its configured rules",
                self.job_name,
                response.get("TrainingJobStatus"),
            )
        for status in statuses:
            outcome = status["RuleEvaluationStatus"]
            if outcome == "Stopped" or (outcome in RULE_FINDINGS and not self._fail_on_issues):
                self.log.warning(
                    "Rule %s of %s: %s %s",
                    status.get("RuleConfigurationName"),
                    self.job_name,
                    outcome,
                    status.get("StatusDetails", ""),
                )
        if self._fail_on_issues and any(
            s["RuleEvaluationStatus"] in RULE_FINDINGS for s in statuses
        ):
            return _ISSUES
        return _DONE

    def get_failed_reason_from_response(self, response: dict) -> str:
        found = [
            f"{s.get('RuleConfigurationName')} {s.get('RuleEvaluationStatus')} "
            f"({s.get('StatusDetails') or 'no details'})"
            for s in rule_statuses(response)
            if s.get("RuleEvaluationStatus") in RULE_FINDINGS
        ]
        return f"training job {self.job_name}: rules found issues: {', '.join(found)}"


class SageMakerFeatureGroupSensor(_TerminalSensor):
    """Wait until a feature group is ``Created``; fail with its reason on ``CreateFailed``."""

    template_fields: Sequence[str] = aws_template_fields("feature_group_name")
    template_ext: Sequence[str] = ()

    def __init__(self, *, feature_group_name: str, **kwargs):
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 30)
        super().__init__(resource_type="feature group", **kwargs)
        self.feature_group_name = feature_group_name

    def non_terminal_states(self) -> set[str]:
        return {"Creating"}

    def failed_states(self) -> set[str]:
        return {"CreateFailed", "Deleting", "DeleteFailed"}

    def get_sagemaker_response(self) -> dict:
        self.log.info("Poking feature group %s", self.feature_group_name)
        return self.hook.conn.describe_feature_group(FeatureGroupName=self.feature_group_name)

    def state_from_response(self, response: dict) -> str:
        state = response.get("FeatureGroupStatus")
        if state is None:
            raise AirflowException(
                f"feature group {self.feature_group_name}: response has no FeatureGroupStatus"
            )
        return state

    def get_failed_reason_from_response(self, response: dict) -> str:
        return (
            f"feature group {self.feature_group_name} is {response.get('FeatureGroupStatus')}: "
            f"{response.get('FailureReason', 'no FailureReason given')}"
        )


class SageMakerOfflineStoreSensor(OfflineStoreCount, AwsBaseSensor[AthenaHook]):
    """Wait until the offline store holds the records the prepare job put (``expected``).

    PutRecord reaches the offline store asynchronously (minutes); the training-set queries run
    after this sensor, so they never read an empty or partial store. Each poke is one Athena
    ``query`` (a count, :func:`include.pipeline.requests.features.offline_record_count_sql`)
    through the provider's ``AthenaHook``. On ``timeout`` the task fails naming both counts.
    """

    aws_hook_class = AthenaHook
    template_fields: Sequence[str] = aws_template_fields(*OfflineStoreCount.template_fields)

    def __init__(
        self,
        *,
        query: str,
        expected: int | str,
        output_location: str,
        database: str = FEATURE_STORE_DATABASE,
        **kwargs,
    ):
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 60)
        kwargs.setdefault("timeout", 45 * 60)  # AWS: usually within 15 minutes
        super().__init__(**kwargs)
        self.query = query
        self.expected = expected
        self.output_location = output_location
        self.database = database

    def count(self) -> int:
        hook = self.hook
        query_id = hook.run_query(
            self.query, {"Database": self.database}, {"OutputLocation": self.output_location}
        )
        state = hook.poll_query_status(query_id, max_polling_attempts=60, sleep_time=2)
        if state != "SUCCEEDED":
            raise AirflowException(
                f"offline store count query {query_id} {state}: "
                f"{hook.get_state_change_reason(query_id)}"
            )
        rows = hook.get_query_results(query_id)["ResultSet"]["Rows"]
        return int(rows[1]["Data"][0]["VarCharValue"]) if len(rows) > 1 else 0

    def poke(self, context) -> bool:
        return self.arrived(self.count())

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowSensorTimeout

        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(self.shortfall(f", after {self.timeout}s")) from exc
