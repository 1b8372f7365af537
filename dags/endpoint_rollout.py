"""Captured traffic and rewards -> promote / roll back / bandit weights

### Endpoint rollout: promote or roll back a challenger, or run a bandit over the variants

Runs on each `reviews_deployed` event (a model now serves: `reviews_pipeline` deployed a
**shadow** (`Shadow` variant) or **A/B** (`Challenger` variant) challenger next to the champion
(`AllTraffic`), or this DAG settled one), and on its clock as the fallback
(`PIPELINE_ROLLOUT_SCHEDULE`, default `@hourly`; `none`: on the event only).

1. **describe_endpoint**: the form's limits checked again (a REST client may skip the form; a
   value past one fails the run here), then variants, live weights, capture prefix. Stops the
   run (short-circuit) when the endpoint is missing, busy, or serves a single variant and no
   shadow.
2. **collect_variant_stats**: the data-capture records of each variant since its endpoint config
   was created (`DataCaptureConfig.DestinationS3Uri/<endpoint>/<variant>/yyyy/mm/dd/hh/`):
   requests, errors, label mix, latency, and agreement of paired answers (shadow copies, or A/B
   requests sent to both variants with one inference id). Full statistics:
   `s3://<bucket>/rollout/<endpoint>/stats/`.
3. **choose_mode**: `evaluate` or `bandit` (Param `mode`).
   - **decide_challenger**: promote (the challenger alone becomes `AllTraffic`), roll back (the
     champion alone; also whenever the rollback alarm on the challenger's variant is in ALARM),
     or wait (too few requests). A rollback reaches the notifier (`PIPELINE_NOTIFY`). **settle_endpoint** sends the new endpoint
     config with UpdateEndpoint and, once the winner serves alone, emits `reviews_deployed`
     (decision `promote` / `rollback`). AWS refuses that update while a variant it removes is
     autoscaled: **release_autoscaling** deregisters the endpoint's scalable targets before it
     and **register_autoscaling** gives the winner the same bounds and target tracking after it.
   - **derive_rewards**: joins each production variant's captured requests with the labels
     in `s3://<bucket>/ground-truth/<endpoint>/` (Model Monitor's ground-truth format, by
     inference id) into the reward store `s3://<bucket>/rewards/<endpoint>.jsonl`.
     **update_bandit_weights**: Thompson sampling on those rewards (Beta posteriors per variant,
     a weight floor so no arm starves), sent with UpdateEndpointWeightsAndCapacities.
4. **record_decision**: appends to `s3://<bucket>/rollout/<endpoint>/decisions.jsonl` (one line
   per run) and redraws `s3://<bucket>/rollout/<endpoint>/weights.png`.

Same task ids on both targets: SageMaker through the Amazon provider on `aws`, the local endpoint
server on `local`.
"""

from __future__ import annotations

from airflow.sdk import XComArg, chain, task

from include.pipeline import deploy_stage, deployment_events, targets
from include.pipeline import settings as pipeline_settings
from include.pipeline import task_ids as T
from include.pipeline.dag_defaults import endpoint_dag
from include.pipeline.params import ROLLOUT_PARAMS

SETTINGS = pipeline_settings.load()
DEPLOYED = deployment_events.deployed_asset(SETTINGS)
# what a promotion or a rollback runs: AWS refuses an UpdateEndpoint that removes an
# autoscaled variant, so the endpoint's autoscaling is released first and registered again after
SETTLE_TASKS = [T.RELEASE_AUTOSCALING, "settle_endpoint", T.REGISTER_AUTOSCALING]

