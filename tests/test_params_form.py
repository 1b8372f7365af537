"""The trigger forms (include/pipeline/params.py): every text field limited, optional ones
nullable so the form's defaults can be triggered as they are, sections in a person's order."""

from __future__ import annotations

import copy

import pytest
from airflow.sdk.definitions.param import ParamsDict

from include.pipeline import params as forms

FORMS = {
    "reviews_pipeline": forms.PARAMS,
    "endpoint_rollout": forms.ROLLOUT_PARAMS,
    "reviews_batch_scoring": forms.BATCH_SCORING,
    "model_monitor": forms.MONITOR_PARAMS,
    "human_review": forms.REVIEW_PARAMS,
}
FIELDS = [(form, name, p) for form, fields in FORMS.items() for name, p in fields.items()]


def validated(fields: dict, overrides: dict | None = None) -> dict:
    """The form's values with ``overrides``, validated as Airflow does when a run is created."""
    params = ParamsDict(copy.deepcopy(fields))
    params.update(overrides or {})
    return params.validate()


def _types(schema: dict) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _limited(schema: dict) -> bool:
    """A string schema with a list of choices, or both a length and a pattern."""
    return "enum" in schema or ("maxLength" in schema and "pattern" in schema)


@pytest.mark.parametrize("form, name, param", FIELDS, ids=[f"{f}.{n}" for f, n, _ in FIELDS])
def test_every_text_field_has_a_limit(form, name, param):
    schema = param.schema
    if "string" in _types(schema):
        assert _limited(schema), f"{form}.{name}: free text without a limit"
    if "array" in _types(schema):
        items = schema["items"]
        assert "maxItems" in schema or "enum" in items, f"{form}.{name}: no item count limit"
        if "string" in _types(items):
            assert _limited(items), f"{form}.{name}: list items without a limit"
    if "object" in _types(schema):
        assert "propertyNames" in schema and "additionalProperties" in schema


@pytest.mark.parametrize("form", FORMS)
def test_a_field_left_empty_is_not_required(form):
    """Airflow's form marks a field required unless its type admits null, and disables Trigger
    while a required field is empty: an empty default must be nullable."""
    for name, param in FORMS[form].items():
        if param.value in (None, ""):
            assert "null" in _types(param.schema), f"{form}.{name}"
            assert param.value is None, f"{form}.{name}: the form would send null, not ''"
    validated(FORMS[form])  # the defaults as they are


def test_the_main_form_optional_text_fields():
    optional = {n for n, p in forms.PARAMS.items() if p.value is None}
    assert optional == {"input_uri", "pretrained_model", "tuning_warm_start_parent"}
    # what a REST client may send instead of null
    validated(forms.PARAMS, {name: "" for name in optional})


def test_no_main_form_field_looks_required_and_an_emptied_one_is_refused():
    """Every field of the main form holds its default or may be empty, so none carries Airflow's
    required star; a prefilled field a person empties is refused by the first task, naming the
    default, instead of reaching a step as null."""
    starred = [n for n, p in forms.PARAMS.items() if "null" not in _types(p.schema)]
    assert starred == []
    emptied = {"encoding": None, "epochs": None, "deployment_strategy": None}
    validated(forms.PARAMS, emptied)  # the form lets it through...
    found = forms.limit_problems(emptied, forms.PARAMS)  # ...the first task does not
    assert found == [
        "encoding: empty; give a value (the form's default is 'utf-8')",
        f"epochs: empty; give a value (the form's default is {forms.PARAMS['epochs'].value!r})",
        "deployment_strategy: empty; give a value (the form's default is "
        f"{forms.PARAMS['deployment_strategy'].value!r})",
    ]
    assert forms.limit_problems({"input_uri": None}, forms.PARAMS) == []


def test_a_field_whose_null_means_not_checked_may_be_null():
    """``min_agreement`` and ``max_latency_ratio`` declare null themselves ("null: not
    checked"): the first task takes it, while a field that does not is still refused."""
    off = {"min_agreement": None, "max_latency_ratio": None}
    assert forms.limit_problems(off, forms.ROLLOUT_PARAMS) == []
    assert forms.limit_problems({"weight_floor": None}, forms.ROLLOUT_PARAMS) == [
        "weight_floor: not within the form's limit (type: number)"
    ]


def test_sections_in_the_order_a_person_thinks():
    order = []
    for param in forms.PARAMS.values():
        section = param.schema.get("section")
        if section not in order:
            order.append(section)
    # None: Airflow's default section ("Run Parameters"), the one open when the form opens
    assert order == [
        None,
        "Bias",
        "Features and training",
        "Candidates and tuning",
        "Registry and approval",
        "Deployment",
    ]
    first = [n for n, p in forms.PARAMS.items() if "section" not in p.schema]
    assert first[0] == "input_uri" and "encoding" in first
    # what the run trains on is decided with the input: the lake's files, or this file alone
    assert first[1] == "training_data"
    assert forms.PARAMS["training_data"].value == "accumulated"
    for fields in (forms.ROLLOUT_PARAMS, forms.MONITOR_PARAMS, forms.REVIEW_PARAMS):
        assert "section" not in fields["endpoint_name"].schema  # the only section of its form


AWS_TERMS = ("SageMaker", "Clarify", "Debugger", "Autopilot", "Feature Store", "Athena", "Glue")


def test_titles_are_plain_words_and_aws_terms_stay_in_the_descriptions():
    """A person fills the form by what a field does; the AWS service behind it is in the
    field's description, where it does not crowd the label."""
    titles = {f"{form}.{name}": param.schema.get("title") for form, name, param in FIELDS}
    assert all(titles.values()), [field for field, title in titles.items() if not title]
    sections = {p.schema["section"] for _, _, p in FIELDS if "section" in p.schema}
    labels = [*titles.values(), *sections]
    named = [
        (label, term) for label in labels for term in AWS_TERMS if term.lower() in label.lower()
    ]
    assert named == []
    descriptions = " ".join(p.description or "" for _, _, p in FIELDS)
    assert "SageMaker" in descriptions and "Clarify" in descriptions


@pytest.mark.parametrize(
    "name, value",
    [
        ("input_uri", "s3://bk/" + "x" * 2000),
        ("input_uri", "/lake/incoming/a.csv\n"),
        ("pretrained_model", "model\x1b[2J"),
        ("encoding", "utf-8 --exec"),
        ("training_data", "everything"),
        ("tuning_warm_start_parent", "job_with_underscore"),
        ("bias_group_variable", "product category; drop"),
        ("bias_facets", ["ok", "x" * 65]),
        ("bias_facets", [f"c{i}" for i in range(11)]),
        ("bias_thresholds", {"NOT_A_METRIC": 0.1}),
        ("bias_thresholds", {"DPL": "0.1"}),
    ],
)
def test_the_form_refuses_values_past_a_limit(name, value):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError):
        validated(forms.PARAMS, {name: value})
