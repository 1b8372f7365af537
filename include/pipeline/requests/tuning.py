"""The CreateHyperParameterTuningJob request over the fine-tune (``include/jobs/train.py``).

The training job definition is the fine-tune's own CreateTrainingJob request
(:func:`include.pipeline.requests.training.training_job_request`) with the tuned hyperparameters
taken out of its static ones, so the metric definitions, channels and image are one fact. The
objective must be one of those metric definitions (AWS reads the trial's log with them, and so
does the local tuning engine). ``sent by SageMakerTuningOperator`` on aws; executed by
:mod:`include.pipeline.targets.local.sagemaker.tuning` locally.
"""

from __future__ import annotations

import re

from include.pipeline.core.names import VALIDATION_ACCURACY
from include.pipeline.requests.common import SHORT_JOB_NAME, check_short_job_name

STRATEGIES = ("Bayesian", "Random", "Grid", "Hyperband")
SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
OBJECTIVE_TYPES = ("Maximize", "Minimize")
WARM_START_TYPES = ("IdenticalDataAndAlgorithm", "TransferLearning")
TUNING_JOB_NAME = SHORT_JOB_NAME
MAX_WARM_START_PARENTS = 5

# The course's search space (part 3): learning rate and batch size; ``(kind, spec)`` per name.
DEFAULT_RANGES: dict[str, tuple[str, dict]] = {
    "learning_rate": ("Continuous", {"MinValue": 1e-5, "MaxValue": 5e-4, "Scaling": "Logarithmic"}),
    "train_batch_size": ("Categorical", {"Values": [16, 32]}),
}
# A budget that fits 2 CPU cores: a few short trials, each on a subset (train_steps_per_epoch);
# the DAG's Params widen it.
DEFAULT_BUDGET = {"max_jobs": 3, "max_parallel": 1, "trial_steps_per_epoch": 20}


def tuning_job_name(kind: str, run_id: str) -> str:
    """A deterministic tuning job name within AWS's 32-character limit."""
    from include.pipeline.core.names import short_hash

    stem = re.sub(r"[^a-zA-Z0-9]+", "-", kind).strip("-")[:23]
    return f"{stem}-{short_hash(run_id)}"