with endpoint_dag(
    "endpoint_rollout", SETTINGS, __doc__, ROLLOUT_PARAMS, "rollout", SETTINGS.rollout_schedule
) as dag:

    @task.short_circuit(task_id="describe_endpoint")
    def describe_endpoint(params: dict) -> dict | None:
        """The form's limits checked again first (a REST client may skip them); nothing to decide
        (no endpoint, busy, one variant and no shadow) skips the rest."""
        from include.pipeline import run_inputs
        from include.pipeline.tasks import rollout

        run_inputs.check_form(params, ROLLOUT_PARAMS, "endpoint_rollout run")
        return rollout.describe(targets.client(SETTINGS, "sagemaker"), params["endpoint_name"])

    @task(task_id="collect_variant_stats")
    def collect_variant_stats(described: dict, run_id=None) -> dict:
        from include.pipeline.tasks import rollout

        collected = rollout.collect_stats(SETTINGS, described, run_id=run_id)
        for name, stats in collected["variants"].items():
            print(f"{name}: {stats}")
        return collected

    @task.branch(task_id="choose_mode")
    def choose_mode(params: dict) -> str:
        return "derive_rewards" if params["mode"] == "bandit" else "decide_challenger"

    @task.branch(task_id="decide_challenger")
    def decide_challenger(
        described: dict, collected: dict, params: dict, run_id=None, ti=None
    ) -> list[str]:
        """Promote or roll back -> settle_endpoint (between releasing the endpoint's autoscaling
        and registering it again on the winner); wait -> straight to the log."""
        from include.pipeline.tasks import autoscaling, rollout

        alarm = rollout.challenger_alarm(targets.client(SETTINGS, "cloudwatch"), described)
        outcome = rollout.decide(SETTINGS, described, collected, params, run_id=run_id, alarm=alarm)
        print(f"decision: {outcome['decision']['decision']} ({outcome['decision']['reason']})")
        if outcome["decision"]["decision"] == "rollback":
            from airflow.sdk import get_current_context

            from include.pipeline import notify

            context = get_current_context()
            context["decision"] = outcome["decision"]  # type: ignore[typeddict-unknown-key]
            for notifier in notify.callbacks(SETTINGS, *notify.CHALLENGER_ROLLED_BACK):
                notifier(context)
        ti.xcom_push(key="outcome", value=outcome)
        ti.xcom_push(key="settle_request", value=outcome["request"])
        if outcome["request"] is None:
            return ["record_decision"]
        scaling = targets.client(SETTINGS, "application-autoscaling")
        carried = autoscaling.carried(scaling, params["endpoint_name"], list(outcome["weights"]))
        ti.xcom_push(key="autoscaling", value=carried)
        return [*SETTLE_TASKS, "record_decision"]

    @task(task_id="derive_rewards")
    def derive_rewards(described: dict, collected: dict, dag_run=None) -> dict:
        """Join the variants' captured requests with the ground truth into the reward store."""
        from include.pipeline.tasks import rollout

        derived = rollout.derive_rewards(
            SETTINGS, described, collected, time=dag_run.run_after.isoformat()
        )
        print(f"{derived['added']} new rewards from {derived['labelled_requests']} labels")
        return derived

    @task(task_id="update_bandit_weights")
    def update_bandit_weights(described: dict, params: dict) -> dict:
        from include.pipeline.tasks import rollout

        outcome = rollout.bandit_weights(SETTINGS, described, params)
        print(f"rewards {outcome['rewards']} -> weights {outcome['weights']}")
        client = targets.client(SETTINGS, "sagemaker")
        client.update_endpoint_weights_and_capacities(**outcome["request"])
        return outcome

    @task(task_id="record_decision", trigger_rule="none_failed_min_one_success")
    def record_decision(params: dict, ti=None, run_id=None, dag_run=None) -> dict:
        from include.pipeline.tasks import rollout

        outcome = ti.xcom_pull(task_ids="decide_challenger", key="outcome") or ti.xcom_pull(
            task_ids="update_bandit_weights"
        )
        return rollout.record(
            SETTINGS,
            endpoint_name=params["endpoint_name"],
            run_id=run_id,
            time=dag_run.run_after.isoformat(),
            mode=params["mode"],
            outcome=outcome,
        )

    described = describe_endpoint()
    collected = collect_variant_stats(described)
    mode = choose_mode()
    decided = decide_challenger(described, collected)
    rewarded = derive_rewards(described, collected)
    bandit = update_bandit_weights(described)

    def announce_settled(context, result=None) -> None:
        """The winner serves alone: `reviews_deployed` (decision promote / rollback)."""
        from include.pipeline import deployment_events

        outcome = context["ti"].xcom_pull(task_ids="decide_challenger", key="outcome")
        context["outlet_events"][DEPLOYED].extra = deployment_events.stamped(
            outcome["announcement"]
        )

    settle_endpoint = targets.operators(SETTINGS).SageMakerEndpointOperator(
        task_id="settle_endpoint",
        config=XComArg(decided.operator, key="settle_request"),
        operation="update",
        outlets=[DEPLOYED],
        post_execute=announce_settled,
    )
    recorded = record_decision()
    release_autoscaling, register_autoscaling = deploy_stage.autoscaling_tasks(SETTINGS)
    released = release_autoscaling()  # type: ignore[call-arg]  # params: from the context
    registered = register_autoscaling(XComArg(decided.operator, key="autoscaling"))

    chain(described, collected, mode, [decided, rewarded])
    chain(rewarded, bandit)
    chain(decided, released, settle_endpoint, registered)
    chain(settle_endpoint, recorded)
    chain(decided, recorded)
    chain(bandit, recorded)
