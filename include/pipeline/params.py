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


# Airflow validates every Param's schema against its draft's metaschema each time it resolves it,
# and serializing the DAG resolves the DAG's params once per operator (80 x 45 here). Draft 2020-12
# (jsonschema's default) walks a metaschema split into vocabularies; draft 7 reads the same keys
# here (type, enum, minimum, exclusiveMinimum, items, ...) at a third of the cost: serializing
# reviews_pipeline 0.53 s instead of 1.55 s, paid by the dag processor on each parse and twice
# at the start of every ``airflow dags test`` run (benchmarks/dag_parse.py).
JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"


def _param(default, **schema) -> Param:
    """A form field whose schema names its draft (``JSON_SCHEMA_DRAFT``)."""
    return Param(default, **{"$schema": JSON_SCHEMA_DRAFT}, **schema)


def _field(default, kind: str | list[str], title: str, description: str, **limits) -> Param:
    """One form field: ``kind`` is its JSON-schema type, ``limits`` the schema's other keys."""
    return _param(default, type=kind, **limits, title=title, description=description)


def _text(default: str, title: str, description: str) -> Param:
    return _field(default, "string", title, description)


def _flag(default: bool, title: str, description: str) -> Param:
    return _field(default, "boolean", title, description)


def _choice(default: str, choices, title: str, description: str) -> Param:
    return _field(default, "string", title, description, enum=list(choices))


def _share(default: float, title: str, description: str, kind="number") -> Param:
    """A fraction: 0 to 1."""
    return _field(default, kind, title, description, minimum=0, maximum=1)


def _count(default: int, title: str, description: str, *, minimum=1, maximum=None) -> Param:
    """A whole number, at least ``minimum`` (1 unless given) and at most ``maximum`` if given."""
    limits = {"minimum": minimum} | ({} if maximum is None else {"maximum": maximum})
    return _field(default, "integer", title, description, **limits)


def _split(default: float, title: str, description: str) -> Param:
    """One split's share of the rows (each at least 0.01, so the other two keep some)."""
    return _field(default, "number", title, description, minimum=0.01, maximum=0.98)


INGESTION = {
    "input_uri": _text(
        "",
        "Input file",
        "Raw reviews CSV: a local path or an s3:// URI, in the public file's shape or the "
        "prepared (sentiment, review_body, product_category) shape. Empty: the generated "
        "sample. The public file: "
        "s3://dlai-practical-data-science/data/raw/womens_clothing_ecommerce_reviews.csv",
    ),
    "encoding": _text(
        "utf-8",
        "Input encoding",
        "Text encoding of the input file; invalid bytes fail the run naming the offset.",
    ),
    "min_reviews_per_category": _count(
        10,
        "Minimum reviews per category",
        "Categories with fewer reviews are set aside (to quarantine, reason "
        "category_too_small), as the course drops them.",
    ),
    "max_bad_fraction": _share(
        0.05,
        "Maximum bad-row fraction",
        "More bad rows than this (rating not 1..5, empty text, ...) fails the run.",
    ),
}

BIAS = {
    "bias_facets": _param(
        list(bias_requests.DEFAULT_PARAMS["bias_facets"]),
        type="array",
        items={"type": "string"},
        minItems=1,
        title="Bias facets",
        description="Columns whose values are compared with all other rows (facet d vs a).",
    ),
    "bias_label_values": _param(
        list(bias_requests.DEFAULT_PARAMS["bias_label_values"]),
        type="array",
        items={"type": "integer", "enum": list(schema.SENTIMENTS)},
        minItems=1,
        title="Favourable sentiment values",
        description="Label values Clarify counts as the positive outcome.",
    ),
    "bias_group_variable": _text(
        bias_requests.DEFAULT_PARAMS["bias_group_variable"],
        "CDDL group variable",
        "Column CDDL conditions on (Clarify's group_variable).",
    ),
    "bias_thresholds": _field(
        {m: t for m, t in bias_gate.DEFAULT_THRESHOLDS.items() if t is not None},
        "object",
        "Bias thresholds",
        "Per metric: the gate passes when |value| <= threshold (null: not gated).",
    ),
    "bias_gate_mode": _choice(
        "warn",
        bias_gate.GATE_MODES,
        "Bias gate mode",
        "fail: stop the run listing every violation; warn: continue and mark the run summary.",
    ),
}

FEATURES = {
    "train_split_percentage": _split(
        0.9, "Train split", "Share of rows for training (the three shares must sum to 1)."
    ),
    "validation_split_percentage": _split(
        0.05, "Validation split", "Share of rows for validation during training."
    ),
    "test_split_percentage": _split(
        0.05, "Test split", "Share of rows held out for the evaluation step."
    ),
    "balance_mode": _choice(
        "sentiment",
        BALANCE_MODES,
        "Balancing",
        "Downsample to the smallest sentiment class, or within each category x "
        "sentiment, as the course does; the bias report is run again on the balanced data.",
    ),
    "max_seq_length": _count(
        _HP["max_seq_length"],
        "Max sequence length",
        "Tokens per review (padded / truncated).",
        minimum=8,
        maximum=512,
    ),
    "online_store": _flag(
        True, "Online store", "Enable the feature group's online store (GetRecord by review_id)."
    ),
}

