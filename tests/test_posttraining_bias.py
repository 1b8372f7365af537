"""Post-training bias metrics: every value equals AWS's smclarify library on the same data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from smclarify.bias.metrics import posttraining as reference

from include.pipeline.targets.local.clarify.posttraining import (
    POST_TRAINING_METRICS,
    compute_post_training_metrics,
)

SIMPLE = ("DPPL", "DI", "DCA", "DCR", "RD", "SD", "DAR", "DRR", "AD", "TE")


def _reference(name, feature, d, label, predicted, group, features):
    fn = getattr(reference, name)
    if name in ("DPPL", "DI"):
        return fn(feature, d, predicted)
    if name == "CDDPL":
        return fn(feature, d, predicted, group)
    if name == "FT":
        return fn(features, d, predicted)
    return fn(feature, d, label, predicted)


def _same(ours, theirs) -> bool:
    if isinstance(ours, str):  # Clarify writes infinities as strings
        return math.isinf(theirs) and (ours == "Infinity") == (theirs > 0)
    return ours == pytest.approx(theirs, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_every_metric_matches_smclarify(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(12, 60))
    label = rng.random(n) < rng.uniform(0.1, 0.9)
    # some seeds: predictions that never say positive for one facet (infinite ratios)
    predicted = rng.random(n) < rng.uniform(0.1, 0.9)
    d = rng.random(n) < 0.4
    d[:2] = [True, False]
    if seed == 5:
        predicted[d] = False
    group = rng.integers(0, 3, n)
    features = rng.normal(size=(n, 3))
    ours = compute_post_training_metrics(
        "all", label, predicted, d, group_codes=group, features=features
    )
    assert [m["name"] for m in ours] == sorted(POST_TRAINING_METRICS)
    feature = pd.Series(rng.integers(0, 5, n))
    for entry in ours:
        theirs = _reference(
            entry["name"],
            feature,
            pd.Series(d),
            pd.Series(label),
            pd.Series(predicted),
            pd.Series(group),
            pd.DataFrame(features),
        )
        assert _same(entry["value"], theirs), (entry, theirs)


def test_undefined_metrics_are_errors_like_clarify():
    n = 10
    label = np.arange(n) % 2 == 0
    out = compute_post_training_metrics(
        ["DPPL", "CDDPL", "FT"], label, label, np.zeros(n, dtype=bool), features=None
    )
    assert [(m["name"], m["value"]) for m in out] == [("CDDPL", None), ("DPPL", None), ("FT", None)]
    assert all(m["error"] == "Facet set is empty" for m in out)
    texts = compute_post_training_metrics(
        ["FT"], label, label, np.arange(n) < 3, features=np.array(["a"] * n)
    )
    assert texts[0]["error"] == "FlipTest does not support non-numeric columns"
    with pytest.raises(ValueError, match="GE"):
        compute_post_training_metrics(["GE"], label, label, label)


# The local Clarify processor's post-training analysis of predictions.csv, favourable label 1.
CONFIG = {
    "dataset_type": "text/csv",
    "label": "sentiment",
    "label_values_or_threshold": [1],
    "predicted_label": "predicted_label",
    "facet": [{"name_or_index": "product_category", "value_or_threshold": ["Dresses"]}],
    "methods": {"post_training_bias": {"methods": "all"}},
}


def _predictions(
    seed: int,
    n: int,
    predicted: list | None = None,
    categories: tuple[str, ...] = ("Dresses", "Tops", "Jackets"),
    columns: dict | None = None,
) -> pd.DataFrame:
    """Random labels, predictions (unless ``predicted``) and product categories, plus extra
    ``columns`` drawn by their makers from the same generator."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "sentiment": rng.choice([-1, 0, 1], n),
            "predicted_label": rng.choice([-1, 0, 1], n) if predicted is None else predicted,
            "product_category": rng.choice(list(categories), n),
            **{name: make(rng, n) for name, make in (columns or {}).items()},
        }
    )


def _analysis(tmp_path, data: pd.DataFrame, config: dict) -> dict:
    """Run the local Clarify processor on ``data`` as predictions.csv; its analysis.json."""
    import json

    from include.pipeline.targets.local.clarify import processor

    (tmp_path / "data").mkdir(parents=True)
    data.to_csv(tmp_path / "data" / "predictions.csv", index=False)
    (tmp_path / "analysis_config.json").write_text(json.dumps(config))
    processor.run(tmp_path / "analysis_config.json", tmp_path / "data", tmp_path / "out")
    return json.loads((tmp_path / "out" / "analysis.json").read_text())