def parameter_ranges(ranges: dict[str, tuple[str, dict]]) -> dict:
    """``{name: (Continuous|Integer|Categorical, spec)}`` -> ``ParameterRanges`` (string values)."""
    out: dict[str, list] = {
        "ContinuousParameterRanges": [],
        "IntegerParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for name, (kind, spec) in ranges.items():
        if kind == "Categorical":
            values = [str(v) for v in spec.get("Values", [])]
            if not values:
                raise ValueError(f"range {name!r}: Categorical needs at least one value")
            out["CategoricalParameterRanges"].append({"Name": name, "Values": values})
            continue
        if kind not in ("Continuous", "Integer"):
            raise ValueError(
                f"range {name!r}: kind {kind!r}; expected Continuous, Integer or Categorical"
            )
        low, high = spec["MinValue"], spec["MaxValue"]
        if not float(low) < float(high):
            raise ValueError(f"range {name!r}: MinValue {low!r} must be below MaxValue {high!r}")
        scaling = spec.get("Scaling", "Auto")
        if scaling not in SCALING_TYPES:
            raise ValueError(
                f"range {name!r}: Scaling {scaling!r}; expected one of {SCALING_TYPES}"
            )
        if scaling == "Logarithmic" and float(low) <= 0:
            raise ValueError(f"range {name!r}: Logarithmic scaling needs MinValue > 0, got {low!r}")
        cast = int if kind == "Integer" else float
        out[f"{kind}ParameterRanges"].append(
            {
                "Name": name,
                "MinValue": str(cast(low)),
                "MaxValue": str(cast(high)),
                "ScalingType": scaling,
            }
        )
    return {k: v for k, v in out.items() if v}


def tuning_job_request(
    *,
    job_name: str,
    training_request: dict,
    ranges: dict[str, tuple[str, dict]] | None = None,
    strategy: str = "Bayesian",
    objective_metric: str = VALIDATION_ACCURACY,
    objective_type: str = "Maximize",
    max_jobs: int = DEFAULT_BUDGET["max_jobs"],
    max_parallel: int = DEFAULT_BUDGET["max_parallel"],
    max_runtime_s: int | None = None,
    random_seed: int = 42,
    warm_start_parents: list[str] | None = None,
    warm_start_type: str = "IdenticalDataAndAlgorithm",
    hyperband_resources: tuple[int, int] | None = None,
) -> dict:
    """CreateHyperParameterTuningJob keyword arguments over ``training_request``.

    AWS's rules are checked here, so a bad request fails when it is built: Grid takes only
    categorical ranges and no MaxNumberOfTrainingJobs; Hyperband has its own early stopping
    (``TrainingJobEarlyStoppingType`` Off) and a ``MinResource``/``MaxResource`` pair (epochs).
    """
    check_short_job_name("tuning", job_name)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown tuning strategy {strategy!r}; expected one of {STRATEGIES}")
    if objective_type not in OBJECTIVE_TYPES:
        raise ValueError(f"objective type {objective_type!r}; expected one of {OBJECTIVE_TYPES}")
    ranges = DEFAULT_RANGES if ranges is None else ranges
    algo = training_request["AlgorithmSpecification"]
    metric_names = [m["Name"] for m in algo.get("MetricDefinitions", [])]
    if objective_metric not in metric_names:
        raise ValueError(
            f"objective metric {objective_metric!r} is not one of the training job's metric "
            f"definitions {metric_names}"
        )
    static = {
        k: v for k, v in training_request.get("HyperParameters", {}).items() if k not in ranges
    }
    unknown = sorted(set(ranges) - set(training_request.get("HyperParameters", {})))
    if unknown:
        raise ValueError(f"tuned hyperparameter(s) {unknown} are not the training job's")
    parameter = parameter_ranges(ranges)
    resource_limits: dict = {"MaxParallelTrainingJobs": int(max_parallel)}
    if strategy == "Grid":
        if set(parameter) - {"CategoricalParameterRanges"}:
            raise ValueError("the Grid strategy takes only Categorical ranges")
    else:
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {max_jobs}")
        resource_limits["MaxNumberOfTrainingJobs"] = int(max_jobs)
    if max_runtime_s:
        resource_limits["MaxRuntimeInSeconds"] = int(max_runtime_s)
    config: dict = {
        "Strategy": strategy,
        "HyperParameterTuningJobObjective": {
            "Type": objective_type,
            "MetricName": objective_metric,
        },
        "ResourceLimits": resource_limits,
        "ParameterRanges": parameter,
        "TrainingJobEarlyStoppingType": "Off",
        "RandomSeed": int(random_seed),
    }
    if strategy == "Hyperband":
        low, high = hyperband_resources or (1, int(static.get("epochs", 1)) or 1)
        if not 1 <= low <= high:
            raise ValueError(
                f"Hyperband resources {low}..{high}: need 1 <= MinResource <= MaxResource"
            )
        config["StrategyConfig"] = {
            "HyperbandStrategyConfig": {"MinResource": int(low), "MaxResource": int(high)}
        }
    # No CheckpointConfig: the trials would share the training job's one folder (a tuning job
    # cannot name one per trial), each downloading and overwriting the others' checkpoints.
    definition = {
        "StaticHyperParameters": static,
        "AlgorithmSpecification": {
            "TrainingImage": algo["TrainingImage"],
            "TrainingInputMode": algo.get("TrainingInputMode", "File"),
            "MetricDefinitions": [dict(m) for m in algo["MetricDefinitions"]],
        },
        **{
            key: training_request[key]
            for key in (
                "RoleArn",
                "InputDataConfig",
                "OutputDataConfig",
                "ResourceConfig",
                "StoppingCondition",
                "Environment",
                "VpcConfig",
                "EnableNetworkIsolation",
            )
            if key in training_request
        },
    }
    request = {
        "HyperParameterTuningJobName": job_name,
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": definition,
    }
    parents = list(warm_start_parents or [])
    if parents:
        if len(parents) > MAX_WARM_START_PARENTS:
            raise ValueError(f"at most {MAX_WARM_START_PARENTS} warm start parents, got {parents}")
        if warm_start_type not in WARM_START_TYPES:
            raise ValueError(f"warm start type {warm_start_type!r}; expected {WARM_START_TYPES}")
        request["WarmStartConfig"] = {
            "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": p} for p in parents],
            "WarmStartType": warm_start_type,
        }
    return request


def best_hyperparameters(describe: dict) -> dict[str, str]:
    """The best trial's tuned hyperparameters from a DescribeHyperParameterTuningJob result."""
    best = describe.get("BestTrainingJob")
    if not best:
        raise ValueError(
            f"tuning job {describe.get('HyperParameterTuningJobName')!r} has no best training job "
            f"(status {describe.get('HyperParameterTuningJobStatus')!r}, counters "
            f"{describe.get('TrainingJobStatusCounters')})"
        )
    return dict(best["TunedHyperParameters"])
