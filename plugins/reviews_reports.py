"""Airflow 3 UI plugin: the "Reviews pipeline" reports, served by the API server.

A FastAPI app mounted at ``/reviews`` renders plain server-side HTML (no JavaScript framework,
no CDN: the API server may have no internet) from what the runs wrote to the lake, through
:mod:`include.pipeline.reports`. A menu entry under Browse embeds it in the Airflow UI.

Routes: ``/`` runs index, ``/runs/{run_id}`` one run, ``/runs/{run_id}/charts/{name}.png``
server-side charts, ``/artifact?uri=s3://...`` artifacts under the pipeline bucket only,
``/api/runs`` the index as JSON. A section whose data is missing reads "not yet"; a section
that fails to read says so, and the page still renders. Every route needs the API server's
logged-in user (:mod:`include.pipeline.ui_auth`); artifact URIs are checked as resolved
(:func:`include.pipeline.reports.check_artifact_uri`).
"""

from __future__ import annotations

import html
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

try:
    import include.pipeline.reports  # noqa: F401
except ImportError:  # the API server puts plugins/ on sys.path, not the project root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from include.pipeline import reports, ui_auth
from include.pipeline.documents import bias as bias_doc
from include.pipeline.documents import summary as summary_doc

log = logging.getLogger(__name__)