def test_the_local_clarify_processor_writes_the_post_training_section(tmp_path):
    """analysis.json's ``post_training_bias_metrics`` for product_category from the dataset's
    predicted_label column, each value equal to smclarify's on the same rows."""
    from include.pipeline.targets.local.clarify import processor

    data = _predictions(seed=7, n=60)
    config = {**CONFIG, "group_variable": "product_category"}
    analysis = _analysis(tmp_path, data, config)
    assert "pre_training_bias_metrics" not in analysis
    (entry,) = analysis["post_training_bias_metrics"]["facets"]["product_category"]
    assert entry["value_or_threshold"] == "Dresses"
    got = {m["name"]: m["value"] for m in entry["metrics"]}
    feature = data["product_category"]
    d = feature == "Dresses"
    label, predicted = data["sentiment"] == 1, data["predicted_label"] == 1
    for name in SIMPLE:
        theirs = _reference(name, feature, d, label, predicted, None, None)
        assert _same(got[name], theirs), (name, got[name], theirs)
    with pytest.raises(processor.ClarifyInputError, match="predicted_label"):
        processor.parse_config({**config, "predicted_label": None})


def test_a_model_that_never_predicts_the_favourable_label_is_reported_not_refused(tmp_path):
    """A barely trained model may predict one class only: the post-training section is still
    written (metrics that divide by zero are reported as undefined), the job does not fail."""
    data = _predictions(seed=3, n=40, predicted=[0] * 40, categories=("Dresses", "Tops"))
    analysis = _analysis(
        tmp_path, data, {**CONFIG, "methods": {"post_training_bias": {"methods": ["DPPL", "DI"]}}}
    )
    (entry,) = analysis["post_training_bias_metrics"]["facets"]["product_category"]
    got = {m["name"]: m for m in entry["metrics"]}
    assert got["DPPL"]["value"] == 0.0  # neither group is ever predicted favourable
    assert set(got) == {"DPPL", "DI"}


def _flip_test_dataset(tmp_path, columns: dict, methods=("FT", "DPPL")):
    """predictions.csv with extra ``columns`` and the analysis of all its facet values."""
    data = _predictions(seed=11, n=80, columns=columns)
    config = {
        **CONFIG,
        "headers": list(data.columns),
        "facet": [{"name_or_index": "product_category"}],
        "methods": {"post_training_bias": {"methods": list(methods)}},
    }
    analysis = _analysis(tmp_path, data, config)
    facets = analysis["post_training_bias_metrics"]["facets"]["product_category"]
    return pd.read_csv(tmp_path / "data" / "predictions.csv"), facets


def test_the_flip_test_reads_the_datasets_numeric_feature_columns(tmp_path):
    """FT's k-NN fits on every column but the label, facet and predicted label (the evaluation
    job's text_f* columns), as smclarify's report hands FT its dataset: each facet value's FT
    equals smclarify's FT on those columns as the CSV reads back."""
    features = {f"text_f{i:02d}": lambda rng, n: rng.normal(size=n).round(6) for i in range(4)}
    data, facets = _flip_test_dataset(tmp_path, features)
    assert len(facets) == 3  # one vs. all, each category
    values = []
    for entry in facets:
        got = {m["name"]: m for m in entry["metrics"]}
        d = data["product_category"] == entry["value_or_threshold"]
        theirs = reference.FT(
            data.drop(columns=["sentiment", "product_category", "predicted_label"]),
            d,
            data["predicted_label"] == 1,
        )
        assert "error" not in got["FT"], got["FT"]
        assert got["FT"]["value"] == pytest.approx(theirs, abs=1e-12)
        values.append(theirs)
    assert any(v != 0 for v in values)  # the comparison is not one of zeros


def test_the_flip_test_without_numeric_features_is_reported_undefined(tmp_path):
    text = {"review_body": lambda rng, n: rng.choice(["fits well", "too small"], n)}
    _, facets = _flip_test_dataset(tmp_path / "text", text)
    ft = {m["name"]: m for m in facets[0]["metrics"]}["FT"]
    assert ft["value"] is None and ft["error"] == "FlipTest does not support non-numeric columns"
    _, facets = _flip_test_dataset(tmp_path / "none", {})
    metrics = {m["name"]: m for m in facets[0]["metrics"]}
    assert metrics["FT"]["value"] is None and "feature column" in metrics["FT"]["error"]
    assert isinstance(metrics["DPPL"]["value"], float)  # the others are still computed
