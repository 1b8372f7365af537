"""A local stand-in for the SageMaker Clarify processing container (pre-training bias).

It reads the same ``analysis_config.json`` the aws target uploads, computes the pre-training bias
metrics of :mod:`include.pipeline.targets.local.clarify.metrics` and writes ``analysis.json`` in Clarify's
format, plus an HTML/PNG report when the config asks for one. Like a container entrypoint it is a
command; the job runner maps the Clarify image to::

    python -m include.pipeline.targets.local.clarify.processor \\
        --analysis-config /opt/ml/processing/input/config/analysis_config.json \\
        --dataset /opt/ml/processing/input/data --output /opt/ml/processing/output

Bad input (missing column, single-valued facet, unseen label value, empty cells) fails with a
message naming the file, column and value; outputs are built in a temp folder and moved into
place only when everything succeeded, ``analysis.json`` last.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from include.jobs.command import exit_code
from include.pipeline.core.clarify_container import ANALYSIS_FILE
from include.pipeline.targets.local.clarify.metrics import compute_metrics, resolve_methods
from include.pipeline.targets.local.clarify.posttraining import (
    compute_post_training_metrics,
)
from include.pipeline.targets.local.clarify.posttraining import (
    resolve_methods as resolve_post_training,
)

SUPPORTED_DATASET_TYPES = ("text/csv",)
SUPPORTED_METHODS = ("pre_training_bias", "post_training_bias", "report")


class ClarifyInputError(ValueError):
    """The analysis config or the dataset cannot be analysed as asked."""


@dataclass(frozen=True)
class FacetSpec:
    name: str
    values: tuple[str, ...] | None  # None: one report entry per value (one vs. all)


@dataclass(frozen=True)
class AnalysisSpec:
    label: str
    label_values: tuple
    facets: tuple[FacetSpec, ...]
    group_variable: str | None
    methods: tuple[str, ...]
    headers: tuple[str, ...] | None
    report_name: str | None
    report_title: str
    # post_training_bias over the model's predictions in the dataset's ``predicted_label`` column
    post_methods: tuple[str, ...] = ()
    predicted_label: str | None = None


def parse_config(config: dict, source: str = "analysis_config.json") -> AnalysisSpec:
    """Validate the parts of Clarify's analysis config this processor implements."""

    def fail(msg: str) -> ClarifyInputError:
        return ClarifyInputError(f"{source}: {msg}")

    dataset_type = str(config.get("dataset_type", "")).lower()
    if dataset_type not in SUPPORTED_DATASET_TYPES:
        raise fail(f"dataset_type {dataset_type!r} is not supported locally (use text/csv)")
    methods = config.get("methods") or {}
    unsupported = sorted(set(methods) - set(SUPPORTED_METHODS))
    if unsupported:
        raise fail(f"methods {unsupported} are not supported locally (only pre_training_bias)")
    if not {"pre_training_bias", "post_training_bias"} & set(methods):
        raise fail(
            "methods.pre_training_bias (or post_training_bias) is missing: nothing to compute"
        )
    try:
        names = (
            resolve_methods(methods["pre_training_bias"].get("methods", "all"))
            if "pre_training_bias" in methods
            else []
        )
        post_names = (
            resolve_post_training(methods["post_training_bias"].get("methods", "all"))
            if "post_training_bias" in methods
            else []
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    predicted_label = config.get("predicted_label")
    if post_names and (not isinstance(predicted_label, str) or not predicted_label):
        raise fail(
            "post_training_bias needs 'predicted_label': the dataset column of the model's "
            "predictions (the local processor calls no model)"
        )
    label = config.get("label")
    if not isinstance(label, str) or not label:
        raise fail("'label' must name the label column")
    label_values = config.get("label_values_or_threshold")
    if not label_values:
        raise fail("'label_values_or_threshold' must list the favourable label value(s)")
    facets = []
    for i, facet in enumerate(config.get("facet") or []):
        name = facet.get("name_or_index") if isinstance(facet, dict) else None
        if not isinstance(name, str) or not name:
            raise fail(f"facet[{i}].name_or_index must name a column")
        values = facet.get("value_or_threshold")
        facets.append(FacetSpec(name, tuple(str(v) for v in values) if values else None))
    if not facets:
        raise fail("'facet' must list at least one facet column")
    group_variable = config.get("group_variable")
    if ("CDDL" in names or "CDDPL" in post_names) and not group_variable:
        raise fail("CDDL / CDDPL need 'group_variable' (a column name)")
    headers = config.get("headers")
    report = methods.get("report") or {}
    return AnalysisSpec(
        label=label,
        label_values=tuple(label_values),
        facets=tuple(facets),
        group_variable=group_variable or None,
        methods=tuple(names),
        headers=tuple(headers) if headers else None,
        report_name=report.get("name") if report else None,
        report_title=report.get("title", "Bias report") if report else "Bias report",
        post_methods=tuple(post_names),
        predicted_label=predicted_label if post_names else None,
    )


def _dataset_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".tmp")
    )
    if not files:
        raise ClarifyInputError(f"dataset {path}: no files found")
    return files


