"""The main DAG's run parameters: the Airflow UI trigger form, with titles, limits and defaults.

One place for each knob; the DAG file passes ``params=PARAMS`` and the steps read ``params[...]``.
The form's JSON schema refuses invalid values before a run starts.
"""

from __future__ import annotations

from airflow.sdk import Param

from include.jobs.feature_records import BALANCE_MODES
from include.pipeline import schema
from include.pipeline import settings as pipeline_settings
from include.pipeline.documents import leaderboard as leaderboard_doc
from include.pipeline.requests import automl as automl_requests
from include.pipeline.requests import bias as bias_requests
from include.pipeline.requests import deployment as deployment_requests
from include.pipeline.requests import registry as registry_requests
from include.pipeline.requests import training as training_defaults
from include.pipeline.requests import tuning as tuning_requests
from include.pipeline.tasks import bias as bias_gate

# Model defaults are the target's measured defaults, kept in one place: requests/training.py.
_HP = training_defaults.DEFAULT_HYPERPARAMETERS[pipeline_settings.load().target]

INGESTION = {
    "input_uri": Param(
        "",
        type="string",
        title="Input file",
        description=(
            "Raw reviews CSV: a local path or an s3:// URI, in the public file's shape or the "
            "prepared (sentiment, review_body, product_category) shape. Empty: the generated "
            "sample. The public file: "
            "s3://dlai-practical-data-science/data/raw/womens_clothing_ecommerce_reviews.csv"
        ),
    ),
    "encoding": Param(
        "utf-8",
        type="string",
        title="Input encoding",
        description="Text encoding of the input file; invalid bytes fail the run naming the offset.",
    ),
    "min_reviews_per_category": Param(
        10,
        type="integer",
        minimum=1,
        title="Minimum reviews per category",
        description="Categories with fewer reviews are set aside (to quarantine, reason "
        "category_too_small), as the course drops them.",
    ),
    "max_bad_fraction": Param(
        0.05,
        type="number",
        minimum=0,
        maximum=1,
        title="Maximum bad-row fraction",
        description="More bad rows than this (rating not 1..5, empty text, ...) fails the run.",
    ),
}

BIAS = {
    "bias_facets": Param(
        list(bias_requests.DEFAULT_PARAMS["bias_facets"]),
        type="array",
        items={"type": "string"},
        minItems=1,
        title="Bias facets",
        description="Columns whose values are compared with all other rows (facet d vs a).",
    ),
    "bias_label_values": Param(
        list(bias_requests.DEFAULT_PARAMS["bias_label_values"]),
        type="array",
        items={"type": "integer", "enum": list(schema.SENTIMENTS)},
        minItems=1,
        title="Favourable sentiment values",
        description="Label values Clarify counts as the positive outcome.",
    ),
    "bias_group_variable": Param(
        bias_requests.DEFAULT_PARAMS["bias_group_variable"],
        type="string",
        title="CDDL group variable",
        description="Column CDDL conditions on (Clarify's group_variable).",
    ),
    "bias_thresholds": Param(
        {m: t for m, t in bias_gate.DEFAULT_THRESHOLDS.items() if t is not None},
        type="object",
        title="Bias thresholds",
        description="Per metric: the gate passes when |value| <= threshold (null: not gated).",
    ),
    "bias_gate_mode": Param(
        "warn",
        type="string",
        enum=list(bias_gate.GATE_MODES),
        title="Bias gate mode",
        description="fail: stop the run listing every violation; warn: continue and mark the "
        "run summary.",
    ),
}

FEATURES = {
    "train_split_percentage": Param(
        0.9,
        type="number",
        minimum=0.01,
        maximum=0.98,
        title="Train split",
        description="Share of rows for training (the three shares must sum to 1).",
    ),
    "validation_split_percentage": Param(
        0.05,
        type="number",
        minimum=0.01,
        maximum=0.98,
        title="Validation split",
        description="Share of rows for validation during training.",
    ),
    "test_split_percentage": Param(
        0.05,
        type="number",
        minimum=0.01,
        maximum=0.98,
        title="Test split",
        description="Share of rows held out for the evaluation step.",
    ),
    "balance_mode": Param(
        "sentiment",
        type="string",
        enum=list(BALANCE_MODES),
        title="Balancing",
        description="Downsample to the smallest sentiment class, or within each category x "
        "sentiment, as the course does; the bias report is run again on the balanced data.",
    ),
    "max_seq_length": Param(
        training_defaults.DEFAULT_HYPERPARAMETERS[pipeline_settings.load().target][
            "max_seq_length"
        ],
        type="integer",
        minimum=8,
        maximum=512,
        title="Max sequence length",
        description="Tokens per review (padded / truncated).",
    ),
    "online_store": Param(
        True,
        type="boolean",
        title="Online store",
        description="Enable the feature group's online store (GetRecord by review_id).",
    ),
}

