"""Data-quality monitoring job: Model Monitor's documents without Model Monitor.

SageMaker Model Monitor is closed to new AWS customers, so this processing-job script writes its
three documents itself, in its formats (statistics.json, constraints.json,
constraint_violations.json), on both targets. Two modes:

- ``baseline``: a baseline dataset -> ``statistics.json``, ``constraints.json`` (with
  ``monitoring_config``) and ``vocabulary.json`` (the words the out-of-vocabulary rate is measured
  against). The dataset is a split, or a dataset less the training splits (``--exclude``), as
  CSV or JSON lines with ``review_body``, scored with the model archive through
  ``inference.py`` as the endpoint would answer; or data-capture files.
- ``monitor``: the data-capture files of one window + the baseline -> ``statistics.json`` and
  ``constraint_violations.json``. Fewer rows than ``--min-records`` write the statistics and no
  violations (too little data to judge).

One row per review the endpoint saw; its features (:func:`review_features`) are the same in both
modes: ``review_length`` (characters), ``token_count`` (words), ``oov_rate`` (share of words not
in the baseline vocabulary), ``predicted_label`` (String: a category, so its mix is compared),
``probability``, and ``product_category`` when the request carries it (``{"features": [...],
"product_category": [...]}``).

Checks (the ``constraint_check_type`` values of Model Monitor): ``data_type_check``,
``completeness_check``, ``baseline_drift_check`` (numerical: the L-infinity distance between the
two CDFs; categorical: ``LInfinity`` between the two frequency tables; with ``comparison_method``
``Robust`` a distance must also exceed the two-sample Kolmogorov-Smirnov critical value
``c(a) * sqrt((n + m) / (n m))``, so a small window's sampling noise is not drift; ``a`` is 5%
divided by the number of features compared (Bonferroni): five features each tested at 5% would
flag about one in-distribution window in five, the corrected family flags at most one in twenty),
``missing_column_check``, ``extra_column_check``, ``categorical_values_check``.

Standard library only, except ``baseline`` over a split with a model (torch and transformers, via
inference.py; transformers is installed from ``requirements.txt`` where the image lacks it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

if __package__:  # imported as include.jobs.monitor (tests, the local target)
    from . import archives
    from .command import exit_code
else:  # run as a script in the container: sibling module
    import archives
    from command import exit_code

STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
VIOLATIONS_FILE = "constraint_violations.json"
VOCABULARY_FILE = "vocabulary.json"
CHECK_TYPES = (
    "data_type_check",
    "completeness_check",
    "baseline_drift_check",
    "missing_column_check",
    "extra_column_check",
    "categorical_values_check",
)
NUMERIC_TYPES = ("Integral", "Fractional")
FEATURES = ("review_length", "token_count", "oov_rate", "predicted_label", "probability")
CATEGORY_FEATURE = "product_category"
KLL_PARAMETERS = {"c": 0.64, "k": 2048.0}
BUCKETS = 10  # Model Monitor materialises distributions in 10 buckets
MAX_DOMAIN = 50  # string features with at most this many distinct values get a domain
MAX_VOCABULARY = 50_000
FAMILY_ALPHA = 0.05  # the drift check's false-alarm rate over all the features of a window
DEFAULT_MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 0.1,
    "domain_content_threshold": 0.1,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class MonitorInputError(ValueError):
    """Input the job cannot read; the message names the file, line and key."""


# ---------------------------------------------------------------- features


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def review_features(
    text: str,
    prediction: dict | None,
    vocabulary: set[str] | frozenset[str],
    category: str | None = None,
) -> dict:
    """The monitored features of one review and the endpoint's answer to it (None: missing)."""
    tokens = words(text)
    label = (prediction or {}).get("predicted_label")
    probability = (prediction or {}).get("probability")
    row = {
        "review_length": len(text),
        "token_count": len(tokens),
        "oov_rate": sum(t not in vocabulary for t in tokens) / len(tokens) if tokens else 0.0,
        "predicted_label": None if label is None else str(label),
        "probability": probability,
    }
    if category is not None:
        row[CATEGORY_FEATURE] = category
    return row


