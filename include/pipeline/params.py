"""The main DAG's run parameters: the Airflow UI trigger form, with titles, limits and defaults.

One place for each knob; the DAG file passes ``params=PARAMS`` and the steps read ``params[...]``.
The form's JSON schema refuses invalid values before a run starts, and every text field has a
limit (a length, a pattern or a list of choices): run parameters are untrusted input, and the
first task checks them again (:func:`limit_problems`, :mod:`include.pipeline.run_inputs`).

Optional text fields are nullable (``["null", "string"]``, default ``None``): Airflow's form
turns an empty field into null and would mark a plain string field required; the code reads
None and ``""`` alike. The form's sections follow how a person thinks about a run: the input
first (Airflow's default section, open), then bias, features and training, candidates and
tuning, registry and approval, deployment (collapsed). Titles are plain words; the AWS term is
in the description.
"""

from __future__ import annotations

import copy

from airflow.sdk import Param

from include.jobs.feature_records import BALANCE_MODES
from include.pipeline import ingestion, schema
from include.pipeline import settings as pipeline_settings
from include.pipeline.documents import bias as bias_gate
from include.pipeline.documents import leaderboard as leaderboard_doc
from include.pipeline.requests import automl as automl_requests
from include.pipeline.requests import autoscaling as autoscaling_requests
from include.pipeline.requests import bias as bias_requests
from include.pipeline.requests import deployment as deployment_requests
from include.pipeline.requests import registry as registry_requests
from include.pipeline.requests import training as training_defaults
from include.pipeline.requests import tuning as tuning_requests

# Model defaults are the target's measured defaults, kept in one place: requests/training.py.
_HP = training_defaults.DEFAULT_HYPERPARAMETERS[pipeline_settings.load().target]


# Airflow validates every Param's schema against its draft's metaschema each time it resolves it,
# and serializing the DAG resolves the DAG's params once per operator (80 x 45 here). Draft 2020-12
# (jsonschema's default) walks a metaschema split into vocabularies; draft 7 reads the same keys
# here (type, enum, minimum, exclusiveMinimum, items, ...) at a third of the cost: serializing
# reviews_pipeline 0.53 s instead of 1.55 s, paid by the dag processor on each parse and twice
# at the start of every ``airflow dags test`` run (benchmarks/dag_parse.py).
JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"

# Text limits. Free text (a path, a URI, a model name): bounded length, no control characters.
PATH_MAX_LENGTH = 1024
# (A lookahead over [\s\S]: "$" would match before a trailing newline in Python's re.)
PRINTABLE = r"^(?![\s\S]*[\u0000-\u001f\u007f])"
# A column name of the ingested table (bias facets, the CDDL group variable).
COLUMN_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
# A Python codec name (utf-8, latin-1, cp1252, utf_16, ...).
ENCODING_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}$"
# SageMaker's name patterns (empty allowed where the field is optional).
ENDPOINT_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
TUNING_JOB_NAME = r"^$|^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$"
MODEL_PACKAGE_ARN = (
    r"^$|^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:model-package/[\S]{1,2048}$"
)

# Form sections, in the order they show (the input has Airflow's default section, open first).
BIAS_SECTION = "Bias"
TRAINING_SECTION = "Features and training"
CANDIDATES_SECTION = "Candidates and tuning"
REGISTRY_SECTION = "Registry and approval"
DEPLOYMENT_SECTION = "Deployment"


def _param(default, **schema) -> Param:
    """A form field whose schema names its draft (``JSON_SCHEMA_DRAFT``)."""
    return Param(default, **{"$schema": JSON_SCHEMA_DRAFT}, **schema)


def _field(default, kind: str | list[str], title: str, description: str, **limits) -> Param:
    """One form field: ``kind`` is its JSON-schema type, ``limits`` the schema's other keys
    (``section`` included)."""
    return _param(default, type=kind, **limits, title=title, description=description)


def _text(
    default: str | None,
    title: str,
    description: str,
    *,
    pattern: str = PRINTABLE,
    max_length: int = PATH_MAX_LENGTH,
    **extra,
) -> Param:
    """A text field: at most ``max_length`` characters matching ``pattern``; optional (nullable,
    so the form leaves it empty) when its default is None."""
    kind = ["null", "string"] if default is None else "string"
    return _field(default, kind, title, description, maxLength=max_length, pattern=pattern, **extra)


def _flag(default: bool, title: str, description: str, **extra) -> Param:
    return _field(default, "boolean", title, description, **extra)


def _choice(default: str, choices, title: str, description: str, **extra) -> Param:
    return _field(default, "string", title, description, enum=list(choices), **extra)


