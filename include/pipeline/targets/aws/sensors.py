"""Sensors for the checks the Amazon provider does not wait for (``aws`` target only).

Both subclass the provider's ``SageMakerBaseSensor`` and default to ``mode="reschedule"``, so a
long wait holds no worker slot between pokes.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException

RULE_TERMINAL_STATES = frozenset({"NoIssuesFound", "IssuesFound", "Error", "Stopped"})
_PENDING, _DONE, _ISSUES = "InProgress", "Completed", "IssuesFound"


def rule_statuses(response: dict) -> list[dict]:
    """Debugger and profiler rule evaluations of a DescribeTrainingJob response, together."""
    return [
        *response.get("DebugRuleEvaluationStatuses", []),
        *response.get("ProfilerRuleEvaluationStatuses", []),
    ]


class SageMakerDebugRulesSensor(SageMakerBaseSensor):
    """Wait until every Debugger / Profiler rule of a training job has a terminal status.

    ``IssuesFound`` fails the task naming the rules (``fail_on_issues=True``) or only logs a
    warning; ``Error`` and ``Stopped`` (the rule itself could not finish) are warnings. While the
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
            if outcome in ("Error", "Stopped") or (
                outcome == "IssuesFound" and not self._fail_on_issues
            ):
                self.log.warning(
                    "Rule %s of %s: %s %s",
                    status.get("RuleConfigurationName"),
                    self.job_name,
                    outcome,
                    status.get("StatusDetails", ""),
                )
        if self._fail_on_issues and any(
            s["RuleEvaluationStatus"] == "IssuesFound" for s in statuses
        ):
            return _ISSUES
        return _DONE

    def get_failed_reason_from_response(self, response: dict) -> str:
        found = [
            f"{s.get('RuleConfigurationName')} ({s.get('StatusDetails') or 'no details'})"
            for s in rule_statuses(response)
            if s.get("RuleEvaluationStatus") == "IssuesFound"
        ]
        return f"training job {self.job_name}: rules found issues: {', '.join(found)}"


class SageMakerFeatureGroupSensor(SageMakerBaseSensor):
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
