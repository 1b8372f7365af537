"""The bias box: SageMaker Clarify's pre-training bias report of the ingested data and the bias
gate, which stops the run (`fail`) or lets it go on (`warn`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk import XComArg, chain, task

from include.pipeline import task_ids as T
from include.pipeline.layout import Layout
from include.pipeline.settings import Settings
from include.pipeline.stages import stage

if TYPE_CHECKING:
    from include.pipeline.tasks.summary import SummaryContext


class Bias(NamedTuple):
    configs: XComArg  # publish_bias_configs: Clarify's analysis config of each data stage
    request: XComArg  # build_bias_request: the pre-training job's request
    gate: XComArg  # bias_gate: branches to publish_code or stop_on_bias
    stopped: XComArg  # stop_on_bias


@stage("bias", "Bias", "Clarify pre-training bias report and the bias gate")
def bias(settings: Settings, ops: SimpleNamespace, ingested: XComArg) -> Bias:
    """The report runs on the ingested data; the gate's verdict is kept for the registry."""
    layout = Layout(settings)

    @task(task_id="publish_bias_configs", multiple_outputs=True)
    def publish_bias_configs(params: dict, run_id=None) -> dict:
        """Clarify's analysis_config.json of each stage (raw, balanced), from the Params."""
        from include.pipeline.tasks import bias

        return bias.publish_analysis_configs(settings, params, run_id=run_id)

    @task(task_id="build_bias_request")
    def build_bias_request(ingested: dict, config_uri: str, run_id=None) -> dict:
        from include.pipeline.tasks import bias

        dataset = layout.dataset_prefix(ingested["raw_hash"])
        return bias.build_request(
            settings, run_id=run_id, config_uri=config_uri, dataset_uri=dataset
        )

    bias_configs = publish_bias_configs()
    bias_request = build_bias_request(ingested, bias_configs["raw"])
    detect_bias = ops.SageMakerProcessingOperator(
        task_id="detect_pretraining_bias", config=bias_request
    )

    @task.branch(task_id=T.BIAS_GATE)
    def bias_gate(request: dict, params: dict, ti=None) -> str:
        """Thresholds from the Params; `fail` mode stops the run, `warn` continues."""
        from include.pipeline.tasks import bias

        verdict = bias.result(settings, request, params)
        ti.xcom_push(key=T.BIAS_VERDICT_KEY, value=verdict)
        if verdict["violations"] and params["bias_gate_mode"] == "fail":
            return T.STOP_ON_BIAS
        return T.PUBLISH_CODE

    @task(task_id=T.STOP_ON_BIAS)
    def stop_on_bias(ti=None) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from include.pipeline.tasks.bias import format_violations

        violations = ti.xcom_pull(task_ids=T.BIAS_GATE, key=T.BIAS_VERDICT_KEY)["violations"]
        raise AirflowFailException(
            f"bias gate failed: {len(violations)} violation(s)\n{format_violations(violations)}"
        )

    gate = bias_gate(bias_request)
    stopped_on_bias = stop_on_bias()
    chain(bias_request, detect_bias, gate, stopped_on_bias)
    return Bias(configs=bias_configs, request=bias_request, gate=gate, stopped=stopped_on_bias)


def summarize(ctx: SummaryContext) -> dict[str, Any]:
    """The summary's ``bias``: the gate's verdict, with the balanced data's report (a job of the
    features box) when it ran."""
    verdict = ctx.pull(T.BIAS_GATE, T.BIAS_VERDICT_KEY)
    if not verdict:
        return {}
    entry = dict(verdict)
    balanced = ctx.pull(T.BUILD_BALANCED_BIAS_REQUEST)
    if balanced and ctx.pull(T.DETECT_BALANCED_BIAS):
        from include.pipeline.tasks.bias import result

        entry["balanced"] = result(ctx.settings, balanced, ctx.params)
    return {"bias": entry}