def _share(default: float, title: str, description: str, kind="number", **extra) -> Param:
    """A fraction: 0 to 1."""
    return _field(default, kind, title, description, minimum=0, maximum=1, **extra)


def _count(
    default: int, title: str, description: str, *, minimum=1, maximum=None, **extra
) -> Param:
    """A whole number, at least ``minimum`` (1 unless given) and at most ``maximum`` if given."""
    limits = {"minimum": minimum} | ({} if maximum is None else {"maximum": maximum})
    return _field(default, "integer", title, description, **limits, **extra)


def _split(default: float, title: str, description: str, **extra) -> Param:
    """One split's share of the rows (each at least 0.01, so the other two keep some)."""
    return _field(default, "number", title, description, minimum=0.01, maximum=0.98, **extra)


def _endpoint_name(**extra) -> Param:
    return _text(
        "reviews-sentiment",
        "Endpoint name",
        "The serving endpoint to create or update (a SageMaker endpoint; locally the "
        "endpoint service on 127.0.0.1).",
        pattern=ENDPOINT_NAME,
        max_length=63,
        **extra,
    )


def _section(title: str, fields: dict[str, Param]) -> dict[str, Param]:
    """The fields, shown in the form's section ``title`` (Airflow 3's Param ``section``)."""
    for param in fields.values():
        param.schema["section"] = title
    return fields


# The fields whose schema admits null only so the form does not star them (:func:`_prefilled`):
# emptied, they are refused. A field that declares null itself (``null: not checked``) keeps it.
_NULL_FOR_THE_FORM: set[int] = set()


def _prefilled(fields: dict[str, Param]) -> dict[str, Param]:
    """Fields with a default stop looking required in the form: Airflow stars every field whose
    type excludes null, although the form already holds its default. Their schemas admit null,
    and the first task refuses a field a person emptied (:func:`limit_problems`), naming its
    default."""
    for param in fields.values():
        if param.value is None:
            continue
        kind = param.schema.get("type")
        kinds = kind if isinstance(kind, list) else [kind]
        if "null" not in kinds:
            _NULL_FOR_THE_FORM.add(id(param))
            param.schema["type"] = [*kinds, "null"]
            if "enum" in param.schema:
                param.schema["enum"] = [*param.schema["enum"], None]
    return fields


def limit_problems(values: dict, params: dict[str, Param]) -> list[str]:
    """Each value checked against its field's schema again, as the form does: one line per
    refused field, naming the field and the limit, never quoting the value (it may be huge or
    hold anything a person pasted) and a key inside it only shortened. A field the form
    prefilled and a person emptied is refused too (see :func:`_prefilled`)."""
    from jsonschema import Draft7Validator

    from include.pipeline.run_inputs import short

    found = []
    for name, param in params.items():
        if name not in values:
            continue
        if values[name] is None and id(param) in _NULL_FOR_THE_FORM:
            found.append(f"{name}: empty; give a value (the form's default is {param.value!r})")
            continue
        for error in Draft7Validator(param.schema).iter_errors(values[name]):
            where = "".join(
                f"[{short(p) if isinstance(p, str) else p}]" for p in error.absolute_path
            )
            limit = error.validator_value
            if error.validator == "enum":
                limit = ", ".join(map(str, limit))
            found.append(f"{name}{where}: not within the form's limit ({error.validator}: {limit})")
    return found


