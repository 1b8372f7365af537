"""The local tuning engine: a CreateHyperParameterTuningJob request run with Optuna.

Each trial is the request's training job definition with the sampled hyperparameters, run by the
local job runner (:func:`include.pipeline.targets.local.sagemaker.jobs.run_training_job`); its
objective is the last value of the objective metric, read from the log with the definition's
``MetricDefinitions`` as SageMaker does. Strategies map onto Optuna: Bayesian -> TPE, Random ->
random sampling, Grid -> grid sampling over the categorical values, Hyperband -> TPE with
Optuna's Hyperband pruner fed the metric values as the trial logs them (a trial the pruner stops
is reported ``Stopped``, as SageMaker reports early-stopped jobs). Trials run one at a time (two
CPU cores); ``MaxParallelTrainingJobs`` is accepted and ignored.

StopHyperParameterTuningJob (:func:`include.pipeline.targets.local.sagemaker.jobs.stop_job` on
the tuning job's name) stops the running trial's processes and starts no further trial; the job
answers Stopping, then Stopped with the trials that ran.

The study lives in a journal file under ``<lake>/_sagemaker/tuning-jobs/<name>/``, apart from
Airflow's metadata database; a warm start seeds the new study with its parents' finished trials.
The result has DescribeHyperParameterTuningJob's shape; the trials' summaries
(ListTrainingJobsForHyperParameterTuningJob's shape) are kept next to it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from include.pipeline.targets.local.sagemaker import jobs
from include.pipeline.targets.local.sagemaker.job_state import JobState, Progress
from include.pipeline.targets.local.sagemaker.jobs import ACCOUNT, Log, run_training_job

STATE_DIR = Path("_sagemaker") / "tuning-jobs"
TRIALS_FILE = "training-jobs.json"
STUDY_FILE = "study.journal"


class TuningRequestError(ValueError):
    """A tuning request the local engine cannot run; the message names the field and value."""


_STATE = JobState(
    STATE_DIR,
    "HyperParameterTuningJobName",
    "tuning job",
    TuningRequestError,
    TRIALS_FILE,
    "has no trials",
)
describe_tuning_job = _STATE.describe
# ListTrainingJobsForHyperParameterTuningJob's ``TrainingJobSummaries``.
list_training_jobs = _STATE.listing


def distributions(parameter_ranges: dict) -> dict:
    """``ParameterRanges`` -> Optuna distributions (categorical values stay strings)."""
    import optuna

    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for item in parameter_ranges.get("ContinuousParameterRanges", []):
        low, high = float(item["MinValue"]), float(item["MaxValue"])
        out[item["Name"]] = optuna.distributions.FloatDistribution(
            low, high, log=item.get("ScalingType") == "Logarithmic"
        )
    for item in parameter_ranges.get("IntegerParameterRanges", []):
        low, high = int(item["MinValue"]), int(item["MaxValue"])
        out[item["Name"]] = optuna.distributions.IntDistribution(
            low, high, log=item.get("ScalingType") == "Logarithmic"
        )
    for item in parameter_ranges.get("CategoricalParameterRanges", []):
        out[item["Name"]] = optuna.distributions.CategoricalDistribution(list(item["Values"]))
    if not out:
        raise TuningRequestError("ParameterRanges: no range to tune")
    return out


def _sampler_and_pruner(config: dict, space: dict):
    import optuna

    strategy = config.get("Strategy", "Bayesian")
    seed = config.get("RandomSeed")
    limit = config.get("ResourceLimits", {}).get("MaxNumberOfTrainingJobs", 1)
    startup = max(1, min(10, int(limit) // 2))
    if strategy == "Bayesian":
        return (
            optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup),
            optuna.pruners.NopPruner(),
        )
    if strategy == "Random":
        return optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner()
    if strategy == "Grid":
        return (
            optuna.samplers.GridSampler({k: d.choices for k, d in space.items()}, seed=seed),
            optuna.pruners.NopPruner(),
        )
    if strategy == "Hyperband":
        hb = config.get("StrategyConfig", {}).get("HyperbandStrategyConfig", {})
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=int(hb.get("MinResource", 1)), max_resource=int(hb.get("MaxResource", 3))
        )
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup), pruner
    raise TuningRequestError(f"HyperParameterTuningJobConfig.Strategy {strategy!r} is unknown")


def _trial_count(config: dict, space: dict) -> int:
    if config.get("Strategy") == "Grid":
        return math.prod(len(d.choices) for d in space.values())
    return int(config.get("ResourceLimits", {}).get("MaxNumberOfTrainingJobs", 1))


def _text(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _seed_from_parents(study, request: dict, space: dict, lake: Path, log: Log) -> list[dict]:
    """Add the parents' finished trials to ``study`` (those inside this search space)."""
    import optuna

    warm = request.get("WarmStartConfig") or {}
    summaries = []
    for parent in warm.get("ParentHyperParameterTuningJobs", []):
        parent_name = parent["HyperParameterTuningJobName"]
        try:
            trials = list_training_jobs(parent_name, lake)
        except FileNotFoundError as err:
            raise TuningRequestError(f"WarmStartConfig: parent {parent_name!r}: {err}") from err
        seeded = 0
        for summary in trials:
            metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric")
            if summary.get("TrainingJobStatus") != "Completed" or not metric:
                continue
            try:
                params = {
                    k: _parse(space[k], v)
                    for k, v in summary["TunedHyperParameters"].items()
                    if k in space
                }
            except (ValueError, TypeError):
                continue
            if set(params) != set(space):
                continue
            try:
                trial = optuna.trial.create_trial(
                    params=params,
                    distributions={k: space[k] for k in params},
                    value=float(metric["Value"]),
                    user_attrs={"training_job": summary["TrainingJobName"]},
                )
            except ValueError:  # outside this job's ranges (TransferLearning)
                continue
            study.add_trial(trial)
            summaries.append(summary)
            seeded += 1
        log(f"warm start: {seeded} trial(s) from {parent_name}")
    return summaries


