"""Sensors for the checks the Amazon provider does not wait for (``aws`` target only).

All subclass the provider's ``AwsBaseSensor`` (the SageMaker ones its ``SageMakerBaseSensor``)
and default to ``mode="reschedule"``, so a long wait holds no worker slot between pokes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from airflow.providers.amazon.aws.hooks.athena import AthenaHook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.sensors import sagemaker as sagemaker_sensors
from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException
from airflow.sdk.exceptions import AirflowFailException

from include.pipeline.requests.features import FEATURE_STORE_DATABASE
from include.pipeline.requests.training import RULE_FINDINGS
from include.pipeline.targets.aws.triggers import connection_of
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


class SageMakerAutoMLSensor(_TerminalSensor, sagemaker_sensors.SageMakerAutoMLSensor):
    """The provider's AutoML sensor, deferrable, stopping the job when a person kills the task.

    Deferred (the default), it waits on :class:`StoppingAutoMLTrigger`, whose ``on_kill`` sends
    StopAutoMLJob when a person marks the task failed or successful or clears it (the provider
    has no AutoML trigger, and a sensor in reschedule mode runs no code between pokes to stop
    anything). A Failed or Stopped job fails the task without retries: a stopped job does not
    come back, and clearing the create task starts the next attempt (the provider's sensor
    passes a Stopped job).
    """

    def __init__(self, *, job_name: str, deferrable: bool = True, **kwargs):
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 60)
        super().__init__(job_name=job_name, **kwargs)
        self.deferrable = deferrable

    def failed_states(self) -> set[str]:
        return {*SageMakerHook.failed_states, "Stopped"}

    def get_failed_reason_from_response(self, response: dict) -> str:
        return (
            f"AutoML job {self.job_name} is {response['AutoMLJobStatus']}: "
            f"{response.get('FailureReason', 'no FailureReason given')}"
        )

    def execute(self, context) -> None:
        from include.pipeline.targets.aws.triggers import StoppingAutoMLTrigger

        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        self.defer(
            trigger=StoppingAutoMLTrigger(
                job_name=self.job_name,
                poll_interval=self.poke_interval,
                max_attempts=max(1, int(self.timeout // max(self.poke_interval, 1))),
                **connection_of(self),
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context, event: dict | None = None) -> None:
        event = event or {"status": "missing", "message": "the trigger sent no event"}
        if event["status"] == "timeout":
            raise AirflowFailException(f"AutoML job {self.job_name}: {event.get('message')}")
        if event["status"] != "success":
            raise AirflowFailException(
                f"AutoML job {self.job_name} is {event.get('job_status', event['status'])}: "
                f"{event.get('message') or 'no FailureReason given'}"
            )
        self.log.info("AutoML job %s completed", self.job_name)

    def on_kill(self) -> None:
        """Killed during a poke: stop the job (deferred, the trigger does)."""
        from include.pipeline.targets.aws.operators import stop_job

        stop_job(self.hook.conn, "AutoML", self.job_name, self.log)


class SageMakerOfflineStoreSensor(OfflineStoreCount, AwsBaseSensor[AthenaHook]):
    """Wait until the offline store holds the records the prepare job put (``expected``).

    PutRecord reaches the offline store asynchronously (minutes); the training-set queries run
    after this sensor, so they never read an empty or partial store. Each count is one Athena
    ``query`` (:func:`include.pipeline.requests.features.offline_record_count_sql`) through the
    provider's ``AthenaHook``. On ``timeout`` the task fails naming both counts.

    Deferrable (the default): the task starts a count and defers to the provider's
    ``AthenaTrigger`` while the query runs, reads the count, and defers again for
    ``poke_interval`` before the next one, so no worker slot is held while Athena works or
    while the store fills. Otherwise each poke (``mode="reschedule"``) starts a count and waits
    for it ``sleep_time`` x ``max_polling_attempts`` seconds at most; a count not done by then
    is stopped and the poke returns False.
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
        deferrable: bool = True,
        sleep_time: int = 2,
        max_polling_attempts: int | None = None,
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
        self.deferrable = deferrable
        self.sleep_time = sleep_time
        # A count query's longest wait: two minutes deferred, ten seconds inside a poke.
        self.max_polling_attempts = max_polling_attempts or (60 if deferrable else 5)
        self._started: datetime | None = None  # when execute started, in this process

    def start_count(self) -> str:
        """Start one count query; its QueryExecutionId."""
        return self.hook.run_query(
            self.query, {"Database": self.database}, {"OutputLocation": self.output_location}
        )

    def read_count(self, query_id: str) -> int:
        """The count of a query that ended (one that failed fails the task with its reason)."""
        hook = self.hook
        state = hook.check_query_status(query_id)
        if state != "SUCCEEDED":
            raise AirflowException(
                f"offline store count query {query_id} {state}: "
                f"{hook.get_state_change_reason(query_id)}"
            )
        results = hook.get_query_results(query_id)
        if results is None:
            raise AirflowException(f"offline store count query {query_id} returned no results")
        rows = results["ResultSet"]["Rows"]
        return int(rows[1]["Data"][0]["VarCharValue"]) if len(rows) > 1 else 0

    def poke(self, context) -> bool:
        query_id = self.start_count()
        state = self.hook.poll_query_status(
            query_id, max_polling_attempts=self.max_polling_attempts, sleep_time=self.sleep_time
        )
        if state in AthenaHook.INTERMEDIATE_STATES:
            self.log.info("Count query %s is still %s: stopping it, next poke", query_id, state)
            self.hook.stop_query(query_id)
            return False
        return self.arrived(self.read_count(query_id))

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowSensorTimeout

        if self.deferrable:
            self._started = datetime.now(UTC)
            self._defer_count()
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(self.shortfall(f", after {self.timeout:g} s")) from exc

    def _deadline(self, context) -> datetime:
        """When the wait times out: ``timeout`` after the task started (a task resumed from
        deferral keeps its start date; a cleared or retried one starts anew)."""
        ti = context.get("ti") if context else None
        started = getattr(ti, "start_date", None) or self._started or datetime.now(UTC)
        return started + timedelta(seconds=self.timeout)

    def _defer_count(self) -> NoReturn:
        from airflow.providers.amazon.aws.triggers.athena import AthenaTrigger

        query_id = self.start_count()
        self.log.info("Counting this run's records in the offline store: query %s", query_id)
        self.defer(
            trigger=AthenaTrigger(
                query_execution_id=query_id,
                waiter_delay=self.sleep_time,
                waiter_max_attempts=self.max_polling_attempts,
                **connection_of(self),
            ),
            method_name="count_done",
        )

    def count_done(self, context, event: dict | None = None) -> int:
        """The count query ended (the ``AthenaTrigger``'s event): done when every record is
        there, else the next count after ``poke_interval`` (or the timeout's message)."""
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger
        from airflow.sdk.exceptions import AirflowSensorTimeout

        if event is None or event.get("status") != "success":
            raise AirflowException(f"offline store count query: {event}")
        found = self.read_count(event["value"])
        if self.arrived(found):
            return found
        now, end = datetime.now(UTC), self._deadline(context)
        if now >= end:
            raise AirflowSensorTimeout(self.shortfall(f", after {self.timeout:g} s"))
        self.defer(
            trigger=DateTimeTrigger(moment=min(now + timedelta(seconds=self.poke_interval), end)),
            method_name="count_again",
        )

    def count_again(self, context, event: dict | None = None) -> NoReturn:
        """``poke_interval`` has passed since the last count: the next one."""
        self._defer_count()