TRAINING = {
    "pretrained_model": _text(
        "",
        "Pretrained model",
        "Hugging Face id or folder. Empty: the packaged MiniLM locally, roberta-base on aws.",
    ),
    "epochs": _count(_HP["epochs"], "Epochs", "Passes over the training split.", maximum=50),
    "learning_rate": _field(
        _HP["learning_rate"],
        "number",
        "Learning rate",
        "AdamW peak learning rate (linear warm-up and decay).",
        exclusiveMinimum=0,
        maximum=1,
    ),
    "train_batch_size": _count(
        _HP["train_batch_size"], "Batch size", "Reviews per training step.", maximum=1024
    ),
    "train_steps_per_epoch": _count(0, "Max steps per epoch", "0: all batches.", minimum=0),
    "freeze_bert_layer": _flag(False, "Freeze the encoder", "Train only the classification head."),
    "rules_fail_on_issues": _flag(
        False,
        "Fail on Debugger issues",
        "LossNotDecreasing / Overtraining issues fail the run (else: warn).",
    ),
    "rules_mode": _choice(
        training_defaults.RULES_MODES[0],
        training_defaults.RULES_MODES,
        "Rules: who evaluates them",
        "pipeline: the project evaluates LossNotDecreasing, Overtraining and the profiler "
        "report on the training history (no SageMaker Debugger needed; it is closed to new "
        "customers). managed: SageMaker Debugger's rule jobs, for accounts that have it.",
    ),
    "loss_not_decreasing_num_steps": _count(
        10, "LossNotDecreasing: steps", "Rule parameter num_steps."
    ),
    "overtraining_patience_validation": _count(
        10, "Overtraining: validation patience", "Rule parameter patience_validation."
    ),
}

EVALUATION = {
    "min_accuracy": _share(
        0.6,
        "Minimum test accuracy",
        "Register the model only at or above this accuracy (chance is ~0.33).",
    ),
    "model_approval": _choice(
        "PendingManualApproval",
        ["PendingManualApproval", "Approved"],
        "Registration status",
        "Approved versions are deployed by this run; pending ones wait for a "
        "person's Approve / Reject in Airflow's UI (task approve_model), which sets the "
        "registry status.",
    ),
    "approval_timeout_minutes": _count(
        24 * 60,
        "Approval timeout (minutes)",
        "A pending approval not answered within this long is rejected (the run stops before "
        "deploying). 0: wait as long as it takes.",
        minimum=0,
    ),
}

DEPLOYMENT = {
    "endpoint_name": _field(
        "reviews-sentiment",
        "string",
        "Endpoint name",
        "SageMaker endpoint to create or update.",
        pattern="^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
    ),
    "deployment_strategy": _choice(
        "canary",
        deployment_requests.DEPLOYMENT_STRATEGIES,
        "Deployment strategy",
        "How an existing endpoint moves to the new model: blue/green all at once, "
        "canary, linear; or next to the champion: shadow (a copy of the traffic) or ab (a "
        "Challenger variant with its share of the traffic, for the endpoint_rollout DAG's "
        "evaluate or bandit mode).",
    ),
    "ab_challenger_weight": _share(
        0.1,
        "A/B challenger share",
        "ab: share of the traffic the new model (Challenger variant) gets; the "
        "champion (AllTraffic) keeps the rest.",
    ),
    "canary_percent": _count(
        10, "Canary size %", "canary: share of capacity the new model gets first.", maximum=99
    ),
    "linear_step_percent": _count(
        25, "Linear step %", "linear: share of capacity moved per step.", maximum=99
    ),
    "traffic_wait_seconds": _count(
        deployment_requests.ROLLBACK_BAKE_SECONDS,
        "Bake time per step (s)",
        "Wait between traffic shifts; alarms may roll back meanwhile (the "
        "rollback alarm needs two 60 s periods plus CloudWatch's delay to trip).",
        minimum=0,
        maximum=3600,
    ),
    "rollback_error_rate_percent": _field(
        deployment_requests.ROLLBACK_ERROR_RATE_PERCENT,
        "number",
        "Rollback error rate (%)",
        "The new fleet's 5XX error rate (percent of its invocations over the "
        "alarm's two minutes) that rolls a blue/green deployment back.",
        minimum=0,
        maximum=100,
    ),
    "data_capture_percent": _count(
        100,
        "Data capture %",
        "Share of requests and responses captured to the lake.",
        minimum=0,
        maximum=100,
    ),
    "delete_endpoint_after_run": _flag(
        False,
        "Delete the endpoint at the end",
        "Teardown for test runs: nothing is left running.",
    ),
}