# ---------------------------------------------------------------- data capture


def _decode(part: dict, where: str) -> str:
    data = part.get("data", "")
    if str(part.get("encoding", "")).upper() == "BASE64":
        try:
            return base64.b64decode(data).decode("utf-8")
        except ValueError as exc:
            raise MonitorInputError(f"{where}: data is not base64 UTF-8: {exc}") from exc
    return data


def _as_list(value, n: int) -> list:
    if isinstance(value, list):
        return value
    return [value] * n


def _parse_objects(text: str) -> list:
    """A JSON document, or JSON lines (one object per line)."""
    try:
        value = json.loads(text)
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return value if isinstance(value, list) else [value]


def capture_reviews(record: dict, where: str) -> list[dict]:
    """``[{text, prediction, category, event_id, index}]`` of one capture record."""
    data = record.get("captureData")
    if not isinstance(data, dict) or "endpointInput" not in data:
        raise MonitorInputError(f"{where}: no captureData.endpointInput")
    try:
        requests = _parse_objects(_decode(data["endpointInput"], where))
    except ValueError as exc:
        raise MonitorInputError(f"{where}: endpointInput is not JSON: {exc}") from exc
    texts: list[str] = []
    categories: list = []
    for request in requests:
        if not isinstance(request, dict) or not isinstance(request.get("features"), list):
            raise MonitorInputError(f"{where}: endpointInput lacks a 'features' list")
        found = request["features"]
        texts += [str(t) for t in found]
        categories += _as_list(request.get(CATEGORY_FEATURE), len(found))
    predictions: list = [None] * len(texts)
    if data.get("endpointOutput"):
        try:
            answers = _parse_objects(_decode(data["endpointOutput"], where))
        except ValueError:
            answers = []  # an error page: the predictions count as missing
        answers = [a if isinstance(a, dict) else None for a in answers]
        if len(answers) == len(texts):
            predictions = answers
    meta = record.get("eventMetadata") or {}
    event_id = str(meta.get("inferenceId") or meta.get("eventId") or "")
    return [
        {
            "text": text,
            "prediction": predictions[i],
            "category": None if categories[i] is None else str(categories[i]),
            "event_id": event_id,
            "index": i,
            "inference_time": meta.get("inferenceTime"),
        }
        for i, text in enumerate(texts)
    ]


def capture_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*.jsonl") if p.is_file())


def read_capture(folder: Path) -> list[dict]:
    """Every review of every capture file under ``folder`` (the hour folders sort in time)."""
    reviews = []
    for path in capture_files(folder):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise MonitorInputError(f"{where}: not JSON: {exc}") from exc
            reviews += capture_reviews(record, where)
    return reviews


# ---------------------------------------------------------------- statistics


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def infer_type(values: Iterable) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "Unknown"
    if all(_is_number(v) and float(v).is_integer() and not isinstance(v, float) for v in present):
        return "Integral"
    if all(_is_number(v) for v in present):
        return "Fractional"
    return "String"


def kll_sketch(values: list[float], k: int = int(KLL_PARAMETERS["k"])) -> list[list[float]]:
    """A deterministic KLL-style sketch: level ``i`` items each stand for ``2**i`` values; a level
    over ``k`` items is compacted into the next (every other sorted item). Exact for n <= k."""
    levels = [sorted(values)]
    while len(levels[-1]) > k:
        full = levels[-1]
        levels[-1] = []
        levels.append(full[1::2])
    return [level for level in levels]


def sketch_sample(sketch: list[list[float]]) -> list[tuple[float, int]]:
    """``(value, weight)`` pairs of a sketch, sorted by value."""
    return sorted((v, 2**i) for i, level in enumerate(sketch) for v in level)


