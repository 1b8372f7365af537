"""The CreateTrainingJob request of the fine-tuning step (script mode, ``include/jobs/train.py``).

One place for: the metric regexes that read train.py's log lines, the default hyperparameters of
each target, and the Debugger / profiler rules. The local job runner parses the log with the same
``MetricDefinitions`` and :mod:`include.pipeline.training_rules` evaluates the same rules.
"""

from __future__ import annotations

from include.pipeline.core.names import VALIDATION_ACCURACY
from include.pipeline.requests import network
from include.pipeline.settings import default_model

# Names of the metric series; train.py prints ``train_loss=…``, ``val_loss=…``, ``val_acc=…``.
TRAIN_LOSS = "train:loss"
VALIDATION_LOSS = "validation:loss"
METRIC_DEFINITIONS = [
    {"Name": TRAIN_LOSS, "Regex": r"train_loss=([0-9]+\.[0-9]+)"},
    {"Name": VALIDATION_LOSS, "Regex": r"val_loss=([0-9]+\.[0-9]+)"},
    {"Name": VALIDATION_ACCURACY, "Regex": r"val_acc=([0-9]+\.[0-9]+)"},
]

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
ENTRY_POINT = "train.py"
PROFILING_INTERVAL_MS = 500

# Measured on the 6,004-review file, 2 CPU cores (see benchmarks/ and the training tests).
# Locally one epoch: layer-wise learning-rate decay and a faster head reach in one pass what
# two passes at one flat rate did, and batches of 16 ran faster here than 32. One pass leaves
# MiniLM underfit (the loss on each new batch ends near the validation loss), so the local
# recipe trains without dropout at 8e-5: over five seeds it beat dropout 0.1 at 5e-5 on the
# test and validation splits alike (test mean 0.730 vs 0.714; benchmarks/recipe_seeds.py).
_SHARED_HYPERPARAMETERS = {
    "max_seq_length": 128,
    "validation_batch_size": 64,
    "train_steps_per_epoch": 0,
    "validation_steps_per_epoch": 0,
    "freeze_bert_layer": False,
    "group_by_length": True,
    # Off: over three seeds on the dev file none of these moved the mean past the seed spread
    # of 2-4 points (benchmarks/recipe_seeds.py); they stay for other checkpoints and data.
    "lr_schedule": "linear",
    "label_smoothing": 0.0,
    "reinit_layers": 0,
    # dynamic_int8 (inference.py's QUANTIZATIONS) serves 2x faster on CPU but scored 1.2 points
    # below float on the dev file's model (benchmarks/serving_levers.py): more than the half
    # point of accuracy a serving lever may cost
    "serving_quantization": "none",
    "seed": 42,
    "log_interval": 10,
}
DEFAULT_HYPERPARAMETERS: dict[str, dict] = {
    "local": {
        **_SHARED_HYPERPARAMETERS,
        "epochs": 1,
        "learning_rate": 8e-5,
        "dropout": 0.0,
        "layerwise_lr_decay": 0.8,
        "head_learning_rate": 1e-3,
        "train_batch_size": 16,
        "eval_interval": 0,
        # model.onnx served by ONNX Runtime: the same answers, 0.6x the time per review here
        "serving_runtime": "onnxruntime",
    },
    "aws": {
        **_SHARED_HYPERPARAMETERS,
        "epochs": 3,
        "learning_rate": 2e-5,
        "dropout": -1.0,  # the checkpoint's own: three passes over roberta-base
        "layerwise_lr_decay": 1.0,
        "head_learning_rate": 0.0,
        "train_batch_size": 64,
        "eval_interval": 50,
        # the SageMaker PyTorch containers lack onnx and onnxruntime (include/jobs/requirements.txt)
        "serving_runtime": "torch",
    },
}

# Built-in rule parameters, smdebug names. LossNotDecreasing: Debugger's defaults for
# diff_percent (0.1) and increase_threshold_percent (5). Its num_steps (Debugger's default 10) is
# the least distance between checks, which fall on saved steps: every 500 steps in the losses
# collection of the course's configuration (smdebug_rulesconfig's loss_not_decreasing()). These
# runs are a few hundred steps long and record the loss every ``log_interval`` steps, so the
# checks are 100 training steps apart: three in the local recipe's one pass. ``patience_*`` count
# recorded values (one train_loss per ``log_interval`` steps, one validation per evaluation).
DEFAULT_RULES: dict[str, dict[str, str]] = {
    "LossNotDecreasing": {
        "rule_to_invoke": "LossNotDecreasing",
        "use_losses_collection": "True",
        "mode": "TRAIN",
        "num_steps": "100",
        "diff_percent": "0.1",
        "increase_threshold_percent": "5",
    },
    "Overtraining": {
        "rule_to_invoke": "Overtraining",
        "patience_train": "5",
        "patience_validation": "10",
        "delta": "0.01",
    },
}
PROFILER_RULE = {"ProfilerReport": {"rule_to_invoke": "ProfilerReport"}}
# Who evaluates the rules: ``pipeline`` (the default), the project's own evaluation of the
# training history (include/pipeline/training_rules.py), after the job, on both targets;
# ``managed``, SageMaker Debugger's rule jobs (closed to new customers since 2026-07-30).
RULES_MODES = ("pipeline", "managed")
# Rule outcomes the rules gate treats as a finding: a rule that could not be evaluated (Error)
# proves nothing about the job, so it fails or warns like IssuesFound.
RULE_FINDINGS = ("IssuesFound", "Error")