def _suggest(trial, space: dict) -> dict:
    import optuna

    values = {}
    for key, d in space.items():
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            values[key] = trial.suggest_categorical(key, d.choices)
        elif isinstance(d, optuna.distributions.IntDistribution):
            values[key] = trial.suggest_int(key, d.low, d.high, log=d.log)
        else:
            values[key] = trial.suggest_float(key, d.low, d.high, log=d.log)
    return values


def _parse(distribution, text: str):
    import optuna

    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return str(text)
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return int(float(text))
    return float(text)


def _metric_reporter(trial, pattern: re.Pattern, log: Log) -> Callable[[str], None]:
    """A log callback that reports each objective value to the trial (Hyperband's resource)."""
    step = [0]

    def on_line(line: str) -> None:
        log(line)
        match = pattern.search(line)
        if match:
            try:
                value = float(match.group(1))
            except (IndexError, ValueError):
                return
            step[0] += 1
            trial.report(value, step[0])

    return on_line


def run_tuning_job(
    request: dict,
    *,
    lake: Path,
    log: Log = print,
    on_training_job: Callable[[dict], None] | None = None,
) -> dict:
    """Run a CreateHyperParameterTuningJob request; returns a DescribeHyperParameterTuningJob
    dict. A finished job of the same name is returned as it was (a re-run task creates nothing).
    ``on_training_job`` receives each trial's DescribeTrainingJob result."""
    import optuna

    name = request.get("HyperParameterTuningJobName", "")
    lake = Path(lake)
    done = _STATE.completed(lake, name, log)
    if done is not None:
        return done
    config = request.get("HyperParameterTuningJobConfig") or {}
    definition = request.get("TrainingJobDefinition")
    if not definition:
        raise TuningRequestError(f"{name}: only a single TrainingJobDefinition is supported")
    goal = config.get("HyperParameterTuningJobObjective") or {}
    metric_name, direction = goal.get("MetricName"), goal.get("Type", "Maximize")
    definitions = definition.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])
    regex = next((d["Regex"] for d in definitions if d["Name"] == metric_name), None)
    if regex is None:
        raise TuningRequestError(
            f"{name}: objective metric {metric_name!r} has no MetricDefinitions entry "
            f"(defined: {[d['Name'] for d in definitions]})"
        )
    space = distributions(config.get("ParameterRanges") or {})
    sampler, pruner = _sampler_and_pruner(config, space)

    import shutil

    folder = _STATE.folder(lake, name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / STUDY_FILE)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction="maximize" if direction == "Maximize" else "minimize",
    )
    created = datetime.now(UTC)
    region = (definition.get("Environment") or {}).get("AWS_REGION", "us-east-1")
    arn = f"arn:aws:sagemaker:{region}:{ACCOUNT}:hyper-parameter-tuning-job/{name.lower()}"
    counters = dict.fromkeys(
        ("Completed", "InProgress", "RetryableError", "NonRetryableError", "Stopped"), 0
    )
    objective_counters = dict.fromkeys(("Succeeded", "Pending", "Failed"), 0)
    progress = Progress(
        _STATE,
        lake,
        name,
        {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": arn,
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": definition,
            "CreationTime": created,
            "LastModifiedTime": created,
            "TrainingJobStatusCounters": counters,
            "ObjectiveStatusCounters": objective_counters,
        },
    )
    trial_jobs: list[str] = []  # the trial running now is the last

    def on_stop() -> None:
        progress.stopping()
        if trial_jobs:
            jobs.stop_job(trial_jobs[-1])

    stop = jobs.StopSignal(on_stop)
    with jobs.running(name, stop):
        return _optimize(
            study, request, space, lake, log, regex, progress, stop, trial_jobs, on_training_job
        )