def _buckets(values: list[float], low: float, high: float) -> list[dict]:
    width = (high - low) / BUCKETS if high > low else 0.0
    counts = [0] * BUCKETS
    for v in values:
        index = min(int((v - low) / width), BUCKETS - 1) if width else 0
        counts[index] += 1
    return [
        {"lower_bound": low + i * width, "upper_bound": low + (i + 1) * width, "count": c}
        for i, c in enumerate(counts)
    ]


def feature_statistics(name: str, values: list, inferred_type: str | None = None) -> dict:
    """One ``features[]`` entry of statistics.json."""
    kind = inferred_type or infer_type(values)
    present = [v for v in values if v is not None]
    common = {"num_present": len(present), "num_missing": len(values) - len(present)}
    entry: dict = {"name": name, "inferred_type": kind}
    if kind in NUMERIC_TYPES:
        numbers = [float(v) for v in present if _is_number(v)]
        n = len(numbers)
        mean = sum(numbers) / n if n else 0.0
        entry["numerical_statistics"] = {
            "common": common,
            "mean": mean,
            "sum": sum(numbers),
            "std_dev": math.sqrt(sum((v - mean) ** 2 for v in numbers) / n) if n else 0.0,
            "min": min(numbers) if n else 0.0,
            "max": max(numbers) if n else 0.0,
            "distribution": {
                "kll": {
                    "buckets": _buckets(numbers, min(numbers), max(numbers)) if n else [],
                    "sketch": {"parameters": dict(KLL_PARAMETERS), "data": kll_sketch(numbers)},
                }
            },
        }
    else:
        counts = Counter(str(v) for v in present)
        entry["string_statistics"] = {
            "common": common,
            "distinct_count": len(counts),
            "distribution": {
                "categorical": {
                    "buckets": [{"value": v, "count": c} for v, c in sorted(counts.items())]
                }
            },
        }
    return entry


def statistics(rows: list[dict], types: dict[str, str] | None = None) -> dict:
    """statistics.json of ``rows`` (dicts of feature values); ``types`` fixes inferred types
    (the monitor uses the baseline's, so a column's statistics keep their kind)."""
    names = sorted({name for row in rows for name in row}, key=_feature_order)
    types = types or {}
    return {
        "version": 0.0,
        "dataset": {"item_count": len(rows)},
        "features": [
            feature_statistics(name, [row.get(name) for row in rows], types.get(name))
            for name in names
        ],
    }


def _feature_order(name: str) -> tuple:
    order = (*FEATURES, CATEGORY_FEATURE)
    return (order.index(name), name) if name in order else (len(order), name)


def constraints(stats: dict, monitoring_config: dict | None = None) -> dict:
    """constraints.json suggested from baseline statistics (as the baselining job suggests)."""
    features = []
    for feature in stats["features"]:
        kind = feature["inferred_type"]
        section = feature.get("numerical_statistics") or feature["string_statistics"]
        common = section["common"]
        total = common["num_present"] + common["num_missing"]
        entry: dict = {
            "name": feature["name"],
            "inferred_type": kind,
            "completeness": common["num_present"] / total if total else 0.0,
        }
        if kind in NUMERIC_TYPES:
            entry["num_constraints"] = {"is_non_negative": section["min"] >= 0}
        elif section["distinct_count"] <= MAX_DOMAIN:
            buckets = section["distribution"]["categorical"]["buckets"]
            entry["string_constraints"] = {"domains": [b["value"] for b in buckets]}
        features.append(entry)
    return {
        "version": 0.0,
        "features": features,
        "monitoring_config": json.loads(json.dumps(monitoring_config or DEFAULT_MONITORING_CONFIG)),
    }


# ---------------------------------------------------------------- checks


def _cdf_distance(a: list[tuple[float, int]], b: list[tuple[float, int]]) -> float:
    """max |F_a(x) - F_b(x)| over every x, for weighted samples sorted by value."""
    total_a = sum(w for _, w in a) or 1
    total_b = sum(w for _, w in b) or 1
    points = sorted({v for v, _ in a} | {v for v, _ in b})
    i = j = 0
    seen_a = seen_b = 0
    distance = 0.0
    for x in points:
        while i < len(a) and a[i][0] <= x:
            seen_a += a[i][1]
            i += 1
        while j < len(b) and b[j][0] <= x:
            seen_b += b[j][1]
            j += 1
        distance = max(distance, abs(seen_a / total_a - seen_b / total_b))
    return distance


