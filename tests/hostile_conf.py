"""A corpus of hostile run parameters for ``reviews_pipeline``, built in code: what a user who may
trigger the DAG could send through the form or the REST API, and where it must be refused.

``stage="form"``: the form's schema refuses it, so the REST API answers 400 and no run exists.
``stage="task"``: the schema lets it through and ``check_configuration`` refuses it, naming the
rule (``expect``), before anything reads the input. Files the cases point at hold ``SECRET``,
which must never reach the lake or a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@dataclass(frozen=True)
class Case:
    name: str
    conf: dict
    stage: str  # "form" or "task"
    expect: str = ""  # what check_configuration's message says (task stage)


def secret_file(folder: Path) -> Path:
    """A CSV-looking file outside every allowed folder, holding a secret."""
    path = folder / "secrets.csv"
    path.write_text(f"{SECRET},DB_PASSWORD=hunter2\n1,2\n")
    return path


def cases(lake: Path, bucket: str, outside: Path) -> list[Case]:
    """The corpus for a lake (``<lake>/<bucket>/incoming/`` is made and gets two links) and a
    folder ``outside`` every allowed one."""
    secret = secret_file(outside)
    incoming = lake / bucket / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    (incoming / "link-out.csv").symlink_to(secret)
    (incoming / "environ.csv").symlink_to("/proc/self/environ")
    return [
        # --- refused by check_configuration: paths and places --------------------------------
        Case("path_outside_the_roots", {"input_uri": str(secret)}, "task", "PIPELINE_INPUT_ROOTS"),
        Case("proc_environ", {"input_uri": "/proc/self/environ"}, "task", "system pseudo-file"),
        Case("device_file", {"input_uri": "/dev/zero"}, "task", "system pseudo-file"),
        Case(
            "dot_dot_out_of_incoming",
            {"input_uri": f"{incoming}{'/..' * 20}/{secret.relative_to(secret.anchor)}"},
            "task",
            "'..' segment",
        ),
        Case(
            "symlink_out_of_incoming",
            {"input_uri": str(incoming / "link-out.csv")},
            "task",
            "links out of",
        ),
        Case(
            "symlink_to_proc",
            {"input_uri": str(incoming / "environ.csv")},
            "task",
            "links to a system pseudo-file",
        ),
        Case(
            "another_buckets_uri",
            {"input_uri": "s3://someone-elses-bucket/reviews.csv"},
            "task",
            "PIPELINE_INPUT_BUCKETS",
        ),
        Case(
            "metadata_service_url",
            {"input_uri": "http://169.254.169.254/latest/meta-data/"},
            "task",
            "only s3:// URIs and local paths",
        ),
        # --- refused by check_configuration: models ------------------------------------------
        Case(
            "hub_model_on_local",
            {"pretrained_model": "roberta-base"},
            "task",
            "not an allowed model",
        ),
        Case(
            "model_path_outside_roots",
            {"pretrained_model": str(outside)},
            "task",
            "not an allowed model",
        ),
        # --- refused by the form's schema (REST 400, no run) ---------------------------------
        Case("huge_input_uri", {"input_uri": f"s3://{bucket}/" + "x" * 100_000}, "form"),
        Case("control_characters", {"input_uri": f"{incoming}/a.csv\n\x1b[2J"}, "form"),
        Case("huge_model_name", {"pretrained_model": "m" * 10_000}, "form"),
        Case("encoding_with_spaces", {"encoding": "utf-8 --exec"}, "form"),
        Case("warm_start_path", {"tuning_warm_start_parent": "../../etc/passwd"}, "form"),
        Case("unknown_bias_metric", {"bias_thresholds": {"__proto__": 1}}, "form"),
    ]