def _optimize(
    study,
    request: dict,
    space: dict,
    lake: Path,
    log: Log,
    regex: str,
    progress: Progress,
    stop: jobs.StopSignal,
    trial_jobs: list[str],
    on_training_job: Callable[[dict], None] | None,
) -> dict:
    """Run the trials of the tuning job (until its limit, or until it is stopped) and finish
    its Describe* answer."""
    import optuna

    from include.pipeline.core.names import short_hash

    name = request["HyperParameterTuningJobName"]
    config = request.get("HyperParameterTuningJobConfig") or {}
    definition = request["TrainingJobDefinition"]
    goal = config.get("HyperParameterTuningJobObjective") or {}
    metric_name, direction = goal.get("MetricName"), goal.get("Type", "Maximize")
    counters = progress.describe["TrainingJobStatusCounters"]
    objective_counters = progress.describe["ObjectiveStatusCounters"]
    parents = _seed_from_parents(study, request, space, lake, log)
    static = dict(definition.get("StaticHyperParameters") or {})
    summaries: list[dict] = []

    class TrialFailed(Exception):
        pass

    def objective(trial) -> float:
        if stop.is_set():
            raise TrialFailed("the tuning job was stopped")
        index = len(summaries) + 1
        tuned = {k: _text(v) for k, v in _suggest(trial, space).items()}
        job_name = f"{name}-{index:03d}-{short_hash(name, index)}"
        trial_jobs.append(job_name)
        training = {
            k: v
            for k, v in definition.items()
            if k not in ("StaticHyperParameters", "TuningObjective", "HyperParameterRanges")
            and k != "DefinitionName"
        }
        training.update({"TrainingJobName": job_name, "HyperParameters": {**static, **tuned}})
        log(f"[{name}] trial {index}: {tuned}")
        describe = run_training_job(
            training,
            lake=lake,
            log=_metric_reporter(trial, re.compile(regex), log),
            stopped=stop.event,
        )
        if on_training_job:
            on_training_job(describe)
        values = describe.get("LocalMetricSeries", {}).get(metric_name) or []
        summary = {
            "TrainingJobName": job_name,
            "TrainingJobArn": describe["TrainingJobArn"],
            "TuningJobName": name,
            "CreationTime": describe["CreationTime"],
            "TrainingStartTime": describe["TrainingStartTime"],
            "TrainingEndTime": describe["TrainingEndTime"],
            "TrainingJobStatus": describe["TrainingJobStatus"],
            "TunedHyperParameters": tuned,
        }
        summaries.append(summary)
        if describe["TrainingJobStatus"] != "Completed" or not values:
            if describe["TrainingJobStatus"] == "Stopped":
                counters["Stopped"] += 1
                summary["FailureReason"] = describe.get("FailureReason", "")
            elif describe["TrainingJobStatus"] != "Completed":
                counters["NonRetryableError"] += 1
                summary["FailureReason"] = describe.get("FailureReason", "")
            else:
                counters["Completed"] += 1
                summary["FailureReason"] = f"the log has no {metric_name} value"
            objective_counters["Failed"] += 1
            summary["ObjectiveStatus"] = "Failed"
            raise TrialFailed(summary["FailureReason"])
        objective_counters["Succeeded"] += 1
        summary["ObjectiveStatus"] = "Succeeded"
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": direction,
            "MetricName": metric_name,
            "Value": values[-1],
        }
        if trial.should_prune():
            counters["Stopped"] += 1
            summary["TrainingJobStatus"] = "Stopped"
            raise optuna.TrialPruned()
        counters["Completed"] += 1
        return values[-1]

    def stop_study(study, _trial) -> None:
        if stop.is_set():
            study.stop()

    study.optimize(
        objective,
        n_trials=_trial_count(config, space),
        catch=(TrialFailed,),
        callbacks=[stop_study],
    )

    ended = datetime.now(UTC)
    describe = {
        **progress.describe,
        "HyperParameterTuningJobStatus": "Completed",
        "HyperParameterTuningEndTime": ended,
        "LastModifiedTime": ended,
    }
    if request.get("WarmStartConfig"):
        describe["WarmStartConfig"] = request["WarmStartConfig"]
    best = _best(summaries, direction)
    if best:
        describe["BestTrainingJob"] = best
    overall = _best(summaries + parents, direction)
    if parents and overall:
        describe["OverallBestTrainingJob"] = overall
    if stop.is_set():
        describe["HyperParameterTuningJobStatus"] = "Stopped"
        describe["FailureReason"] = jobs.STOPPED_REASON
    elif not best:
        describe["HyperParameterTuningJobStatus"] = "Failed"
        describe["FailureReason"] = (
            f"no training job reported {metric_name}; counters {counters}"
        )[:1024]
    result = progress.finish(describe, summaries)
    log(
        f"[{name}] {describe['HyperParameterTuningJobStatus']}: best {best and best['TrainingJobName']}"
    )
    return result


def _best(summaries: list[dict], direction: str) -> dict | None:
    scored = [
        s
        for s in summaries
        if s.get("TrainingJobStatus") == "Completed"
        and s.get("FinalHyperParameterTuningJobObjectiveMetric")
    ]
    if not scored:
        return None
    sign = 1 if direction == "Maximize" else -1
    return max(
        scored, key=lambda s: sign * s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    )