def read_dataset(path: Path, headers: tuple[str, ...] | None):
    """All CSV files under ``path`` as one string-typed frame, plus each row's (file, line)."""
    import pandas as pd

    frames, origins = [], []
    for file in _dataset_files(path):
        try:
            first = pd.read_csv(file, nrows=0, dtype=str).columns.tolist()
            has_header = headers is None or tuple(first) == headers
            if headers is not None and not has_header and len(first) != len(headers):
                raise ClarifyInputError(
                    f"{file}: header {first} does not match analysis_config headers {list(headers)}"
                )
            frame = pd.read_csv(
                file,
                dtype=str,
                header=0 if has_header else None,
                names=None if has_header or headers is None else list(headers),
            )
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise ClarifyInputError(f"{file}: not a readable CSV ({exc})") from None
        frames.append(frame)
        origins.append((file, len(frame), 2 if has_header else 1))
    if len({tuple(f.columns) for f in frames}) > 1:
        raise ClarifyInputError(f"dataset {path}: files have different columns")
    data = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return data, origins


def _where(row: int, origins) -> str:
    for file, n, first_line in origins:
        if row < n:
            return f"{file} line {row + first_line}"
        row -= n
    return f"row {row}"


def _require_column(data, column: str, role: str, origins) -> None:
    import numpy as np

    if column not in data.columns:
        raise ClarifyInputError(
            f"{role} column {column!r} is not in the dataset (columns: {list(data.columns)})"
        )
    missing = np.flatnonzero(data[column].isna().to_numpy())
    if missing.size:
        raise ClarifyInputError(
            f"{role} column {column!r} has {missing.size} empty value(s), first at "
            f"{_where(int(missing[0]), origins)}"
        )


def positive_label_index(series, label_values: tuple, *, must_occur: bool = True):
    """Rows whose label is one of the favourable values (compared as text, then as numbers).

    A favourable value absent from the data's labels is an input error; absent from a model's
    predictions (``must_occur=False``) it is a finding the metrics report, not an error."""
    import pandas as pd

    wanted = [str(v) for v in label_values]
    positive = series.isin(wanted).to_numpy()
    numeric = pd.to_numeric(series, errors="coerce")
    seen = set(series.unique())
    for v in label_values:
        if str(v) in seen:
            continue
        try:
            hits = (numeric == float(v)).to_numpy()
        except (TypeError, ValueError):
            hits = None
        if (hits is None or not hits.any()) and not must_occur:
            continue
        if hits is None or not hits.any():
            shown = sorted(seen)[:20]
            raise ClarifyInputError(
                f"label value {v!r} never occurs in label column {series.name!r} "
                f"(values seen: {shown})"
            )
        positive |= hits
    return positive


def flip_test_features(data, spec: AnalysisSpec, facet: str):
    """The flip test's feature matrix, as smclarify's ``bias_report`` hands FT its dataset:
    every column but the label, this facet and the predicted label. Numeric where each of
    those columns is numbers (a CSV read as text is parsed back); else the text cells, which
    FT reports as "non-numeric columns", as there."""
    import pandas as pd

    frame = data.drop(columns=list(dict.fromkeys([spec.label, facet, spec.predicted_label])))
    try:
        return frame.apply(pd.to_numeric).to_numpy(dtype=float)
    except (TypeError, ValueError):
        return frame.to_numpy(dtype=object)