TRAINING = {
    "pretrained_model": Param(
        "",
        type="string",
        title="Pretrained model",
        description="Hugging Face id or folder. Empty: the packaged MiniLM locally, "
        "roberta-base on aws.",
    ),
    "epochs": Param(
        _HP["epochs"],
        type="integer",
        minimum=1,
        maximum=50,
        title="Epochs",
        description="Passes over the training split.",
    ),
    "learning_rate": Param(
        _HP["learning_rate"],
        type="number",
        exclusiveMinimum=0,
        maximum=1,
        title="Learning rate",
        description="AdamW peak learning rate (linear warm-up and decay).",
    ),
    "train_batch_size": Param(
        _HP["train_batch_size"],
        type="integer",
        minimum=1,
        maximum=1024,
        title="Batch size",
        description="Reviews per training step.",
    ),
    "train_steps_per_epoch": Param(
        0,
        type="integer",
        minimum=0,
        title="Max steps per epoch",
        description="0: all batches.",
    ),
    "freeze_bert_layer": Param(
        False,
        type="boolean",
        title="Freeze the encoder",
        description="Train only the classification head.",
    ),
    "rules_fail_on_issues": Param(
        False,
        type="boolean",
        title="Fail on Debugger issues",
        description="LossNotDecreasing / Overtraining issues fail the run (else: warn).",
    ),
    "rules_mode": Param(
        training_defaults.RULES_MODES[0],
        type="string",
        enum=list(training_defaults.RULES_MODES),
        title="Rules: who evaluates them",
        description=(
            "pipeline: the project evaluates LossNotDecreasing, Overtraining and the profiler "
            "report on the training history (no SageMaker Debugger needed; it is closed to new "
            "customers). managed: SageMaker Debugger's rule jobs, for accounts that have it."
        ),
    ),
    "loss_not_decreasing_num_steps": Param(
        10,
        type="integer",
        minimum=1,
        title="LossNotDecreasing: steps",
        description="Rule parameter num_steps.",
    ),
    "overtraining_patience_validation": Param(
        10,
        type="integer",
        minimum=1,
        title="Overtraining: validation patience",
        description="Rule parameter patience_validation.",
    ),
}

EVALUATION = {
    "min_accuracy": Param(
        0.6,
        type="number",
        minimum=0,
        maximum=1,
        title="Minimum test accuracy",
        description="Register the model only at or above this accuracy (chance is ~0.33).",
    ),
    "model_approval": Param(
        "PendingManualApproval",
        type="string",
        enum=["PendingManualApproval", "Approved"],
        title="Registration status",
        description="Approved versions are deployed by this run; pending ones wait for a "
        "person's Approve / Reject in Airflow's UI (task approve_model), which sets the "
        "registry status.",
    ),
}