def ks_critical(n: int, m: int, tests: int = 1, alpha: float = FAMILY_ALPHA) -> float:
    """The two-sample KS statistic's critical value for sample sizes ``n`` and ``m`` when
    ``tests`` features are judged at once at the family-wise level ``alpha`` (Bonferroni:
    each at ``alpha / tests``); ``c(a) = sqrt(-ln(a / 2) / 2)``, 1.358 at 5%."""
    if not n or not m:
        return math.inf
    factor = math.sqrt(-math.log(alpha / max(tests, 1) / 2) / 2)
    return factor * math.sqrt((n + m) / (n * m))


def _frequencies(feature: dict) -> dict[str, float]:
    buckets = feature["string_statistics"]["distribution"]["categorical"]["buckets"]
    total = sum(b["count"] for b in buckets) or 1
    return {b["value"]: b["count"] / total for b in buckets}


def _violation(name: str, check: str, description: str) -> dict:
    return {"feature_name": name, "constraint_check_type": check, "description": description}


def _drift(base: dict, current: dict, config: dict, tests: int = 1) -> dict | None:
    distribution = config.get("distribution_constraints") or {}
    if distribution.get("perform_comparison", "Enabled") != "Enabled":
        return None
    robust = distribution.get("comparison_method", "Robust") == "Robust"
    name = base["name"]
    if base["inferred_type"] in NUMERIC_TYPES:
        a = sketch_sample(base["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"])
        b = sketch_sample(current["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"])
        threshold = float(distribution.get("comparison_threshold", 0.1))
        n, m = sum(w for _, w in a), sum(w for _, w in b)
        distance = _cdf_distance(a, b)
    else:
        fa, fb = _frequencies(base), _frequencies(current)
        threshold = float(distribution.get("categorical_comparison_threshold", 0.1))
        n = base["string_statistics"]["common"]["num_present"]
        m = current["string_statistics"]["common"]["num_present"]
        distance = max((abs(fa.get(v, 0.0) - fb.get(v, 0.0)) for v in {*fa, *fb}), default=0.0)
    critical = ks_critical(n, m, tests)
    if not m or distance <= threshold or (robust and distance <= critical):
        return None
    return _violation(
        name,
        "baseline_drift_check",
        f"Baseline drift distance: {distance:.4f} exceeds threshold: {threshold}"
        + (
            f" (and the critical value {critical:.4f}: {FAMILY_ALPHA:.0%} over {tests} features)"
            if robust
            else ""
        ),
    )