CANDIDATES = {
    "candidates": _param(
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
    "leaderboard_metric": _choice(
        "accuracy",
        leaderboard_doc.METRICS,
        "Leaderboard metric",
        "Test-split metric that picks the deployed candidate.",
    ),
    "tuning_max_jobs": _count(
        2,
        "Tuning trials",
        "Training jobs of the fine-tune's tuning job (learning rate, batch size); "
        "the best trial's hyperparameters train the final model. 0: no tuning.",
        minimum=0,
    ),
    "tuning_trial_steps": _count(
        tuning_requests.DEFAULT_BUDGET["trial_steps_per_epoch"],
        "Steps per epoch of a trial",
        "Trials train on a subset: this many batches per epoch.",
    ),
    "tuning_strategy": _choice(
        "Bayesian",
        [s for s in tuning_requests.STRATEGIES if s != "Grid"],
        "Tuning strategy",
        "Bayesian (TPE locally), Random or Hyperband.",
    ),
    "tuning_warm_start_parent": _text(
        "",
        "Warm start from tuning job",
        "A finished tuning job whose trials seed this one (empty: none).",
    ),
    "automl_max_candidates": _count(
        automl_requests.DEFAULT_BUDGET["max_candidates"],
        "Autopilot: candidates",
        "MaxCandidates of the AutoML job.",
    ),
    "automl_max_runtime_s": _count(
        automl_requests.PIPELINE_JOB_RUNTIME_S[pipeline_settings.load().target],
        "Autopilot: job runtime (s)",
        "MaxAutoMLJobRuntimeInSeconds; each candidate gets half of it at most.",
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
    "mode": _choice(
        "evaluate",
        ["evaluate", "bandit"],
        "Mode",
        "evaluate: promote or roll back the challenger from captured metrics; "
        "bandit: Thompson-sampling weights from the stored rewards.",
    ),
    "min_requests": _count(
        100,
        "Minimum requests per variant",
        "Below this the decision is 'wait' (and agreement is not judged).",
    ),
    "max_error_rate": _share(
        0.01, "Max error rate", "A challenger failing more requests than this is rolled back."
    ),
    "min_agreement": _share(
        0.8,
        "Minimum agreement with the champion",
        "Share of paired requests with identical predictions; null: not checked.",
        kind=["number", "null"],
    ),
    "max_latency_ratio": _field(
        1.5,
        ["number", "null"],
        "Max p90 latency ratio (challenger / champion)",
        "A slower challenger is rolled back; null: not checked.",
        minimum=1,
    ),
    "weight_floor": _field(
        0.05,
        "number",
        "Bandit weight floor",
        "Every variant keeps at least this share of traffic, so it keeps learning.",
        minimum=0,
        maximum=0.5,
    ),
    "seed": _field(
        0,
        ["integer", "null"],
        "Bandit sampling seed",
        "Fixed seed: repeatable weights; null: fresh randomness each run.",
    ),
}

# The reviews_batch_scoring DAG's form.
BATCH_SCORING = {
    "input_uri": _text(
        "",
        "Reviews to score",
        'An s3:// prefix or file of JSON lines ({"features": ["review text"]} per line), '
        "or a CSV (s3:// or local path, name ending in .csv) whose text column is converted "
        "to JSON lines in the run's folder. Required.",
    ),
    "text_column": _text(
        "",
        "CSV text column",
        "CSV input only: the column holding the review text. Empty: review_body, "
        "or the public file's 'Review Text'. Rows with empty text are skipped and listed.",
    ),
    "model_package_arn": _text(
        "",
        "Model package version",
        "ARN of an Approved model package version. Empty: the latest Approved "
        "version of the reviews-sentiment model package group.",
    ),
    "instance_type": _choice(
        "ml.m5.xlarge",
        registry_requests.INSTANCE_TYPES,
        "Transform instance type",
        "Instance type of the batch transform job (aws; ignored locally).",
    ),
}

# The model_monitor DAG's form.
MONITOR_PARAMS = {
    "endpoint_name": DEPLOYMENT["endpoint_name"],
    "window_hours": _count(
        1,
        "Window (hours)",
        "Captured traffic of this many hours before the run's end is one window.",
        maximum=8,
    ),
    "min_records": _count(
        50,
        "Minimum captured records",
        "A window with fewer records is not judged and emits no drift event.",
    ),
}

# The human_review DAG's form.
REVIEW_PARAMS = {
    "endpoint_name": DEPLOYMENT["endpoint_name"],
    "confidence_threshold": _share(
        0.6, "Confidence threshold", "Answers with a probability below this go to a person."
    ),
    "sample_rate": _share(
        0.05,
        "Sample of confident answers",
        "Share of the confident answers also sent, to measure the model unbiased.",
    ),
    "max_reviews": _count(
        20,
        "Most review tasks per run",
        "Low-confidence reviews first, then the sample, lowest probability first.",
        maximum=500,
    ),
    "window_hours": _count(
        24,
        "Window (hours)",
        "Captured traffic of this many hours before the run is considered.",
    ),
    "review_timeout_minutes": _field(
        24 * 60,
        "number",
        "Answer timeout (minutes)",
        "An unanswered review task is skipped after this long (no label).",
        exclusiveMinimum=0,
    ),
    "min_new_labels": _count(
        50,
        "New labels that start a retraining",
        "This many new labels since the last event emit reviews_labeled.",
    ),
    "seed": _field(
        0,
        ["integer", "null"],
        "Sampling seed",
        "Which confident answers the random sample picks (by review id).",
    ),
}
