"""The local Clarify processor: analysis.json in Clarify's format, the report, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from include.pipeline.requests.bias import analysis_config
from include.pipeline.targets.local.clarify.processor import ClarifyInputError, run
from tests.conftest import run_captured
from tests.test_bias_requests import BIAS, bias_request

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "womens_clothing_reviews_dev.csv"
HEADERS = ["sentiment", "review_body", "product_category"]

# Clarify's names and descriptions, written out as the container writes them.
CLARIFY_METRICS = [
    ("CDDL", "Conditional Demographic Disparity in Labels (CDDL)"),
    ("CI", "Class Imbalance (CI)"),
    ("DPL", "Difference in Positive Proportions in Labels (DPL)"),
    ("JS", "Jensen-Shannon Divergence (JS)"),
    ("KL", "Kullback-Liebler Divergence (KL)"),
    ("KS", "Kolmogorov-Smirnov Distance (KS)"),
    ("LP", "L-p Norm (LP)"),
    ("TVD", "Total Variation Distance (TVD)"),
]

# 3 Dresses (1 positive), 2 Pants (2 positive), 3 Tops (0 positive); labels -1/0/1.
ROWS = [
    (1, "lovely", "Dresses"),
    (0, "fine", "Dresses"),
    (-1, "bad", "Dresses"),
    (1, "great", "Pants"),
    (1, "good fit", "Pants"),
    (-1, "awful", "Tops"),
    (0, "ok, I guess", "Tops"),
    (-1, "tore", "Tops"),
]


def _write_csv(path: Path, rows, header=HEADERS) -> Path:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def _write_config(path: Path, params=None, headers=HEADERS, *, with_headers=True) -> Path:
    config = analysis_config(params or {}, headers)
    if not with_headers:
        del config["headers"]  # optional in Clarify: the CSV's own header row names the columns
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture
def small(tmp_path):
    return (
        _write_config(tmp_path / "config" / "analysis_config.json"),
        _write_csv(tmp_path / "data" / "reviews.csv", ROWS),
        tmp_path / "output",
    )


def test_analysis_json_has_clarifys_schema(small):
    config, data, out = small
    run(config, data, out, log=lambda _: None)
    analysis = json.loads((out / "analysis.json").read_text())
    assert list(analysis) == ["version", "pre_training_bias_metrics"]
    assert analysis["version"] == "1.0"
    pre = analysis["pre_training_bias_metrics"]
    assert list(pre) == ["label", "facets", "label_value_or_threshold"]
    assert pre["label"] == "sentiment"
    assert pre["label_value_or_threshold"] == "1"
    entries = pre["facets"]["product_category"]
    assert [e["value_or_threshold"] for e in entries] == ["Dresses", "Pants", "Tops"]
    for entry in entries:
        assert list(entry) == ["value_or_threshold", "metrics"]
        assert [(m["name"], m["description"]) for m in entry["metrics"]] == CLARIFY_METRICS
        for metric in entry["metrics"]:
            assert list(metric) == ["name", "description", "value"]
            assert isinstance(metric["value"], float)
    values = {
        e["value_or_threshold"]: {m["name"]: m["value"] for m in e["metrics"]} for e in entries
    }
    # Multi-class label collapsed to favourable (1) vs the rest, facet d vs all other rows.
    assert values["Dresses"]["CI"] == pytest.approx((5 - 3) / 8)
    assert values["Dresses"]["DPL"] == pytest.approx(2 / 5 - 1 / 3)
    assert values["Pants"]["DPL"] == pytest.approx(1 / 6 - 1)
    assert values["Tops"]["DPL"] == pytest.approx(3 / 5 - 0)
    # Tops has no positive label: only "not positive" is common, P_a = 2/5, P_d = 1.
    assert values["Tops"]["TVD"] == pytest.approx(0.5 * abs(2 / 5 - 1))


def test_report_is_written_next_to_analysis(small):
    config, data, out = small
    written = run(config, data, out, log=lambda _: None)
    assert sorted(p.name for p in written) == [
        "analysis.json",
        "report.html",
        "report_product_category.png",
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)
    page = (out / "report.html").read_text()
    for text in ("Dresses", "Pants", "Tops", "Class Imbalance (CI)", "report_product_category.png"):
        assert text in page
    assert "#f8d7da" in page  # Tops' |DPL| = 0.6 is over the default 0.2: red
    assert (out / "report_product_category.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_replaces_outputs_without_leftovers(small):
    config, data, out = small
    run(config, data, out, log=lambda _: None)
    first = (out / "analysis.json").read_bytes()
    run(config, data, out, log=lambda _: None)
    assert (out / "analysis.json").read_bytes() == first
    assert len(list(out.iterdir())) == 3


def test_facet_value_list_multiple_facets_and_headerless_csv(tmp_path):
    headers = [*HEADERS, "length"]
    rows = [(*r, "long" if len(r[1]) > 4 else "short") for r in ROWS]
    params = {
        "bias_facets": [
            {"name_or_index": "product_category", "value_or_threshold": ["Dresses", "Tops"]},
            "length",
        ],
        "bias_label_values": [0, 1],
        "bias_methods": ["CI", "DPL"],
        "bias_report": False,
    }
    config = _write_config(tmp_path / "c.json", params, headers)
    data = _write_csv(tmp_path / "data" / "part-0.csv", rows, header=None)
    run(config, tmp_path / "data", tmp_path / "out", log=lambda _: None)
    pre = json.loads((tmp_path / "out" / "analysis.json").read_text())["pre_training_bias_metrics"]
    assert pre["label_value_or_threshold"] == "0,1"
    (grouped,) = pre["facets"]["product_category"]
    assert grouped["value_or_threshold"] == "Dresses,Tops"
    ci, dpl = grouped["metrics"]
    assert ci["value"] == pytest.approx((2 - 6) / 8)
    assert dpl["value"] == pytest.approx(2 / 2 - 3 / 6)  # favourable: 0 or 1
    assert [e["value_or_threshold"] for e in pre["facets"]["length"]] == ["long", "short"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["analysis.json"]
    assert data.exists()


@pytest.mark.parametrize(
    ("params", "rows", "message"),
    [
        ({"bias_label": "stars"}, ROWS, "label column 'stars' is not in the dataset"),
        ({"bias_facets": ["colour"]}, ROWS, "facet column 'colour' is not in the dataset"),
        ({}, [(r[0], r[1], "Dresses") for r in ROWS], "single value 'Dresses'"),
        ({"bias_label_values": [2]}, ROWS, "label value 2 never occurs in label column"),
        ({}, [*ROWS[:4], (1, "x", ""), *ROWS[4:]], r"facet column 'product_category' has 1 empty"),
        (
            {"bias_facets": [{"name_or_index": "product_category", "value_or_threshold": ["Hat"]}]},
            ROWS,
            r"facet value\(s\) \['Hat'\] never occur",
        ),
    ],
)
def test_bad_input_fails_clearly_and_leaves_nothing(tmp_path, params, rows, message):
    headers = [*HEADERS, "stars", "colour"]
    config = _write_config(tmp_path / "c.json", params, headers, with_headers=False)
    data = _write_csv(tmp_path / "d.csv", rows)
    out = tmp_path / "out"
    with pytest.raises(ClarifyInputError, match=message):
        run(config, data, out, log=lambda _: None)
    assert not out.exists() or list(out.iterdir()) == []


def test_empty_cell_error_names_file_and_line(tmp_path):
    config = _write_config(tmp_path / "c.json")
    data = _write_csv(tmp_path / "d.csv", [*ROWS[:2], ("", "no label", "Pants"), *ROWS[2:]])
    with pytest.raises(ClarifyInputError, match=r"label column 'sentiment'.*d\.csv line 4"):
        run(config, data, tmp_path / "out", log=lambda _: None)


def test_command_line_like_a_container_entrypoint(small, tmp_path):
    config, data, out = small
    cmd = [
        sys.executable,
        "-m",
        "include.pipeline.targets.local.clarify.processor",
        "--analysis-config",
    ]
    done = run_captured(
        [*cmd, str(config), "--dataset", str(data.parent), "--output", str(out)],
    )
    assert done.returncode == 0, done.stderr
    assert (out / "analysis.json").exists()
    bad = run_captured(
        [*cmd, str(tmp_path / "missing.json"), "--dataset", str(data), "--output", str(out)],
    )
    assert bad.returncode == 1
    assert "missing.json does not exist" in bad.stderr


def test_runs_through_the_job_runner_from_the_aws_request(tmp_path):
    from include.pipeline.targets.local.lake import resolve
    from include.pipeline.targets.local.sagemaker.jobs import run_processing_job

    lake = tmp_path / "lake"
    root = resolve(BIAS, lake)  # the run's bias folder in the lake
    _write_config(root / "config" / "analysis_config.json")
    _write_csv(root / "data" / "reviews.csv", ROWS)
    lines: list[str] = []
    result = run_processing_job(bias_request(), lake=lake, log=lines.append)
    assert result["ProcessingJobStatus"] == "Completed", result.get("FailureReason")
    analysis = json.loads((root / "report" / "analysis.json").read_text())
    facets = analysis["pre_training_bias_metrics"]["facets"]
    assert [e["value_or_threshold"] for e in facets["product_category"]] == [
        "Dresses",
        "Pants",
        "Tops",
    ]
    assert (root / "report" / "report.html").exists()


def test_report_on_the_real_reviews(tmp_path):
    if not REAL_DATA.exists():
        pytest.skip(f"real data not present at {REAL_DATA}")
    config = _write_config(tmp_path / "c.json")
    run(config, REAL_DATA, tmp_path / "out", log=lambda _: None)
    pre = json.loads((tmp_path / "out" / "analysis.json").read_text())["pre_training_bias_metrics"]
    entries = pre["facets"]["product_category"]
    assert len(entries) >= 10
    for entry in entries:
        values = {m["name"]: m["value"] for m in entry["metrics"]}
        assert -1 <= values["CI"] <= 1 and -1 <= values["DPL"] <= 1
        assert values["TVD"] == pytest.approx(abs(values["DPL"]))
        assert values["CDDL"] == pytest.approx(0.0)  # group variable = facet: 0 by construction
    page = (tmp_path / "out" / "report.html").read_text()
    assert all(e["value_or_threshold"] in page for e in entries)