URL_PREFIX = "/reviews"
TITLE = "Reviews pipeline"

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2733;
background:#f5f7fa}
header{background:#017cee;color:#fff;padding:.7rem 1.5rem}header a{color:#fff;text-decoration:none}
main{padding:1rem 1.5rem;max-width:1200px}
h1{font-size:1.35rem;margin:.2rem 0}h2{font-size:1.1rem;margin:0 0 .6rem}
h3{font-size:.95rem;margin:.8rem 0 .4rem}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:.8rem 1rem;
margin:0 0 1rem}
table{border-collapse:collapse;font-size:.88rem;margin:.3rem 0}
th,td{border-bottom:1px solid #e6eaef;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f0f3f7;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.kv th{width:14rem}.muted{color:#6b7785}.notyet{color:#8a6d00;font-style:italic}
.error{color:#b00020}.ok{color:#127a3a}.bad{color:#b00020;font-weight:600}
.outcome{padding:.6rem .9rem;border-radius:4px;border:1px solid #d0d7de;background:#f6f8fa}
.outcome.skipped{border-color:#d4a72c;background:#fff8c5}
.charts{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}.charts figure{margin:0}
.charts img{max-width:100%;border:1px solid #e6eaef}figcaption{font-size:.8rem;color:#6b7785}
code{font-size:.82rem;word-break:break-all}tr.this td{background:#eef6ff}
"""

# Sets data-images on <body> once every image has loaded: what the browser test checks.
IMAGES_CHECK = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.setAttribute("data-images", broken.length ? "broken" : "loaded");
  document.body.setAttribute("data-image-count", String(imgs.length));
});
"""

NOT_YET = '<p class="notyet">not yet</p>'


# --- small HTML helpers: every value passes through esc() ---------------------------------


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any) -> str:
    """Numbers to 4 significant decimals, missing values as a dash, all escaped."""
    if value is None or value == "":
        return '<span class="muted">—</span>'
    if isinstance(value, float):
        return esc(f"{value:.4f}")
    if isinstance(value, dict | list):
        return f"<code>{esc(json.dumps(value, sort_keys=True, default=str))}</code>"
    return esc(value)


def with_interval(value: Any, interval: Any) -> str:
    """An accuracy with its 95% Wilson interval: ``0.7300 [0.6771, 0.7771]``."""
    if not isinstance(interval, list | tuple) or len(interval) != 2:
        return fmt(value)
    return f'{fmt(value)} <span class="muted">[{fmt(interval[0])}, {fmt(interval[1])}]</span>'


def table(headers: list[str], rows: list[list[Any]], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = "".join(
            f'<td class="num">{fmt(c)}</td>'
            if isinstance(c, int | float) or c is None
            else f"<td>{c}</td>"
            for c in row
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv(pairs: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{fmt(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def fields(doc: dict, keys: dict[str, str]) -> str:
    """:func:`kv` of ``doc``'s values, ``keys`` mapping each row's label to its key."""
    return kv([(label, doc.get(key)) for label, key in keys.items()])


def page(title: str, body: str, base: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f'<link rel=icon href="data:,"><title>{esc(title)}</title><style>{CSS}</style></head>'
        f'<body><header><a href="{esc(base)}/"><b>{esc(TITLE)}</b></a></header>'
        f"<main>{body}</main><script>{IMAGES_CHECK}</script></body></html>"
    )


def base_of(request: Request) -> str:
    """The mount path (``/reviews`` under Airflow, plus any proxy prefix)."""
    return request.scope.get("root_path", "").rstrip("/")


def artifact_url(base: str, uri: str) -> str:
    return f"{base}/artifact?uri={quote(uri, safe='')}"


def artifact_link(base: str, uri: Any, label: str | None = None) -> str:
    if not isinstance(uri, str) or not uri:
        return '<span class="muted">—</span>'
    return f'<a href="{esc(artifact_url(base, uri))}">{esc(label or uri)}</a>'


def figure(src: str, caption: str) -> str:
    return (
        f'<figure><img src="{esc(src)}" alt="{esc(caption)}" loading="eager">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def section(title: str, render: Callable[[], str | None], anchor: str) -> str:
    """One report section; missing data reads "not yet", a read error is shown, never raised."""
    try:
        inner = render()
    except Exception as exc:
        log.exception("Reviews report section %r failed", title)
        inner = f'<p class="error">unavailable: {esc(type(exc).__name__)}: {esc(exc)}</p>'
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{inner or NOT_YET}</section>'


# --- run page sections ------------------------------------------------------------------------


def run_overview(s: dict) -> str:
    return fields(
        s,
        {
            "Run id": "run_id",
            "DAG": "dag_id",
            "Target": "target",
            "State": "state",
            "Started": "started_at",
            "Finished": "finished_at",
        },
    )


def outcome_banner(s: dict) -> str:
    """What the run deployed, first on the page: the endpoint and candidate, or that nothing
    was deployed and why."""
    outcome = reports.deployment_outcome(s)
    if outcome["deployed"]:
        return (
            f'<p class="outcome" id="outcome">Deployed <b>{esc(outcome["candidate"])}</b> to '
            f"endpoint <b>{esc(outcome['endpoint'])}</b> in this run.</p>"
        )
    return (
        '<p class="outcome skipped" id="outcome"><b>Nothing was deployed in this run</b>: '
        f"{esc(outcome['reason'])}</p>"
    )


def local_notice(s: dict) -> str:
    """A local run's names (ARNs, SageMaker, Glue, Athena) are stand-ins: said once, on top."""
    notice = summary_doc.NAMES_NOTICE.get(str(s.get("target")))
    if not notice:
        return ""
    return f'<p class="muted" id="local-notice">{esc(notice[0].upper() + notice[1:])}.</p>'


def data_section(s: dict, base: str, run_path: str) -> str | None:
    ing = s.get("ingestion")
    if not isinstance(ing, dict):
        return None
    charts = [
        figure(f"{run_path}/charts/{name}.png", f"Reviews by {name}")
        for name in ("sentiment", "category")
        if isinstance(ing.get(f"by_{name}"), dict) and ing[f"by_{name}"]
    ]
    return fields(
        ing,
        {
            "Trained on": "training_data",
            "Reviews from this file": "reviews_this_file",
            "Reviews in total": "reviews_total",
            "Files": "files",
            "Rows": "rows",
            "Quarantined (this file)": "quarantined",
            "Raw": "raw_uri",
            "Transformed": "transformed_uri",
            "Quarantine": "quarantine_uri",
        },
    ) + (f'<div class="charts">{"".join(charts)}</div>' if charts else "")


def violations_table(violations: Any) -> str:
    if not isinstance(violations, list):
        return NOT_YET
    if not violations:
        return '<p class="ok">No threshold violations.</p>'
    rows = [
        [
            esc(v.get("facet")),
            esc(v.get("value_or_threshold")),
            esc(v.get("metric")),
            v.get("value") if v.get("value") is not None else esc(v.get("error", "not computed")),
            v.get("threshold"),
        ]
        for v in violations
    ]
    return '<p class="bad">Threshold violations:</p>' + table(
        ["Facet", "Facet value", "Metric", "Value of metric", "Threshold"], rows
    )


def bias_section(s: dict, base: str, run_path: str) -> str | None:
    bias = s.get("bias")
    if not isinstance(bias, dict):
        return None
    parts = [
        fields(bias, {"Mode": "mode"}),
        f"<p>Report: {artifact_link(base, bias.get('report_uri'))} · "
        f"analysis: {artifact_link(base, bias.get('analysis_uri'))}</p>",
        violations_table(bias_doc.violations_of(bias)),
        *(f'<p class="muted">{esc(note)}</p>' for note in bias.get("notes") or []),
    ]
    if reports.bias_metrics(s):
        parts.append(
            f'<div class="charts">{figure(f"{run_path}/charts/bias.png", "Bias metrics")}</div>'
        )
    balanced = bias.get("balanced")
    if isinstance(balanced, dict):
        parts.append(
            "<h3>After balancing</h3>"
            f"<p>Report: {artifact_link(base, balanced.get('report_uri'))}</p>"
            + violations_table(bias_doc.violations_of(balanced))
        )
    return "".join(parts)


def training_section(s: dict, base: str, run_path: str) -> str | None:
    tr = s.get("training")
    if not isinstance(tr, dict):
        return None
    metrics = tr.get("metrics") if isinstance(tr.get("metrics"), dict) else {}
    parts = [
        fields(tr, {"Training job": "job_name", "Model": "model_uri"}),
        "<h3>Final metrics</h3>" + kv(sorted(metrics.items())) if metrics else "",
    ]
    rules = [r for r in tr.get("rule_statuses") or [] if isinstance(r, dict)]
    if rules:
        rows = []
        for r in rules:
            status = r.get("RuleEvaluationStatus")
            cls = "bad" if status == "IssuesFound" else "ok" if status == "NoIssuesFound" else ""
            rows.append(
                [
                    esc(r.get("RuleConfigurationName")),
                    f'<span class="{cls}">{esc(status)}</span>',
                    esc(r.get("StatusDetails") or ""),
                ]
            )
        parts.append("<h3>Debugger rules</h3>" + table(["Rule", "Status", "What it saw"], rows))
    tuning = s.get("tuning")
    if isinstance(tuning, dict) and isinstance(tuning.get("recipe"), dict):
        rows = [
            [
                esc(kind) + (" <b>(taken)</b>" if tuning.get("chosen") == kind else ""),
                esc((tuning.get(kind) or {}).get("job_name") or ""),
                (tuning.get(kind) or {}).get("validation_accuracy"),
                fmt((tuning.get(kind) or {}).get("hyperparameters")),
            ]
            for kind in ("recipe", "tuned")
        ]
        parts.append(
            "<h3>Hyperparameters: recipe or tuned</h3>"
            + table(["Set", "Job (trials' budget)", "Validation accuracy", "Values"], rows)
        )
    if tr.get("profiler_report_uri"):
        link = artifact_link(base, tr["profiler_report_uri"], "profiler report")
        parts.append(f"<p>Profiler: {link}</p>")
    if reports.training_series(s):
        parts.append(
            f'<div class="charts">{figure(f"{run_path}/charts/curves.png", "Training curves")}</div>'
        )
    else:
        parts.append('<p class="notyet">training curves: not yet</p>')
    return "".join(parts)


def evaluation_section(s: dict, base: str, run_path: str) -> str | None:
    ev = s.get("evaluation")
    if not isinstance(ev, dict):
        return None
    accuracy = with_interval(ev.get("accuracy"), ev.get("accuracy_interval"))
    parts = [
        f'<table class="kv"><tbody><tr><th>Accuracy (95% Wilson interval)</th><td>{accuracy}'
        f"</td></tr><tr><th>Macro F1</th><td>{fmt(ev.get('macro_f1'))}</td></tr></tbody></table>",
        f"<p>evaluation.json: {artifact_link(base, ev.get('uri'))}</p>",
    ]
    report = reports.evaluation_report(s)
    if report is None:
        parts.append('<p class="notyet">evaluation.json: not yet</p>')
        return "".join(parts)
    parts.append(kv([("Test reviews", report.n_samples)]))
    rows = [
        [esc(label), c.precision, c.recall, c.f1, c.support]
        for label, c in report.per_class.items()
    ]
    parts.append(
        "<h3>Per class</h3>" + table(["Class", "Precision", "Recall", "F1", "Support"], rows)
    )
    if report.per_category:
        rows = [
            [esc(category), c.n, c.correct, with_interval(c.accuracy, v["confidence_interval"])]
            for category, c in report.per_category.items()
            for v in [c.to_dict()]
        ]
        parts.append(
            "<h3>Accuracy per product category</h3>"
            + table(["Category", "Rows", "Correct", "Accuracy (95% Wilson interval)"], rows)
        )
    cm = report.confusion_matrix
    parts.append(
        '<h3>Confusion matrix</h3><p class="muted">rows: true label, columns: predicted</p>'
        + table(
            ["true \\ predicted", *cm.labels],
            [[esc(label), *row] for label, row in zip(cm.labels, cm.matrix, strict=True)],
        )
    )
    if ev.get("confusion_matrix_uri"):
        img = figure(artifact_url(base, ev["confusion_matrix_uri"]), "Confusion matrix")
        parts.append(f'<div class="charts">{img}</div>')
    return "".join(parts)


def leaderboard_section(s: dict, base: str) -> str | None:
    board = reports.leaderboard(s)
    if board is None:
        return None
    rows = [
        [
            esc(r["candidate"]) + (" <b>(deployed)</b>" if r["deployed"] else ""),
            with_interval(r["accuracy"], r["accuracy_interval"]),
            r["n_samples"],
            r["macro_f1"],
            r["training_time_s"],
            r["model_size_mb"],
            r["inference_ms_per_review"],
            artifact_link(base, r["evaluation_uri"], "evaluation.json")
            + " "
            + artifact_link(base, r["bias_analysis_uri"], "post-training bias"),
        ]
        for r in board["rows"]
    ]
    rows += [
        [esc(f["candidate"]) + " <b>(failed)</b>", esc(f["reason"]), "", "", "", "", ""]
        for f in board["failed"]
    ]
    return f"<p>Best by {esc(board['metric'])}: <b>{esc(board['best'])}</b></p>" + table(
        [
            "Candidate",
            "Accuracy (95% interval)",
            "Test rows",
            "Macro F1",
            "Training s",
            "Model MB",
            "ms / review",
            "Reports",
        ],
        rows,
    )


def champion_section(s: dict) -> str | None:
    """The serving model (champion) and this run's best (challenger) on the same test rows, the
    gate's decision, and whether the champion may have trained on those rows."""
    entry = s.get("champion")
    if not isinstance(entry, dict) or not isinstance(entry.get("challenger"), dict):
        return None
    rows = []
    for role, model in (("Challenger", entry["challenger"]), ("Champion", entry.get("champion"))):
        if not isinstance(model, dict):
            continue
        name = model.get("candidate") or model.get("model_name") or ""
        rows.append(
            [
                f"{role}: {esc(name)}",
                with_interval(model.get("accuracy"), model.get("accuracy_interval")),
                model.get("n_samples"),
            ]
        )
    decision = entry.get("decision") or {}
    notes = [
        esc(entry.get("note") or ""),
        esc((entry.get("split") or {}).get("note") or ""),
    ]
    if entry.get("same_rows") is False:
        notes.append("The two were not scored on the same test rows.")
    verdict = "registered" if decision.get("register") else "not registered"
    return (
        table(["Model", "Accuracy (95% interval)", "Test rows"], rows)
        + f"<p>Decision: <b>{verdict}</b>: {esc(decision.get('why', ''))}</p>"
        + "".join(f'<p class="muted">{n}</p>' for n in notes if n)
    )


def registry_section(s: dict, base: str) -> str | None:
    reg = s.get("registration")
    if not isinstance(reg, dict):
        return None
    if reg.get("skipped"):
        return f'<p class="notyet">registration skipped: {esc(reg["skipped"])}</p>'
    live = {**reg, "status": reports.registration_status(s)}
    parts = [fields(live, {"This run's version": "model_package_arn", "Status": "status"})]
    group = reports.registry_versions(s)
    if group is None or not group["versions"]:
        return parts[0] + '<p class="notyet">registry versions: not yet</p>'
    rows, classes = [], []
    for v in group["versions"]:
        metrics = "<br>".join(
            f"{esc(name)}: {artifact_link(base, uri, 'report')}"
            for name, uri in v["metrics"].items()
        )
        lineage = "<br>".join(f"{esc(k)} = {esc(val)}" for k, val in sorted(v["lineage"].items()))
        rows.append(
            [
                v["version"],
                esc(v["status"]),
                esc(v["decision"]) or "—",
                esc(v["created"]),
                metrics or "—",
                lineage or "—",
            ]
        )
        classes.append("this" if v["this_run"] else "")
    parts.append(f"<h3>Group {esc(group['group'])}</h3>")
    parts.append(
        table(["Version", "Status", "Decision", "Created", "Metrics", "Lineage"], rows, classes)
    )
    return "".join(parts)


def endpoints_section(s: dict, base: str) -> str | None:
    dep = s.get("deployment")
    parts = []
    if isinstance(dep, dict):
        parts.append(
            fields(
                dep, {"Endpoint": "endpoint_name", "URL": "endpoint_url", "Strategy": "strategy"}
            )
        )
        variants = [v for v in dep.get("variants") or [] if isinstance(v, dict)]
        if variants:
            parts.append(
                "<h3>Deployed variants</h3>"
                + table(
                    ["Variant", "Weight", "Instances", "Model"],
                    [
                        [
                            esc(v.get("VariantName")),
                            v.get("CurrentWeight", v.get("InitialVariantWeight")),
                            v.get("CurrentInstanceCount", v.get("InitialInstanceCount")),
                            esc(v.get("ModelName")),
                        ]
                        for v in variants
                    ],
                )
            )
    live = reports.endpoints(s)
    if live:
        rows, classes = [], []
        for ep in live:
            variants = "<br>".join(
                f"{esc(v['name'])} ({esc(v['kind'])}): weight {fmt(v['current_weight'])}"
                + (
                    f" → {fmt(v['desired_weight'])}"
                    if v["desired_weight"] not in (None, v["current_weight"])
                    else ""
                )
                for v in ep["variants"]
            )
            traffic = "<br>".join(f"{esc(k)}: {esc(n)}" for k, n in ep["traffic"].items())
            status = esc(ep["status"]) + (
                f'<br><span class="error">{esc(ep["failure_reason"])}</span>'
                if ep["failure_reason"]
                else ""
            )
            rows.append(
                [esc(ep["name"]), status, variants or "—", traffic or "—", esc(ep["updated"])]
            )
            classes.append("this" if ep["this_run"] else "")
        parts.append(
            "<h3>Endpoints</h3>"
            + table(["Endpoint", "Status", "Variants", "Recent traffic", "Updated"], rows, classes)
        )
    return "".join(parts) or None


def monitoring_section(s: dict, base: str) -> str | None:
    """Per endpoint (the run's first, then every other monitored one): the latest monitoring
    windows, their violations, a drift chart per feature (baseline vs the windows) and the
    human-measured model quality."""
    from include.pipeline import settings as pipeline_settings
    from include.pipeline import storage
    from include.pipeline.documents import monitoring as monitoring_doc

    name = (s.get("deployment") or {}).get("endpoint_name") if isinstance(s, dict) else None
    if not name:
        return None
    settings = pipeline_settings.load()
    store = storage.for_settings(settings)
    others = [e for e in monitoring_doc.monitored_endpoints(store, settings) if e != name]
    return "".join(_endpoint_monitoring(e, base, settings, store) for e in [name, *others])


def notifications_section(read: Callable[[], list[dict]]) -> str:
    """What the pipeline told people (PIPELINE_NOTIFY=lake), newest first; nothing at all
    when it told nobody anything (a log that cannot be read says so)."""
    try:
        found = read()
    except Exception:
        found = None  # section() shows the error
    if found == []:
        return ""
    return section("Notifications", lambda: notifications_table(read()), "notifications")


def notifications_table(found: list[dict]) -> str | None:
    if not found:
        return None
    rows = [
        [esc(n.get("time", "")), esc(n["kind"]), esc(n["subject"]), esc(n.get("message", ""))]
        for n in found
    ]
    classes = ["error" if n["kind"] in ("run_failed", "rollback") else "" for n in found]
    return table(["Time", "Kind", "Subject", "Message"], rows, classes)


def _endpoint_monitoring(name: str, base: str, settings, store) -> str:
    from include.pipeline.documents import monitoring as monitoring_doc

    found = monitoring_doc.overview(store, settings, name)
    parts = []
    if found["windows"]:
        features = sorted({f for w in found["windows"] for f in w["means"]})
        rows = [
            [esc(w["window"]), w["item_count"], len(w["violations"]), esc(", ".join(w["drifted"]))]
            + [fmt(w["means"].get(f)) for f in features]
            for w in found["windows"]
        ]
        classes = ["error" if w["violations"] else "" for w in found["windows"]]
        headers = ["Window", "Records", "Violations", "Features"] + [f"mean {f}" for f in features]
        parts.append(f"<h3>Monitoring windows of {esc(name)}</h3>" + table(headers, rows, classes))
        charts = [
            figure(
                f"{base}/endpoints/{quote(name, safe='')}/drift/{quote(f, safe='')}.png",
                f"{f}: baseline vs the latest windows",
            )
            for f in reports.drift_features(name, settings)
        ]
        if charts:
            parts.append(f'<div class="charts">{"".join(charts)}</div>')
        latest = next((w for w in found["windows"] if w["violations"]), None)
        if latest:
            parts.append(f"<h3>Violations of {esc(latest['window'])}</h3>")
            parts.append(
                table(
                    ["Feature", "Check", "Description"],
                    [
                        [
                            esc(v["feature_name"]),
                            esc(v["constraint_check_type"]),
                            esc(v["description"]),
                        ]
                        for v in latest["violations"]
                    ],
                )
            )
    if found["quality"]:
        parts.append(
            "<h3>Human review</h3>"
            + table(
                ["Model", "Labels", "Sampled", "Human-measured accuracy", "Disagreement rate"],
                [
                    [
                        esc(m),
                        q["labels"],
                        q["sampled"],
                        fmt(q["accuracy"]),
                        fmt(q["disagreement_rate"]),
                    ]
                    for m, q in found["quality"].items()
                ],
            )
        )
    return "".join(parts) or (
        f"<p>{esc(name)}: no monitoring windows and no human labels so far (the "
        "model_monitor and human_review DAGs write them).</p>"
    )


# --- the app ----------------------------------------------------------------------------------


def create_app() -> FastAPI:
    # Every route behind the API server's own login (see include/pipeline/ui_auth.py).
    app = FastAPI(
        title=TITLE,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(ui_auth.require_reader)],
    )

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        base = base_of(request)
        try:
            runs = [reports.run_row(s) for s in reports.list_runs()]  # status read live
        except Exception as exc:
            log.exception("Listing runs failed")
            body = f'<h1>Runs</h1><p class="error">unavailable: {esc(exc)}</p>'
            return page(TITLE, body, base)
        told = notifications_section(reports.notifications)
        if not runs:
            none = NOT_YET.replace("not yet", "no runs yet")
            return page(TITLE, "<h1>Runs</h1>" + none + told, base)
        rows = [
            [
                f'<a href="{esc(base)}/runs/{esc(quote(str(r["run_id"]), safe=""))}">'
                f"{esc(r['run_id'])}</a>",
                esc(r["state"]),
                esc(r["started_at"]),
                r["rows"],
                r["bias_violations"],
                r["validation_accuracy"],
                r["accuracy"],
                r["macro_f1"],
                esc(r["registration"]),
                esc(r["endpoint"]) if r["deployed"] else "not deployed",
            ]
            for r in runs
        ]
        headers = ["Run", "State", "Started", "Rows", "Bias violations", "Val. accuracy"]
        headers += ["Test accuracy", "Macro F1", "Registration", "Deployed to"]
        return page(TITLE, "<h1>Runs</h1>" + table(headers, rows) + told, base)

    @app.get("/api/runs")
    def api_runs() -> JSONResponse:
        return JSONResponse([reports.run_row(s) for s in reports.list_runs()])

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(run_id: str, request: Request) -> HTMLResponse:
        base = base_of(request)
        summary = reports.load_summary(run_id)
        if summary is None:
            body = f'<h1>Run {esc(run_id)}</h1><p class="notyet">No summary for this run yet.</p>'
            return HTMLResponse(page(TITLE, body, base).body, status_code=404)
        run_path = f"{base}/runs/{quote(run_id, safe='')}"
        body = "".join(
            [
                f"<h1>Run {esc(run_id)}</h1>",
                outcome_banner(summary),
                local_notice(summary),
                section("Overview", lambda: run_overview(summary), "overview"),
                section("Data", lambda: data_section(summary, base, run_path), "data"),
                section("Bias", lambda: bias_section(summary, base, run_path), "bias"),
                section("Training", lambda: training_section(summary, base, run_path), "training"),
                section(
                    "Evaluation", lambda: evaluation_section(summary, base, run_path), "evaluation"
                ),
                section("Leaderboard", lambda: leaderboard_section(summary, base), "leaderboard"),
                section("Champion vs challenger", lambda: champion_section(summary), "champion"),
                section("Model registry", lambda: registry_section(summary, base), "registry"),
                section("Endpoints", lambda: endpoints_section(summary, base), "endpoints"),
                section("Monitoring", lambda: monitoring_section(summary, base), "monitoring"),
                notifications_section(lambda: reports.notifications(run_id=run_id)),
            ]
        )
        return page(f"{TITLE}: {run_id}", body, base)

    @app.get("/endpoints/{endpoint_name}/drift/{feature}.png")
    def drift_chart(endpoint_name: str, feature: str) -> Response:
        series = reports.drift_series(endpoint_name, feature)
        if series is None:
            return Response(
                f"{endpoint_name} / {feature}: no monitoring window yet",
                status_code=404,
                media_type="text/plain",
            )
        png = reports.drift_png(series)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})

    @app.get("/runs/{run_id}/charts/{name}.png")
    def chart(run_id: str, name: str) -> Response:
        summary = reports.load_summary(run_id)
        if summary is None or name not in reports.CHARTS:
            return Response("no such run or chart", status_code=404, media_type="text/plain")
        png = reports.chart_png(name, summary)
        if png is None:
            return Response(f"{name}: not yet", status_code=404, media_type="text/plain")
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})

    @app.get("/artifact")
    def artifact(uri: str = Query(..., description="s3:// URI under the pipeline bucket")):
        try:
            uri = reports.check_artifact_uri(uri)
            data = reports.read_bytes(uri)
        except reports.ArtifactNotFound as exc:
            return Response(str(exc), status_code=404, media_type="text/plain")
        except ValueError as exc:  # ArtifactRejected, a malformed URI, or one leaving the lake
            return Response(str(exc), status_code=400, media_type="text/plain")
        headers = {"X-Content-Type-Options": "nosniff"}
        media_type = reports.content_type(uri) or "application/octet-stream"
        if media_type.startswith("text/html") or media_type == "image/svg+xml":
            headers["Content-Security-Policy"] = "sandbox"  # reports are data, not app code
        return Response(data, media_type=media_type, headers=headers)

    return app


app = create_app()


class ReviewsReportsPlugin(AirflowPlugin):
    """Mounts the reports app at /reviews, adds it to the Browse menu and a "Reports" tab to
    each DAG run."""

    name = "reviews_reports"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": TITLE}]
    external_views = [
        {
            "name": TITLE,
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "reviews-pipeline",
        },
        {  # a "Reports" tab on each DAG run page; the UI fills in {RUN_ID}
            "name": "Reports",
            "href": f"{URL_PREFIX}/runs/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "reviews-run-reports",
        },
    ]
