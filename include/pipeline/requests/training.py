"""The CreateTrainingJob request of the fine-tuning step (script mode, ``include/jobs/train.py``).

One place for: the metric regexes that read train.py's log lines, the default hyperparameters of
each target, and the Debugger / profiler rules. The local job runner parses the log with the same
``MetricDefinitions`` and :mod:`include.pipeline.targets.local.sagemaker.debugger` evaluates the same rules.
"""

from __future__ import annotations

from include.pipeline.settings import default_model

# Names of the metric series; train.py prints ``train_loss=…``, ``val_loss=…``, ``val_acc=…``.
TRAIN_LOSS = "train:loss"
VALIDATION_LOSS = "validation:loss"
VALIDATION_ACCURACY = "validation:accuracy"
METRIC_DEFINITIONS = [
    {"Name": TRAIN_LOSS, "Regex": r"train_loss=([0-9]+\.[0-9]+)"},
    {"Name": VALIDATION_LOSS, "Regex": r"val_loss=([0-9]+\.[0-9]+)"},
    {"Name": VALIDATION_ACCURACY, "Regex": r"val_acc=([0-9]+\.[0-9]+)"},
]

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
ENTRY_POINT = "train.py"
PROFILING_INTERVAL_MS = 500

# Measured on the 6,004-review file, 2 CPU cores (see benchmarks/ and the training tests).
DEFAULT_HYPERPARAMETERS: dict[str, dict] = {
    "local": {
        "max_seq_length": 128,
        "epochs": 2,
        "learning_rate": 1e-4,
        "train_batch_size": 32,
        "validation_batch_size": 64,
        "train_steps_per_epoch": 0,
        "validation_steps_per_epoch": 0,
        "freeze_bert_layer": False,
        "group_by_length": True,
        "seed": 42,
        "log_interval": 10,
        "eval_interval": 0,
    },
    "aws": {
        "max_seq_length": 128,
        "epochs": 3,
        "learning_rate": 2e-5,
        "train_batch_size": 64,
        "validation_batch_size": 64,
        "train_steps_per_epoch": 0,
        "validation_steps_per_epoch": 0,
        "freeze_bert_layer": False,
        "group_by_length": True,
        "seed": 42,
        "log_interval": 10,
        "eval_interval": 50,
    },
}

# Built-in rule parameters, smdebug names. ``num_steps``/``patience_*`` count saved steps on AWS
# and emitted metric values locally (one train_loss per ``log_interval`` steps).
DEFAULT_RULES: dict[str, dict[str, str]] = {
    "LossNotDecreasing": {
        "rule_to_invoke": "LossNotDecreasing",
        "use_losses_collection": "True",
        "mode": "TRAIN",
        "num_steps": "10",
        "diff_percent": "0.0",
    },
    "Overtraining": {
        "rule_to_invoke": "Overtraining",
        "patience_train": "5",
        "patience_validation": "10",
        "delta": "0.01",
    },
}
PROFILER_RULE = {"ProfilerReport": {"rule_to_invoke": "ProfilerReport"}}


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


def local_hyperparameters(pretrained_model: str = "", **overrides) -> dict:
    return hyperparameters("local", pretrained_model, **overrides)


def aws_hyperparameters(pretrained_model: str = "", **overrides) -> dict:
    return hyperparameters("aws", pretrained_model, **overrides)


def _hyperparameter_text(value) -> str:
    return str(value)  # bool -> "True"/"False", which train.py parses


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
    instance_type: str,
    instance_count: int = 1,
    max_runtime_s: int = 4 * 3600,
    rule_image_uri: str | None = None,
) -> dict:
    """CreateTrainingJob keyword arguments for the PyTorch container in script mode.

    ``code_uri`` is the ``sourcedir.tar.gz`` holding train.py and its sibling modules;
    ``rules`` maps a built-in rule name to its parameters (default :data:`DEFAULT_RULES`);
    the rule image defaults to the region's Debugger rule image.
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
    return {
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