DEPLOYMENT = {
    "endpoint_name": Param(
        "reviews-sentiment",
        type="string",
        pattern="^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
        title="Endpoint name",
        description="SageMaker endpoint to create or update.",
    ),
    "deployment_strategy": Param(
        "canary",
        type="string",
        enum=list(deployment_requests.DEPLOYMENT_STRATEGIES),
        title="Deployment strategy",
        description="How an existing endpoint moves to the new model: blue/green all at once, "
        "canary, linear; or next to the champion: shadow (a copy of the traffic) or ab (a "
        "Challenger variant with its share of the traffic, for the endpoint_rollout DAG's "
        "evaluate or bandit mode).",
    ),
    "ab_challenger_weight": Param(
        0.1,
        type="number",
        minimum=0,
        maximum=1,
        title="A/B challenger share",
        description="ab: share of the traffic the new model (Challenger variant) gets; the "
        "champion (AllTraffic) keeps the rest.",
    ),
    "canary_percent": Param(
        10,
        type="integer",
        minimum=1,
        maximum=99,
        title="Canary size %",
        description="canary: share of capacity the new model gets first.",
    ),
    "linear_step_percent": Param(
        25,
        type="integer",
        minimum=1,
        maximum=99,
        title="Linear step %",
        description="linear: share of capacity moved per step.",
    ),
    "traffic_wait_seconds": Param(
        deployment_requests.ROLLBACK_BAKE_SECONDS,
        type="integer",
        minimum=0,
        maximum=3600,
        title="Bake time per step (s)",
        description="Wait between traffic shifts; alarms may roll back meanwhile (the "
        "rollback alarm needs two 60 s periods plus CloudWatch's delay to trip).",
    ),
    "rollback_error_rate_percent": Param(
        deployment_requests.ROLLBACK_ERROR_RATE_PERCENT,
        type="number",
        minimum=0,
        maximum=100,
        title="Rollback error rate (%)",
        description="The new fleet's 5XX error rate (percent of its invocations over the "
        "alarm's two minutes) that rolls a blue/green deployment back.",
    ),
    "data_capture_percent": Param(
        100,
        type="integer",
        minimum=0,
        maximum=100,
        title="Data capture %",
        description="Share of requests and responses captured to the lake.",
    ),
    "delete_endpoint_after_run": Param(
        False,
        type="boolean",
        title="Delete the endpoint at the end",
        description="Teardown for test runs: nothing is left running.",
    ),
}

CANDIDATES = {
    "candidates": Param(
        list(leaderboard_doc.CANDIDATES),
        type="array",
        items={"type": "string", "enum": list(leaderboard_doc.CANDIDATES)},
        minItems=1,
        uniqueItems=True,
        title="Model candidates",
        description="What this run trains: finetune (the BERT-family fine-tune, tuned first), "
        "blazingtext (the built-in text classifier), autopilot (AutoML). Each is evaluated on "
        "the same test split; the best by the leaderboard metric is deployed, the others stay "
        "registered.",
    ),
    "leaderboard_metric": Param(
        "accuracy",
        type="string",
        enum=list(leaderboard_doc.METRICS),
        title="Leaderboard metric",
        description="Test-split metric that picks the deployed candidate.",
    ),
    "tuning_max_jobs": Param(
        2,
        type="integer",
        minimum=0,
        title="Tuning trials",
        description="Training jobs of the fine-tune's tuning job (learning rate, batch size); "
        "the best trial's hyperparameters train the final model. 0: no tuning.",
    ),
    "tuning_trial_steps": Param(
        tuning_requests.DEFAULT_BUDGET["trial_steps_per_epoch"],
        type="integer",
        minimum=1,
        title="Steps per epoch of a trial",
        description="Trials train on a subset: this many batches per epoch.",
    ),
    "tuning_strategy": Param(
        "Bayesian",
        type="string",
        enum=[s for s in tuning_requests.STRATEGIES if s != "Grid"],
        title="Tuning strategy",
        description="Bayesian (TPE locally), Random or Hyperband.",
    ),
    "tuning_warm_start_parent": Param(
        "",
        type="string",
        title="Warm start from tuning job",
        description="A finished tuning job whose trials seed this one (empty: none).",
    ),
    "automl_max_candidates": Param(
        automl_requests.DEFAULT_BUDGET["max_candidates"],
        type="integer",
        minimum=1,
        title="Autopilot: candidates",
        description="MaxCandidates of the AutoML job.",
    ),
    "automl_max_runtime_s": Param(
        automl_requests.PIPELINE_JOB_RUNTIME_S[pipeline_settings.load().target],
        type="integer",
        minimum=1,
        title="Autopilot: job runtime (s)",
        description="MaxAutoMLJobRuntimeInSeconds; each candidate gets half of it at most.",
    ),
}

PARAMS = {
    **INGESTION,
    **BIAS,
    **FEATURES,
    **TRAINING,
    **CANDIDATES,
    **EVALUATION,
    **DEPLOYMENT,
}