INGESTION = {
    "input_uri": _text(
        None,
        "Input file",
        "Reviews CSV to train on, in the public file's shape or the prepared (sentiment, "
        "review_body, product_category) shape. Empty: the generated sample. An s3:// URI in "
        "the pipeline's bucket (or a bucket in PIPELINE_INPUT_BUCKETS), or the absolute path of "
        "a file in the lake's incoming/ folder (or a folder in PIPELINE_INPUT_ROOTS). The "
        "public file: "
        "s3://dlai-practical-data-science/data/raw/womens_clothing_ecommerce_reviews.csv",
    ),
    "training_data": _choice(
        ingestion.ACCUMULATED,
        ingestion.TRAINING_DATA,
        "Train on",
        "accumulated: the input file joins the reviews already ingested into the lake and the "
        "run trains on all of them (each review once; the generated sample is used only alone); "
        "this_file: the input file alone.",
    ),
    "encoding": _text(
        "utf-8",
        "Input encoding",
        "Text encoding of the input file (a Python codec name: utf-8, latin-1, utf-16, ...); "
        "invalid bytes fail the run naming the offset.",
        pattern=ENCODING_NAME,
        max_length=40,
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


BIAS = _section(
    BIAS_SECTION,
    {
        "bias_facets": _param(
            list(bias_requests.DEFAULT_PARAMS["bias_facets"]),
            type="array",
            items={"type": "string", "pattern": COLUMN_NAME, "maxLength": 64},
            minItems=1,
            maxItems=10,
            title="Columns to check for bias",
            description="Each value of these columns is compared with all other rows (Clarify's "
            "facets: facet d vs a).",
        ),
        "bias_label_values": _param(
            list(bias_requests.DEFAULT_PARAMS["bias_label_values"]),
            type="array",
            items={"type": "integer", "enum": list(schema.SENTIMENTS)},
            minItems=1,
            maxItems=3,
            title="Favourable sentiment values",
            description="Sentiments counted as the good outcome (Clarify's label values).",
        ),
        "bias_group_variable": _text(
            bias_requests.DEFAULT_PARAMS["bias_group_variable"],
            "Group column for conditional bias",
            "Column the conditional demographic disparity (CDDL) is computed within (Clarify's "
            "group_variable).",
            pattern=COLUMN_NAME,
            max_length=64,
        ),
        "bias_thresholds": _field(
            {m: t for m, t in bias_gate.DEFAULT_THRESHOLDS.items() if t is not None},
            "object",
            "Bias thresholds",
            "Per metric (Clarify's pre-training metrics): the gate passes when |value| <= "
            "threshold (null: not gated).",
            propertyNames={"enum": list(bias_gate.DEFAULT_THRESHOLDS)},
            additionalProperties={"type": ["number", "null"], "minimum": 0},
        ),
        "bias_gate_mode": _choice(
            "warn",
            bias_gate.GATE_MODES,
            "When bias is found",
            "fail: stop the run listing every violation; warn: continue and mark the run summary "
            "(the bias gate's mode).",
        ),
    },
)


FEATURES = _section(
    TRAINING_SECTION,
    {
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
            "Review length (tokens)",
            "Tokens kept per review, longer ones cut (the tokenizer's max sequence length).",
            minimum=8,
            maximum=512,
        ),
        "online_store": _flag(
            True,
            "Keep features for fast lookup",
            "The feature group's online store (SageMaker Feature Store; GetRecord by review_id).",
        ),
    },
)

TRAINING = _section(
    TRAINING_SECTION,
    {
        "reuse_steps": _flag(
            True,
            "Reuse finished steps",
            "A processing, training or transform job whose request matches one that completed "
            "(same inputs by content, code, hyperparameters, image and instances) is not run "
            "again: its outputs are reused, as SageMaker Pipelines' step caching does. Off: "
            "every job runs.",
        ),
        "pretrained_model": _text(
            None,
            "Pretrained model",
            "The language model the fine-tune starts from. Empty: the packaged MiniLM locally, "
            "roberta-base on aws. Otherwise a model folder under PIPELINE_MODEL_ROOTS, or on aws "
            "a Hugging Face name the training container downloads (roberta-base, "
            "distilbert-base-uncased, ...).",
            max_length=256,
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
        "freeze_bert_layer": _flag(
            False, "Freeze the encoder", "Train only the classification head."
        ),
        "rules_fail_on_issues": _flag(
            False,
            "Stop on training issues",
            "A loss that stops decreasing or overtraining fails the run (else: warn); the "
            "Debugger rules LossNotDecreasing and Overtraining.",
        ),
        "rules_mode": _choice(
            training_defaults.RULES_MODES[0],
            training_defaults.RULES_MODES,
            "Training checks: who runs them",
            "pipeline: the project evaluates LossNotDecreasing, Overtraining and the profiler "
            "report on the training history (no SageMaker Debugger needed; it is closed to new "
            "customers). managed: SageMaker Debugger's rule jobs, for accounts that have it.",
        ),
        "loss_not_decreasing_num_steps": _count(
            int(training_defaults.DEFAULT_RULES["LossNotDecreasing"]["num_steps"]),
            "Loss check: steps",
            "Training steps between the loss checks: the loss must fall over each (Debugger rule "
            "LossNotDecreasing's num_steps).",
        ),
        "overtraining_patience_validation": _count(
            10,
            "Overtraining check: patience",
            "Validation steps without improvement before training counts as overtraining "
            "(Debugger rule Overtraining's patience_validation).",
        ),
    },
)

EVALUATION = _section(
    REGISTRY_SECTION,
    {
        "min_accuracy": _share(
            0.6,
            "Minimum test accuracy",
            "Register the model only at or above this accuracy (chance is ~0.33).",
        ),
        "model_approval": _choice(
            "PendingManualApproval",
            ["PendingManualApproval", "Approved"],
            "Approval",
            "Model Registry status of the new version. Approved versions are deployed by this "
            "run; pending ones (PendingManualApproval) wait for a "
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
    },
)

DEPLOYMENT = _section(
    DEPLOYMENT_SECTION,
    {
        "endpoint_name": _endpoint_name(),
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
            "A/B test: new model's share",
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
            "Wait between traffic shifts (s)",
            "The bake time of each blue/green step; alarms may roll back meanwhile (the "
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
            "Requests recorded %",
            "Share of requests and responses recorded to the lake (the endpoint's data capture); 0: "
            "none (monitoring, human review and the bandit then see no traffic).",
            minimum=0,
            maximum=100,
        ),
        "autoscaling_min_instances": _count(
            1,
            "Autoscaling: fewest instances",
            "The serving variants' instance count never goes below this (Application Auto "
            "Scaling's MinCapacity).",
            maximum=autoscaling_requests.MAX_INSTANCES,
        ),
        "autoscaling_max_instances": _count(
            0,
            "Autoscaling: most instances",
            "Target tracking scales each serving variant between the fewest and this many "
            "instances (MaxCapacity); 0 or the fewest: autoscaling off.",
            minimum=0,
            maximum=autoscaling_requests.MAX_INSTANCES,
        ),
        "autoscaling_target_invocations": _field(
            70,
            "number",
            "Autoscaling: invocations per instance per minute",
            "The load each instance is kept near (SageMakerVariantInvocationsPerInstance's "
            "target value): more adds instances, less removes them after a cooldown.",
            exclusiveMinimum=0,
            maximum=autoscaling_requests.MAX_TARGET_INVOCATIONS,
        ),
        "delete_endpoint_after_run": _flag(
            False,
            "Delete the endpoint at the end",
            "Teardown for test runs: nothing is left running.",
        ),
    },
)

CANDIDATES = _section(
    CANDIDATES_SECTION,
    {
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
            "Tuning: training runs",
            "Training jobs of the fine-tune's hyperparameter tuning job (learning rate, batch "
            "size); "
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
            None,
            "Start tuning from an earlier one",
            "Name of a finished hyperparameter tuning job whose trials seed this one (SageMaker's "
            "warm start). Empty: none.",
            pattern=TUNING_JOB_NAME,
            max_length=32,
        ),
        "automl_max_candidates": _count(
            automl_requests.DEFAULT_BUDGET["max_candidates"],
            "AutoML: models to try",
            "How many models the AutoML candidate tries (Autopilot's MaxCandidates).",
        ),
        "automl_max_runtime_s": _count(
            automl_requests.PIPELINE_JOB_RUNTIME_S[pipeline_settings.load().target],
            "AutoML: time limit (s)",
            "The AutoML job's whole time budget (Autopilot's MaxAutoMLJobRuntimeInSeconds); "
            "each model gets half of it at most.",
        ),
    },
)

PARAMS = _prefilled(
    {
        **INGESTION,
        **BIAS,
        **FEATURES,
        **TRAINING,
        **CANDIDATES,
        **EVALUATION,
        **DEPLOYMENT,
    }
)

# The endpoint_rollout DAG's form.
ROLLOUT_PARAMS = {
    "endpoint_name": _endpoint_name(),
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
        None,
        "Reviews to score",
        'An s3:// prefix or file of JSON lines ({"features": ["review text"]} per line), '
        "or a CSV (s3:// or local path, name ending in .csv) whose text column is converted "
        "to JSON lines in the run's folder. Required.",
    ),
    "text_column": _text(
        None,
        "CSV text column",
        "CSV input only: the column holding the review text. Empty: review_body, "
        "or the public file's 'Review Text'. Rows with empty text are skipped and listed.",
        max_length=128,
    ),
    "model_package_arn": _text(
        None,
        "Model version",
        "ARN of an Approved model package version (Model Registry). Empty: the latest Approved "
        "version of the reviews-sentiment model package group.",
        pattern=MODEL_PACKAGE_ARN,
        max_length=2048,
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
    "endpoint_name": _endpoint_name(),
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
    "endpoint_name": _endpoint_name(),
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

# The deploy_approved_model DAG's form: the main DAG's deployment fields (the same strategy,
# traffic steps, alarm and capture), and a version to deploy by hand.
APPROVAL_PARAMS = _prefilled(
    {
        **{
            name: copy.deepcopy(param)
            for name, param in DEPLOYMENT.items()
            if name != "delete_endpoint_after_run"
        },
        "model_package_arn": _text(
            None,
            "Model version",
            "ARN of an Approved version of the reviews-sentiment model package group to deploy "
            "by hand. Empty: the version whose approval started the run.",
            pattern=MODEL_PACKAGE_ARN,
            max_length=2048,
        ),
    }
)
