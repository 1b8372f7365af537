"""Pre-training bias step: Clarify's ``analysis_config.json`` and its processing-job request.

The aws target sends :func:`bias_job_request` with ``SageMakerProcessingOperator`` to the Clarify
container; the local target hands the identical dict to the job runner, which runs
:mod:`include.pipeline.targets.local.clarify.processor` on the same config. Container paths:
:mod:`include.pipeline.core.clarify_container`.
"""

from __future__ import annotations

from typing import Any

from include.pipeline import schema as S
from include.pipeline.core.clarify_container import (
    CONFIG_INPUT_DIR,
    DATA_INPUT_DIR,
    OUTPUT_DIR,
    REPORT_NAME,
)
from include.pipeline.documents.bias import PRE_TRAINING_METRICS
from include.pipeline.requests import network
from include.pipeline.requests.common import cluster_config, processing_input, processing_output

# Step parameters (DAG Params of the same names), with the course's choices as defaults.
DEFAULT_PARAMS: dict[str, Any] = {
    "bias_label": S.SENTIMENT,
    "bias_label_values": [1],  # favourable label value(s): a list, as Clarify takes them
    "bias_facets": [S.PRODUCT_CATEGORY],  # names, or {"name_or_index", "value_or_threshold"}
    # CDDL conditions on this column; with the facet itself as group CDDL is 0 by construction,
    # so pass another column (e.g. a length bucket) when the dataset has one.
    "bias_group_variable": S.PRODUCT_CATEGORY,
    "bias_methods": list(PRE_TRAINING_METRICS),
    "bias_report": True,
    "bias_report_title": "Pre-training bias: Women's E-Commerce Clothing Reviews",
}


def _param(params: dict, key: str):
    value = (params or {}).get(key)
    return DEFAULT_PARAMS[key] if value is None else value


def _facet_entry(facet, headers: list[str]) -> dict:
    if isinstance(facet, str):
        facet = {"name_or_index": facet}
    if not isinstance(facet, dict) or not isinstance(facet.get("name_or_index"), str):
        raise ValueError(f"bias facet {facet!r} must be a column name or {{'name_or_index': ...}}")
    if facet["name_or_index"] not in headers:
        raise ValueError(f"bias facet column {facet['name_or_index']!r} is not in {headers}")
    entry = {"name_or_index": facet["name_or_index"]}
    if facet.get("value_or_threshold"):
        entry["value_or_threshold"] = list(facet["value_or_threshold"])
    return entry


def analysis_config(params: dict, headers: list[str]) -> dict:
    """Clarify's analysis config for the pre-training bias metrics of a CSV with ``headers``.

    Labels with more than two classes are handled as Clarify does: ``label_values_or_threshold``
    lists the favourable value(s) and every other value counts as not favourable.
    """
    headers = list(headers)
    label = _param(params, "bias_label")
    if label not in headers:
        raise ValueError(f"bias label column {label!r} is not in {headers}")
    label_values = _param(params, "bias_label_values")
    if not isinstance(label_values, list | tuple):
        label_values = [label_values]
    if not label_values:
        raise ValueError("bias_label_values must list at least one favourable label value")
    facets = _param(params, "bias_facets")
    if isinstance(facets, str | dict):
        facets = [facets]
    if not facets:
        raise ValueError("bias_facets must name at least one facet column")
    methods = list(_param(params, "bias_methods"))
    unknown = [m for m in methods if m not in PRE_TRAINING_METRICS]
    if unknown or not methods:
        raise ValueError(
            f"bias_methods {unknown or methods} are not pre-training bias metrics; "
            f"choose from {', '.join(PRE_TRAINING_METRICS)}"
        )
    config = {
        "dataset_type": "text/csv",
        "headers": headers,
        "label": label,
        "label_values_or_threshold": list(label_values),
        "facet": [_facet_entry(f, headers) for f in facets],
    }
    if "CDDL" in methods:
        group = _param(params, "bias_group_variable")
        if group not in headers:
            raise ValueError(f"bias_group_variable column {group!r} (for CDDL) is not in {headers}")
        config["group_variable"] = group
    config["methods"] = {"pre_training_bias": {"methods": methods}}
    if _param(params, "bias_report"):
        config["methods"]["report"] = {
            "name": REPORT_NAME,
            "title": _param(params, "bias_report_title"),
        }
    return config


# The post-training metrics the reports show (Clarify's names). FT (the flip test) fits its k-NN
# on the predictions file's numeric ``text_f*`` columns (documents.FLIP_TEST_FEATURES).
POST_TRAINING_METHODS = ("DPPL", "DI", "DCA", "DCR", "RD", "DAR", "DRR", "AD", "CDDPL", "TE", "FT")


def post_training_analysis_config(params: dict, headers: list[str]) -> dict:
    """Clarify's analysis config for the post-training bias of a model whose predictions are in
    the dataset (``predicted_label`` column): the same label, facets and group as the
    pre-training analysis, over the candidate's test-split predictions."""
    config = analysis_config({**params, "bias_methods": ["CI"], "bias_report": False}, headers)
    config.pop("group_variable", None)
    del config["methods"]
    group = _param(params, "bias_group_variable")
    if group not in headers:
        raise ValueError(f"bias_group_variable column {group!r} (for CDDPL) is not in {headers}")
    return {
        **config,
        "predicted_label": "predicted_label",
        "group_variable": group,
        "methods": {"post_training_bias": {"methods": list(POST_TRAINING_METHODS)}},
    }


def bias_job_request(
    *,
    job_name: str,
    role_arn: str,
    region: str,
    config_uri: str,
    dataset_uri: str,
    output_uri: str,
    instance_type: str = "ml.m5.xlarge",
    settings=None,
) -> dict:
    """CreateProcessingJob for the Clarify container (the operator's ``config``).

    ``config_uri`` is the uploaded analysis_config.json, ``dataset_uri`` the CSV (file or prefix),
    ``output_uri`` the prefix that receives analysis.json and the report; ``settings``: the
    job's network and encryption (:mod:`network`).
    """
    from include.pipeline.requests.images import clarify_image_uri

    request = {
        "ProcessingJobName": job_name,
        "RoleArn": role_arn,
        "AppSpecification": {"ImageUri": clarify_image_uri(region)},
        "ProcessingInputs": [
            processing_input("dataset", dataset_uri, DATA_INPUT_DIR),
            processing_input("analysis_config", config_uri, CONFIG_INPUT_DIR),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [processing_output("analysis_result", output_uri, OUTPUT_DIR)]
        },
        "ProcessingResources": {"ClusterConfig": cluster_config(instance_type)},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    return network.processing(request, settings, "clarify")