def check(current_stats: dict, baseline_stats: dict, baseline_constraints: dict) -> list[dict]:
    """The violations of ``current_stats`` against the baseline (constraint_violations.json)."""
    config = baseline_constraints.get("monitoring_config") or DEFAULT_MONITORING_CONFIG
    if config.get("evaluate_constraints", "Enabled") != "Enabled":
        return []
    current = {f["name"]: f for f in current_stats["features"]}
    base_stats = {f["name"]: f for f in baseline_stats["features"]}
    violations = []
    tests = sum(name in current for name in base_stats)  # the features the drift check compares
    for constraint in baseline_constraints["features"]:
        name = constraint["name"]
        feature = current.get(name)
        if feature is None:
            violations.append(
                _violation(name, "missing_column_check", f"Column {name} is missing in the data")
            )
            continue
        section = feature.get("numerical_statistics") or feature["string_statistics"]
        common = section["common"]
        total = common["num_present"] + common["num_missing"]
        completeness = common["num_present"] / total if total else 0.0
        if completeness < float(constraint.get("completeness", 0.0)) - 1e-9:
            violations.append(
                _violation(
                    name,
                    "completeness_check",
                    f"Data completeness {completeness:.4f} is below the baseline's "
                    f"{constraint['completeness']:.4f}",
                )
            )
        if feature.get("mistyped", 0) and common["num_present"]:
            share = feature["mistyped"] / common["num_present"]
            if share > float(config.get("datatype_check_threshold", 0.1)):
                violations.append(
                    _violation(
                        name,
                        "data_type_check",
                        f"Data type match requirement is not met: {share:.2%} of the values "
                        f"are not {constraint['inferred_type']}",
                    )
                )
        domains = (constraint.get("string_constraints") or {}).get("domains")
        if domains is not None and common["num_present"]:
            unknown = sum(
                count for value, count in _counts(feature).items() if value not in set(domains)
            )
            share = unknown / common["num_present"]
            if share > float(config.get("domain_content_threshold", 0.1)):
                violations.append(
                    _violation(
                        name,
                        "categorical_values_check",
                        f"{share:.2%} of the values are outside the baseline domain {domains}",
                    )
                )
        base = base_stats.get(name)
        if base is not None and common["num_present"] and not feature.get("mistyped"):
            drift = _drift(base, feature, config, tests)
            if drift:
                violations.append(drift)
    known = {c["name"] for c in baseline_constraints["features"]}
    for name in current:
        if name not in known:
            violations.append(
                _violation(name, "extra_column_check", f"Column {name} is not in the baseline")
            )
    return violations


def _counts(feature: dict) -> dict[str, int]:
    buckets = feature["string_statistics"]["distribution"]["categorical"]["buckets"]
    return {b["value"]: b["count"] for b in buckets}


def typed_statistics(rows: list[dict], baseline_stats: dict) -> dict:
    """statistics.json of the window in the baseline's types; values that do not fit a numeric
    type are counted as ``mistyped`` (a key Model Monitor's schema allows as custom stats)."""
    types = {f["name"]: f["inferred_type"] for f in baseline_stats["features"]}
    stats = statistics(rows, types)
    for feature in stats["features"]:
        kind = types.get(feature["name"])
        if kind in NUMERIC_TYPES:
            values = [row.get(feature["name"]) for row in rows]
            bad = [
                v
                for v in values
                if v is not None
                and not (_is_number(v) and (kind == "Fractional" or float(v).is_integer()))
            ]
            if bad:
                feature["mistyped"] = len(bad)
    return stats


# ---------------------------------------------------------------- baseline data


def _fold(text: str) -> int:
    return hashlib.sha256(text.encode()).digest()[0] & 1


def vocabularies(texts: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    """Two vocabularies, one per half of ``texts`` (by a hash of the text)."""
    counts: tuple[Counter, Counter] = (Counter(), Counter())
    for text in texts:
        counts[_fold(text)].update(set(words(text)))
    return tuple(frozenset(w for w, _ in c.most_common(MAX_VOCABULARY)) for c in counts)  # type: ignore[return-value]


def baseline_rows(reviews: list[dict]) -> tuple[list[dict], list[str]]:
    """Feature rows of the baseline reviews and the vocabulary to store.

    The OOV rate of a review is measured against the vocabulary of the *other* half of the data,
    and the stored vocabulary is one half's: in the baseline as in traffic, a review is scored
    against words from other reviews, so the baseline rate is not biased towards zero.
    """
    texts = [r["text"] for r in reviews]
    halves = vocabularies(texts)
    rows = [
        review_features(r["text"], r["prediction"], halves[1 - _fold(r["text"])], r["category"])
        for r in reviews
    ]
    return rows, sorted(halves[0])


def _split_rows(folder: Path) -> list[tuple[Path, int, dict]]:
    """``(file, row number, row)`` of every CSV (with a header) or JSON lines file under
    ``folder``; ``review_body`` required and not empty."""
    import csv

    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix in (".csv", ".jsonl"))
    if not paths:
        raise MonitorInputError(f"{folder}: no .csv or .jsonl files")
    found = []
    for path in paths:
        if path.suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh)
                if "review_body" not in (reader.fieldnames or []):
                    raise MonitorInputError(
                        f"{path}: no review_body column; has {reader.fieldnames}"
                    )
                rows = list(reader)
        else:
            rows = []
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError as exc:
                        raise MonitorInputError(f"{path} line {number}: not JSON: {exc}") from exc
        for number, row in enumerate(rows, start=2):
            text = row.get("review_body")
            if not isinstance(text, str) or not text.strip():
                raise MonitorInputError(f"{path} row {number}: review_body is empty")
            found.append((path, number, row))
    return found