def hyperparameters(target: str, pretrained_model: str = "", **overrides) -> dict:
    """The default hyperparameters of a target, the pretrained model filled in, then overrides."""
    if target not in DEFAULT_HYPERPARAMETERS:
        raise ValueError(
            f"unknown target {target!r}; expected one of {list(DEFAULT_HYPERPARAMETERS)}"
        )
    unknown = set(overrides) - set(DEFAULT_HYPERPARAMETERS[target])
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)}")
    return {
        "pretrained_model": pretrained_model or default_model(target),
        **DEFAULT_HYPERPARAMETERS[target],
        **overrides,
    }


def _hyperparameter_text(value) -> str:
    return str(value)  # bool -> "True"/"False", which train.py parses


def output_data_uri(training_job: dict) -> str:
    """Where SageMaker leaves the job's ``/opt/ml/output/data`` (DescribeTrainingJob in):
    ``<S3OutputPath>/<job>/output/output.tar.gz``, next to ``model.tar.gz``."""
    output = training_job["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    return f"{output}/{training_job['TrainingJobName']}/output/output.tar.gz"


def profiler_report_uri(training_job: dict) -> str:
    """Where Debugger's ProfilerReport leaves its HTML report, beside the job:
    ``<S3OutputPath>/<job>/rule-output/ProfilerReport/profiler-output/profiler-report.html``;
    the ``pipeline`` rules mode writes its own report there too."""
    output = training_job["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    return (
        f"{output}/{training_job['TrainingJobName']}/rule-output/ProfilerReport/"
        "profiler-output/profiler-report.html"
    )


def rule_configurations(rules: dict[str, dict], image_uri: str) -> list[dict]:
    """``{name: RuleParameters}`` -> Debug/ProfilerRuleConfigurations entries (string values)."""
    configs = []
    for name, params in rules.items():
        parameters = {"rule_to_invoke": name, **{k: str(v) for k, v in params.items()}}
        configs.append(
            {
                "RuleConfigurationName": name,
                "RuleEvaluatorImage": image_uri,
                "RuleParameters": parameters,
            }
        )
    return configs


def _channel(name: str, uri: str) -> dict:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": "File",
    }


def training_job_request(
    *,
    job_name: str,
    role_arn: str,
    region: str,
    image_uri: str,
    code_uri: str,
    train_uri: str,
    validation_uri: str,
    output_uri: str,
    checkpoint_uri: str,
    hyperparameters: dict,
    rules: dict | None = None,
    managed_rules: bool = True,
    instance_type: str,
    instance_count: int = 1,
    max_runtime_s: int = 4 * 3600,
    rule_image_uri: str | None = None,
    settings=None,
) -> dict:
    """CreateTrainingJob keyword arguments for the PyTorch container in script mode.

    ``code_uri`` is the ``sourcedir.tar.gz`` holding train.py and its sibling modules;
    ``rules`` maps a built-in rule name to its parameters (default :data:`DEFAULT_RULES`);
    the rule image defaults to the region's Debugger rule image. Without ``managed_rules`` (the
    ``pipeline`` rules mode) nothing of Debugger is requested: no hook, no rule jobs, the
    profiler disabled; the pipeline evaluates the rules on the job's training history.
    ``settings``: the job's network and encryption (:mod:`network`).
    """
    if rule_image_uri is None:
        from include.pipeline.requests.images import debugger_rule_image_uri

        rule_image_uri = debugger_rule_image_uri(region)
    rules = DEFAULT_RULES if rules is None else rules
    job_root = f"{output_uri.rstrip('/')}/{job_name}"
    hp = {k: _hyperparameter_text(v) for k, v in hyperparameters.items()}
    hp.update(
        {
            "sagemaker_program": ENTRY_POINT,
            "sagemaker_submit_directory": code_uri,
            "sagemaker_region": region,
            "sagemaker_container_log_level": "20",
        }
    )
    request = {
        "TrainingJobName": job_name,
        "RoleArn": role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": [dict(m) for m in METRIC_DEFINITIONS],
            "EnableSageMakerMetricsTimeSeries": True,
        },
        "HyperParameters": hp,
        "InputDataConfig": [_channel("train", train_uri), _channel("validation", validation_uri)],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": instance_count,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_s},
        "CheckpointConfig": {"S3Uri": checkpoint_uri, "LocalPath": CHECKPOINT_LOCAL_PATH},
        "DebugHookConfig": {
            "S3OutputPath": f"{job_root}/debug-output",
            "CollectionConfigurations": [
                {
                    "CollectionName": "losses",
                    "CollectionParameters": {
                        "train.save_interval": str(hyperparameters.get("log_interval", 10)),
                        "eval.save_interval": "1",
                    },
                }
            ],
        },
        "DebugRuleConfigurations": rule_configurations(rules, rule_image_uri),
        "ProfilerConfig": {
            "S3OutputPath": f"{job_root}/profiler-output",
            "ProfilingIntervalInMilliseconds": PROFILING_INTERVAL_MS,
        },
        "ProfilerRuleConfigurations": rule_configurations(PROFILER_RULE, rule_image_uri),
    }
    if not managed_rules:
        for debugger in (
            "DebugHookConfig",
            "DebugRuleConfigurations",
            "ProfilerRuleConfigurations",
        ):
            del request[debugger]
        request["ProfilerConfig"] = {"DisableProfiler": True}
    return network.training(request, settings, "train")
