"""Low-confidence predictions -> Airflow HITL -> labels -> reviews_labeled

### Human review: what the model is unsure of, labeled by a person in Airflow's UI

Runs over the endpoint's captured traffic on each `reviews_deployed` event (a model now serves:
the reviews of the window the previous model answered are asked before its traffic ages out of
the window) and on its clock as the fallback (`PIPELINE_REVIEW_SCHEDULE`, default `@daily`;
`none`: on the event only).

1. **select_reviews**: the form's limits checked again (a REST client may skip the form; a
   value past one fails the run here), then answers with probability below
   `confidence_threshold`, plus a random `sample_rate` of the confident ones (to measure the
   model), at most `max_reviews`; reviews already labeled are not asked again.
2. **review** (one mapped task per review, Airflow's `HITLOperator`): the reviewer sees the text
   and the model's label and probability and picks -1 / 0 / 1 (Airflow's UI, or the REST API's
   `hitlDetails`). The answer is stored at once as a label in
   `s3://<bucket>/labels/<endpoint>/<review_id>.json` (once per review) and as ground truth for
   the bandit's rewards. No answer within `review_timeout_minutes` skips the task.
3. **count_new_labels** -> **announce_labels**: `min_new_labels` new labels emit the
   `reviews_labeled` asset event, which starts `reviews_pipeline` (retraining on the labels).

With `PIPELINE_REVIEW_UI=a2i` (aws accounts that have Amazon A2I), each review is a human loop
instead (StartHumanLoop), and the answers are read from the flow definition's S3 output.
"""

from __future__ import annotations

from airflow.sdk import chain, task

from include.pipeline import feedback, targets
from include.pipeline import settings as pipeline_settings
from include.pipeline.dag_defaults import endpoint_dag
from include.pipeline.hitl import ReviewOperator
from include.pipeline.params import REVIEW_PARAMS

SETTINGS = pipeline_settings.load()
LABELED = feedback.labeled_asset(SETTINGS)

with endpoint_dag(
    "human_review", SETTINGS, __doc__, REVIEW_PARAMS, "human-in-the-loop", SETTINGS.review_schedule
) as dag:

    @task(task_id="select_reviews")
    def select_reviews(params: dict, dag_run=None) -> list[dict]:
        """The form's limits checked again first (a REST client may skip them), then the
        window's answers a person should label."""
        from datetime import timedelta

        from include.pipeline import run_inputs
        from include.pipeline.tasks import human_review

        run_inputs.check_form(params, REVIEW_PARAMS, "human_review run")
        until = dag_run.data_interval_end or dag_run.run_after
        chosen = human_review.candidates(
            SETTINGS,
            targets.client(SETTINGS, "sagemaker"),
            params,
            since=until - timedelta(hours=int(params["window_hours"])),
            until=until,
        )
        print(f"{len(chosen)} review task(s)")
        return [human_review.review_prompt(r) for r in chosen]

    reviews = select_reviews()
    if SETTINGS.review_ui == "a2i":

        @task(task_id="review")
        def review(prompts: list[dict]) -> dict:
            from include.pipeline.tasks import human_review

            return human_review.a2i_review(SETTINGS, [p["review"] for p in prompts])

        answered = review(reviews)
    else:
        answered = ReviewOperator.partial(task_id="review").expand_kwargs(reviews)

    @task.short_circuit(task_id="count_new_labels", trigger_rule="all_done")
    def count_new_labels(params: dict, ti=None) -> bool:
        from include.pipeline.tasks import human_review

        event = human_review.labeled_event(SETTINGS, params)
        ti.xcom_push(key="event", value=event)
        return event is not None

    @task(task_id="announce_labels", outlets=[LABELED])
    def announce_labels(ti=None, outlet_events=None) -> dict:
        event = ti.xcom_pull(task_ids="count_new_labels", key="event")
        outlet_events[LABELED].extra = event
        return event

    chain(answered, count_new_labels(), announce_labels())