def _by_hash(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: hashlib.sha256(r["review_body"].encode()).hexdigest())


def held_out_sample(rows: list[dict], exclude: set[str], max_rows: int) -> list[dict]:
    """At most ``max_rows`` of ``rows`` whose (stripped) text is not in ``exclude`` (the rows
    the model trained on), in the sentiment mix of all ``rows`` when they have one.

    The training splits are balanced by sentiment, so what is left of a dataset once they are
    taken out is skewed the other way; traffic comes in the dataset's own mix, so the baseline
    draws each class's share of that mix from the held-out rows of the class."""
    pool = [r for r in rows if r["review_body"].strip() not in exclude]
    if not exclude or not all(r.get("sentiment") not in (None, "") for r in rows):
        return _by_hash(pool)[:max_rows]
    mix = Counter(str(r["sentiment"]) for r in rows)
    classes: dict[str, list[dict]] = {label: [] for label in mix}
    for row in _by_hash(pool):
        classes[str(row["sentiment"])].append(row)
    total = len(rows)
    size = min([max_rows] + [int(len(classes[c]) * total / n) for c, n in mix.items()])
    picked = [row for c, n in mix.items() for row in classes[c][: round(size * n / total)]]
    return _by_hash(picked)


def read_split(
    folder: Path, max_rows: int, with_category: bool, exclude: Path | None = None
) -> list[dict]:
    """Reviews of a split folder (CSV with a header, or JSON lines), ``review_body`` required;
    at most ``max_rows``, chosen by a hash of the text (deterministic, order-independent).
    With ``exclude`` (a folder of the training splits), only reviews the model never trained
    on, in the dataset's sentiment mix (:func:`held_out_sample`)."""
    rows = [row for _, _, row in _split_rows(folder)]
    # the prepare job strips the text it trains on: compare stripped texts
    skip = {row["review_body"].strip() for _, _, row in _split_rows(exclude)} if exclude else set()
    chosen = held_out_sample(rows, skip, max_rows)
    if not chosen:
        raise MonitorInputError(f"{folder}: no reviews outside the training splits in {exclude}")
    return [
        {
            "text": row["review_body"],
            "prediction": None,
            "category": row.get(CATEGORY_FEATURE) if with_category else None,
        }
        for row in chosen
    ]


def _sibling(name: str):
    """A sibling job module, imported only when needed: ``data`` needs numpy, ``inference``
    torch and transformers, and the monitor mode runs on the standard library alone."""
    return importlib.import_module(f"{__package__}.{name}" if __package__ else name)


def score(reviews: list[dict], model_dir: Path) -> None:
    """Fill each review's prediction with the model's answer (inference.py, as served; one
    call, which scores length-sorted chunks). The processing image ships torch but not
    transformers (the tokenizer), so this installs ``requirements.txt`` first where it lacks it,
    as evaluate.py does."""
    _sibling("data").ensure_requirements("transformers")
    inference = _sibling("inference")
    model = inference.model_fn(str(model_dir))
    answers = inference.predict_fn([r["text"] for r in reviews], model)
    for review, answer in zip(reviews, answers, strict=True):
        review["prediction"] = answer


def _model_dir(path: Path) -> Path:
    """An extracted model folder, or the folder holding ``model.tar.gz`` (extracted here)."""
    archive = path / "model.tar.gz" if path.is_dir() else path
    if archive.is_file():
        target = archive.parent / "extracted-model"
        if not target.exists():
            archives.extract(archive, target)
        return target
    return path


# ---------------------------------------------------------------- modes


