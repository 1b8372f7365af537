"""The main DAG's task ids that other code refers to, stated once: the DAG file names its tasks
with them, and the run summary pulls each step's result by them."""

from __future__ import annotations

from include.jobs.feature_records import SPLITS
from include.pipeline import candidates
from include.pipeline.requests.catalog import QUERIES

CHECK_TRIGGER = "check_trigger"
CHECK_CONFIGURATION = "check_configuration"
INGEST = "ingest_reviews"
BIAS_GATE = "bias_gate"
STOP_ON_BIAS = "stop_on_bias"
BUILD_BALANCED_BIAS_REQUEST = "build_balanced_bias_request"
DETECT_BALANCED_BIAS = "detect_balanced_bias"
PUBLISH_CODE = "publish_code"
CREATE_FEATURE_GROUP = "create_feature_group"
PREPARE_FEATURES = "prepare_features"
LOCATE_TRAINING_SET = "locate_training_set"
TUNE = "tune_finetune"
RECIPE_TRIAL = "train_recipe_trial"  # the recipe at the trials' budget, what tuning must beat
TRAIN = candidates.FINETUNE.trained_task
PREPARE_TEXT = "prepare_text"
TRAIN_BLAZINGTEXT = candidates.BLAZINGTEXT.trained_task
CREATE_AUTOML_JOB = "create_automl_job"
WAIT_FOR_AUTOML_JOB = "wait_for_automl_job"
DESCRIBE_AUTOML_JOB = candidates.AUTOPILOT.trained_task
RANK_CANDIDATES = "rank_candidates"
CHECK_CANDIDATES = "check_candidates"
EVALUATE_CHAMPION = "evaluate_champion"
BUILD_CHAMPION_EVALUATION = "build_champion_evaluation"
REGISTER_RUNNERS_UP = "register_runners_up"
WAIT_FOR_DEBUGGER_RULES = "wait_for_debugger_rules"
CHECK_TRAINING_RULES = "check_training_rules"
EVALUATE = "evaluate_model"
BUILD_REGISTRATION = "build_registration"
SKIP_REGISTRATION = "skip_registration"
REGISTER = "register_model_version"
BUILD_DEPLOYMENT_REQUESTS = "build_deployment_requests"
SKIP_DEPLOYMENT = "skip_deployment"
APPROVE_MODEL = "approve_model"
DEPLOY = "deploy_endpoint"
SMOKE_TEST = "smoke_test_endpoint"
RELEASE_AUTOSCALING = "release_autoscaling"
REGISTER_AUTOSCALING = "register_autoscaling"
DELETE_TEST_ENDPOINT = "delete_test_endpoint"
WRITE_SUMMARY = "write_run_summary"

# XCom keys pushed next to a task's return value.
BIAS_VERDICT_KEY = "bias"
CHAMPION_SPLIT_KEY = "champion_split"  # build_champion_evaluation: is the comparison fair
UPDATE_REPORT_KEY = "update_report"  # deploy_endpoint: a rolled-back update's steps


def query(name: str) -> str:
    """The statistics query task of ``include/sql/<name>.sql``."""
    if name not in QUERIES:
        raise ValueError(f"query {name!r} is not one of {QUERIES}")
    return f"query_{name}"


def training_set_query(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    return f"query_training_set_{split}"


# The task whose result is each candidate's trained model (DescribeTrainingJob / DescribeAutoMLJob).
TRAINED = {kind.name: kind.trained_task for kind in candidates.ALL}


def evaluate(candidate: str) -> str:
    """The evaluation job of a candidate (the fine-tune's keeps its id: the gate's, the summary's)."""
    return candidates.get(candidate).task_id(EVALUATE)


def posttraining_bias(candidate: str) -> str:
    """The Clarify post-training bias job over a candidate's test-split predictions."""
    return f"detect_posttraining_bias_{candidates.get(candidate).name}"


def build_evaluation(candidate: str) -> str:
    """The task building a candidate's evaluation request."""
    return candidates.get(candidate).task_id("build_evaluation_request")


def referenced() -> list[str]:
    """Every task id above (the DAG integrity test checks the DAG has each one)."""
    names = [
        v
        for k, v in globals().items()
        if k.isupper() and isinstance(v, str) and not k.endswith("_KEY")
    ]
    return [
        *names,
        *map(query, QUERIES),
        *map(training_set_query, SPLITS),
        *map(evaluate, TRAINED),
        *map(posttraining_bias, TRAINED),
    ]