# The endpoint_rollout DAG's form.
ROLLOUT_PARAMS = {
    "endpoint_name": DEPLOYMENT["endpoint_name"],
    "mode": Param(
        "evaluate",
        type="string",
        enum=["evaluate", "bandit"],
        title="Mode",
        description="evaluate: promote or roll back the challenger from captured metrics; "
        "bandit: Thompson-sampling weights from the stored rewards.",
    ),
    "min_requests": Param(
        100,
        type="integer",
        minimum=1,
        title="Minimum requests per variant",
        description="Below this the decision is 'wait' (and agreement is not judged).",
    ),
    "max_error_rate": Param(
        0.01,
        type="number",
        minimum=0,
        maximum=1,
        title="Max error rate",
        description="A challenger failing more requests than this is rolled back.",
    ),
    "min_agreement": Param(
        0.8,
        type=["number", "null"],
        minimum=0,
        maximum=1,
        title="Minimum agreement with the champion",
        description="Share of paired requests with identical predictions; null: not checked.",
    ),
    "max_latency_ratio": Param(
        1.5,
        type=["number", "null"],
        minimum=1,
        title="Max p90 latency ratio (challenger / champion)",
        description="A slower challenger is rolled back; null: not checked.",
    ),
    "weight_floor": Param(
        0.05,
        type="number",
        minimum=0,
        maximum=0.5,
        title="Bandit weight floor",
        description="Every variant keeps at least this share of traffic, so it keeps learning.",
    ),
    "seed": Param(
        0,
        type=["integer", "null"],
        title="Bandit sampling seed",
        description="Fixed seed: repeatable weights; null: fresh randomness each run.",
    ),
}

# The reviews_batch_scoring DAG's form.
BATCH_SCORING = {
    "input_uri": Param(
        "",
        type="string",
        title="Reviews to score",
        description=(
            'An s3:// prefix or file of JSON lines ({"features": ["review text"]} per line), '
            "or a CSV (s3:// or local path, name ending in .csv) whose text column is converted "
            "to JSON lines in the run's folder. Required."
        ),
    ),
    "text_column": Param(
        "",
        type="string",
        title="CSV text column",
        description="CSV input only: the column holding the review text. Empty: review_body, "
        "or the public file's 'Review Text'. Rows with empty text are skipped and listed.",
    ),
    "model_package_arn": Param(
        "",
        type="string",
        title="Model package version",
        description="ARN of an Approved model package version. Empty: the latest Approved "
        "version of the reviews-sentiment model package group.",
    ),
    "instance_type": Param(
        "ml.m5.xlarge",
        type="string",
        enum=list(registry_requests.INSTANCE_TYPES),
        title="Transform instance type",
        description="Instance type of the batch transform job (aws; ignored locally).",
    ),
}

# The model_monitor DAG's form.
MONITOR_PARAMS = {
    "endpoint_name": DEPLOYMENT["endpoint_name"],
    "window_hours": Param(
        1,
        type="integer",
        minimum=1,
        maximum=8,
        title="Window (hours)",
        description="Captured traffic of this many hours before the run's end is one window.",
    ),
    "min_records": Param(
        50,
        type="integer",
        minimum=1,
        title="Minimum captured records",
        description="A window with fewer records is not judged and emits no drift event.",
    ),
}

# The human_review DAG's form.
REVIEW_PARAMS = {
    "endpoint_name": DEPLOYMENT["endpoint_name"],
    "confidence_threshold": Param(
        0.6,
        type="number",
        minimum=0,
        maximum=1,
        title="Confidence threshold",
        description="Answers with a probability below this go to a person.",
    ),
    "sample_rate": Param(
        0.05,
        type="number",
        minimum=0,
        maximum=1,
        title="Sample of confident answers",
        description="Share of the confident answers also sent, to measure the model unbiased.",
    ),
    "max_reviews": Param(
        20,
        type="integer",
        minimum=1,
        maximum=500,
        title="Most review tasks per run",
        description="Low-confidence reviews first, then the sample, lowest probability first.",
    ),
    "window_hours": Param(
        24,
        type="integer",
        minimum=1,
        title="Window (hours)",
        description="Captured traffic of this many hours before the run is considered.",
    ),
    "review_timeout_minutes": Param(
        24 * 60,
        type="number",
        exclusiveMinimum=0,
        title="Answer timeout (minutes)",
        description="An unanswered review task is skipped after this long (no label).",
    ),
    "min_new_labels": Param(
        50,
        type="integer",
        minimum=1,
        title="New labels that start a retraining",
        description="This many new labels since the last event emit reviews_labeled.",
    ),
    "seed": Param(
        0,
        type=["integer", "null"],
        title="Sampling seed",
        description="Which confident answers the random sample picks (by review id).",
    ),
}