def _write(folder: Path, name: str, doc: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(doc, indent=2))


def run_baseline(args: argparse.Namespace, log=print) -> dict:
    if args.dataset_format == "capture":
        reviews = read_capture(Path(args.dataset))
        if not args.with_category:
            for review in reviews:
                review["category"] = None
    else:
        exclude = Path(args.exclude) if args.exclude else None
        reviews = read_split(Path(args.dataset), args.max_rows, args.with_category, exclude)
        if not args.model:
            raise MonitorInputError("--model is required to baseline a split")
        score(reviews, _model_dir(Path(args.model)))
    if not reviews:
        raise MonitorInputError(f"{args.dataset}: no reviews to baseline")
    rows, vocabulary = baseline_rows(reviews)
    stats = statistics(rows)
    config = json.loads(args.monitoring_config) if args.monitoring_config else None
    out = Path(args.output)
    _write(out, STATISTICS_FILE, stats)
    _write(out, CONSTRAINTS_FILE, constraints(stats, config))
    _write(out, VOCABULARY_FILE, {"words": vocabulary})
    summary = {"mode": "baseline", "item_count": len(rows), "vocabulary": len(vocabulary)}
    log("monitor summary: " + json.dumps(summary, sort_keys=True))
    return summary


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MonitorInputError(f"{path}: missing (run the baseline job first)") from None
    except ValueError as exc:
        raise MonitorInputError(f"{path}: not JSON: {exc}") from exc


def run_monitor(args: argparse.Namespace, log=print) -> dict:
    baseline = Path(args.baseline)
    base_stats = _read_json(baseline / STATISTICS_FILE)
    base_constraints = _read_json(baseline / CONSTRAINTS_FILE)
    vocabulary = frozenset(_read_json(baseline / VOCABULARY_FILE).get("words", []))
    with_category = any(f["name"] == CATEGORY_FEATURE for f in base_stats["features"])
    rows = [
        review_features(
            r["text"], r["prediction"], vocabulary, r["category"] if with_category else None
        )
        | ({CATEGORY_FEATURE: r["category"]} if not with_category and r["category"] else {})
        for r in read_capture(Path(args.dataset))
    ]
    stats = typed_statistics(rows, base_stats)
    enough = len(rows) >= args.min_records
    violations = check(stats, base_stats, base_constraints) if enough else []
    out = Path(args.output)
    _write(out, STATISTICS_FILE, stats)
    _write(out, VIOLATIONS_FILE, {"violations": violations})
    summary = {
        "mode": "monitor",
        "item_count": len(rows),
        "min_records": args.min_records,
        "evaluated": enough,
        "violations": len(violations),
    }
    if not enough:
        log(f"only {len(rows)} captured reviews (< {args.min_records}): constraints not checked")
    log("monitor summary: " + json.dumps(summary, sort_keys=True))
    return summary


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", required=True, choices=("baseline", "monitor"))
    parser.add_argument("--dataset", required=True, help="split or data-capture folder")
    parser.add_argument("--output", required=True)
    parser.add_argument("--dataset-format", choices=("split", "capture"), default="capture")
    parser.add_argument("--model", default="", help="baseline of a split: the model archive")
    parser.add_argument("--baseline", default="", help="monitor: the baseline folder")
    parser.add_argument("--max-rows", type=int, default=1000, help="baseline: rows scored")
    parser.add_argument(
        "--exclude", default="", help="baseline of a split: the training splits' folder"
    )
    parser.add_argument("--min-records", type=int, default=1)
    parser.add_argument("--with-category", type=_bool, default=False)
    parser.add_argument("--monitoring-config", default="", help="JSON monitoring_config")
    args = parser.parse_args(argv)
    if args.mode == "monitor" and not args.baseline:
        parser.error("--baseline is required with --mode monitor")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = run_baseline if args.mode == "baseline" else run_monitor
    return exit_code(run, args, errors=MonitorInputError, label="monitor", code=2)


if __name__ == "__main__":
    sys.exit(main())