def analyse(data, spec: AnalysisSpec, origins=()) -> tuple[dict, dict]:
    """(analysis.json content, per-facet-value counts for the report)."""
    import numpy as np
    import pandas as pd

    if spec.headers is not None:
        missing = [h for h in spec.headers if h not in data.columns]
        if missing:
            raise ClarifyInputError(f"analysis_config headers {missing} are not in the dataset")
    _require_column(data, spec.label, "label", origins)
    for facet in spec.facets:
        _require_column(data, facet.name, "facet", origins)
    group_codes = None
    predicted = None
    if spec.predicted_label:
        _require_column(data, spec.predicted_label, "predicted_label", origins)
        predicted = positive_label_index(
            data[spec.predicted_label], spec.label_values, must_occur=False
        )
    if spec.group_variable and ("CDDL" in spec.methods or "CDDPL" in spec.post_methods):
        _require_column(data, spec.group_variable, "group_variable", origins)
        group_codes, _ = pd.factorize(data[spec.group_variable])
    positive = positive_label_index(data[spec.label], spec.label_values)

    facets_out, post_out, stats = {}, {}, {}
    for facet in spec.facets:
        codes, uniques = pd.factorize(data[facet.name])
        if facet.values is None:
            if len(uniques) < 2:
                raise ClarifyInputError(
                    f"facet column {facet.name!r} has a single value {uniques[0]!r}: "
                    "there is no other group to compare it with"
                )
            groups = [([str(u)], codes == k) for k, u in enumerate(uniques)]
        else:
            unseen = [v for v in facet.values if v not in set(uniques)]
            if unseen:
                raise ClarifyInputError(
                    f"facet value(s) {unseen} never occur in facet column {facet.name!r}"
                )
            groups = [(list(facet.values), data[facet.name].isin(facet.values).to_numpy())]
        entries, post_entries, rows = [], [], []
        for values, sensitive in groups:
            value = ",".join(values)
            if spec.methods:
                metrics = compute_metrics(spec.methods, positive, sensitive, group_codes)
                entries.append({"value_or_threshold": value, "metrics": metrics})
            if predicted is not None:
                features = None
                if "FT" in spec.post_methods:
                    features = flip_test_features(data, spec, facet.name)
                post = compute_post_training_metrics(
                    spec.post_methods, positive, predicted, sensitive, group_codes, features
                )
                post_entries.append({"value_or_threshold": value, "metrics": post})
            n, n_pos = int(sensitive.sum()), int((sensitive & positive).sum())
            rows.append(
                {
                    "value_or_threshold": value,
                    "count": n,
                    "count_share": n / len(data),
                    "positive_count": n_pos,
                    "positive_share": n_pos / n,
                }
            )
        facets_out[facet.name] = entries
        post_out[facet.name] = post_entries
        stats[facet.name] = rows
    analysis: dict = {"version": "1.0"}
    for section, methods, found in (
        ("pre_training_bias_metrics", spec.methods, facets_out),
        ("post_training_bias_metrics", spec.post_methods, post_out),
    ):
        if methods:
            analysis[section] = {
                "label": spec.label,
                "facets": found,
                "label_value_or_threshold": ",".join(map(str, spec.label_values)),
            }
    summary = {
        "rows": len(data),
        "positive_share": float(np.mean(positive)) if len(data) else 0.0,
        "facets": stats,
    }
    return analysis, summary


def run(config_path: Path, dataset_path: Path, output_dir: Path, log=print) -> list[Path]:
    """Analyse and write ``analysis.json`` (+ report) into ``output_dir``; the files written."""
    config_path, dataset_path, output_dir = Path(config_path), Path(dataset_path), Path(output_dir)
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClarifyInputError(f"analysis config {config_path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ClarifyInputError(f"analysis config {config_path} is not valid JSON: {exc}") from None
    spec = parse_config(config, str(config_path))
    log(f"clarify: reading {dataset_path}")
    data, origins = read_dataset(dataset_path, spec.headers)
    log(f"clarify: {len(data)} rows; label {spec.label!r}; facets {[f.name for f in spec.facets]}")
    analysis, summary = analyse(data, spec, origins)

    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".clarify-", dir=output_dir))
    try:
        if spec.report_name:
            from include.pipeline.targets.local.clarify.report import write_report

            write_report(analysis, summary, staging, name=spec.report_name, title=spec.report_title)
        (staging / ANALYSIS_FILE).write_text(json.dumps(analysis, indent=2), encoding="utf-8")
        written = []
        names = sorted(p.name for p in staging.iterdir() if p.name != ANALYSIS_FILE)
        for name in [*names, ANALYSIS_FILE]:
            os.replace(staging / name, output_dir / name)
            written.append(output_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"clarify: wrote {', '.join(p.name for p in written)} to {output_dir}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analysis-config", required=True, type=Path)
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)
    return exit_code(
        run,
        args.analysis_config,
        args.dataset,
        args.output,
        errors=ClarifyInputError,
        label="clarify: error",
        code=1,
    )


if __name__ == "__main__":
    sys.exit(main())
