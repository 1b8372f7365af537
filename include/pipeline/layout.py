"""Where the pipeline keeps things: every ``s3://`` URI it writes or reads, in one place.

:class:`Layout` is the bucket's shared folders (raw copies by content hash, the transformed
table, the Feature Store, published code, endpoint traffic and rollout state); :class:`RunLayout`
is one DAG run's folder ``runs/<run key>/``. The DAG, the tasks, the request builders and the
reports page all ask these two classes; nothing else joins path segments.

Run keys: Airflow run ids carry ``:`` and ``+`` (``manual__2026-11-27T00:00:00+00:00``), which
S3's key guidance lists as needing special handling (URL-encoded in requests, mangled by some
tools). :func:`run_key` is the one mapping from a run id to its folder name. A DAG that passes
URIs to operator templates uses ``RunLayout(settings, RUN_KEY_TEMPLATE)`` and registers
``user_defined_macros=TEMPLATE_MACROS``, so Airflow renders the same mapping per run.

Prefixes (folders a job reads or fills) end with ``/``; file URIs do not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from include.jobs.documents import CONFUSION_MATRIX_FILE, EVALUATION_FILE
from include.jobs.feature_records import SPLITS
from include.pipeline.core import clarify_container as clarify
from include.pipeline.core.names import short_hash
from include.pipeline.schema import PARTITION_KEY
from include.pipeline.settings import Settings

BIAS_STAGES = ("raw", "balanced")
SUMMARY_FILE = "summary.json"
RUNS = "runs"
TRANSFORMED_TABLE = "reviews"
INCOMING = "incoming"
ARRIVALS = "arrivals"
# The prepare job's balanced-rows folder under its output prefix (``sentiment-balanced``).
BALANCED_FOLDER = "balanced"


# What Airflow accepts as a run id (its default ``allowed_run_id_pattern``; generated ids fit).
_RUN_ID = re.compile(r"^[A-Za-z0-9_.~:+-]{1,250}$")
# Characters S3 lists as safe in keys (minus ``!*'()``, which run ids cannot hold).
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def run_key(run_id: str) -> str:
    """The folder name of a run: ``run_id`` with every character outside ``[A-Za-z0-9_.-]``
    replaced by ``-`` and, when anything was replaced, ``-<8 hex of sha256(run_id)>`` appended,
    so two run ids never share a folder (``a:b`` and ``a-b`` differ by the suffix).

    ``manual__2026-11-27T00:00:00+00:00`` -> ``manual__2026-11-27T00-00-00-00-00-<hash>``.
    Stable across releases (the folder of a past run must stay findable) and idempotent: a key
    maps to itself, so readers may pass either the run id or the folder name.
    """
    if not _RUN_ID.match(run_id) or run_id in (".", ".."):
        raise ValueError(
            f"run id {run_id!r} is not an Airflow run id (1-250 of A-Z a-z 0-9 _ . ~ : + -)"
        )
    safe = _KEY_UNSAFE.sub("-", run_id)
    return safe if safe == run_id else f"{safe}-{short_hash(run_id)}"


RUN_KEY_MACRO = "run_key"
RUN_KEY_TEMPLATE = f"{{{{ {RUN_KEY_MACRO}(run_id) }}}}"
TEMPLATE_MACROS = {RUN_KEY_MACRO: run_key}


def _folder(uri: str) -> str:
    return uri.rstrip("/") + "/"


@dataclass(frozen=True)
class Layout:
    """The bucket's folders that outlive a run."""

    settings: Settings

    def uri(self, *parts: str) -> str:
        return self.settings.s3_uri(*parts)

    def key(self, uri: str) -> str:
        """The object key of one of this bucket's URIs (what S3 filters and listings name)."""
        bucket = f"s3://{self.settings.bucket}/"
        if not uri.startswith(bucket):
            raise ValueError(f"{uri!r} is not in the pipeline's bucket {bucket}")
        return uri.removeprefix(bucket)

    # --- ingestion: content-addressed, so a re-run writes the same objects
    def raw(self, raw_hash: str, name: str) -> str:
        return self.uri("raw", raw_hash, name)

    def raw_prefix(self) -> str:
        return _folder(self.uri("raw"))

    def raw_folder(self, raw_hash: str) -> str:
        """The raw copies of one content (one file, unless the same bytes came under two names)."""
        return _folder(self.uri("raw", raw_hash))

    def quarantine(self, raw_hash: str) -> str:
        return self.uri("quarantine", raw_hash, "quarantine.csv")

    def transformed(self) -> str:
        """The Glue database's location."""
        return _folder(self.uri("transformed"))

    def table(self) -> str:
        """The transformed reviews table (Parquet, one partition per raw file)."""
        return _folder(self.uri("transformed", TRANSFORMED_TABLE))

    def partition(self, raw_hash: str) -> str:
        return f"{self.table()}{PARTITION_KEY}={raw_hash}/"

    def transformed_file(self, raw_hash: str) -> str:
        return f"{self.partition(raw_hash)}reviews.parquet"

    def dataset_prefix(self, raw_hash: str) -> str:
        """The same rows as CSV with a header: the bias job's and the prepare job's input."""
        return _folder(self.uri("transformed", "reviews_csv", raw_hash))

    def dataset_csv(self, raw_hash: str) -> str:
        return f"{self.dataset_prefix(raw_hash)}reviews.csv"

    # --- arrival
    def incoming(self) -> str:
        """The watched prefix (locally the lake folder of that URI)."""
        return _folder(self.uri(INCOMING))

    def arrival_marker(self, raw_hash: str) -> str:
        return self.uri(ARRIVALS, f"{raw_hash}.json")

    # --- shared services
    def feature_store(self) -> str:
        return self.uri("feature-store")

    def code(self, digest: str) -> str:
        return self.uri("code", digest)

    def data_capture(self) -> str:
        return self.uri("data-capture")

    def runs(self) -> str:
        return _folder(self.uri(RUNS))

    # --- endpoint rollout
    def rewards(self, endpoint_name: str) -> str:
        """The reward store of one endpoint (written by whoever joins predictions with labels)."""
        return self.uri("rewards", f"{endpoint_name}.jsonl")

    def notifications(self) -> str:
        """The notifications log of ``PIPELINE_NOTIFY=lake`` (JSON lines, one per message)."""
        return self.uri("notifications", "notifications.jsonl")

    def rollout_decisions(self, endpoint_name: str) -> str:
        return self.uri("rollout", endpoint_name, "decisions.jsonl")

    def rollout_weights_plot(self, endpoint_name: str) -> str:
        return self.uri("rollout", endpoint_name, "weights.png")

    def ground_truth(self, endpoint_name: str) -> str:
        """Labels of served requests (Model Monitor's ground-truth layout): what rewards come from."""
        return _folder(self.uri("ground-truth", endpoint_name))

    def rollout_stats_folder(self, endpoint_name: str) -> str:
        return _folder(self.uri("rollout", endpoint_name, "stats"))

    def rollout_stats(self, endpoint_name: str, run_id: str) -> str:
        """Full per-variant statistics of one rollout run (predictions included)."""
        return f"{self.rollout_stats_folder(endpoint_name)}{short_hash(run_id, length=16)}.json"

    # --- closing the loop: model monitoring and human labels, per endpoint
    def monitoring(self) -> str:
        """Everything the model_monitor DAG reads and writes (the ``reviews_drift`` asset)."""
        return _folder(self.uri("monitoring"))

    def monitoring_baseline(self, endpoint_name: str, model_name: str) -> str:
        """The baseline job's output of one served model: statistics, constraints, vocabulary."""
        return _folder(self.uri("monitoring", endpoint_name, "baselines", model_name))

    def monitoring_since(self, endpoint_name: str, model_name: str) -> str:
        """When a served model started serving on the endpoint (its monitoring windows start
        there), written by model_monitor on the deployment event."""
        return self.uri("monitoring", endpoint_name, "serving", f"{model_name}.json")

    def monitoring_reports(self, endpoint_name: str) -> str:
        return _folder(self.uri("monitoring", endpoint_name, "reports"))

    def monitoring_report(self, endpoint_name: str, window: str) -> str:
        """One window's report folder; ``window`` is its start hour, ``yyyy-mm-ddThh``."""
        return f"{self.monitoring_reports(endpoint_name)}{window}/"

    def all_labels(self) -> str:
        """Every endpoint's human labels (the ``reviews_labeled`` asset)."""
        return _folder(self.uri("labels"))

    def endpoint_labels(self, endpoint_name: str) -> str:
        """The human labels of one endpoint's served reviews, one ``<review_id>.json`` each."""
        return _folder(self.uri("labels", endpoint_name))

    def human_loops(self) -> str:
        """Where Amazon A2I writes the answers of the human loops (the A2I review option)."""
        return _folder(self.uri("human-loops"))


@dataclass(frozen=True)
class RunLayout:
    """One DAG run's folder, ``runs/<run_key(run_id)>/``: every path carries the run."""

    settings: Settings
    run_id: str
    key: str = field(init=False)

    def __post_init__(self) -> None:
        key = self.run_id if self.run_id == RUN_KEY_TEMPLATE else run_key(self.run_id)
        object.__setattr__(self, "key", key)

    def uri(self, *parts: str) -> str:
        return self.settings.s3_uri(RUNS, self.key, *parts)

    def summary(self) -> str:
        return self.uri(SUMMARY_FILE)

    def demo_log(self) -> str:
        """``make demo``'s full log of the run (Airflow's task logs; the terminal shows a digest)."""
        return self.uri("demo.log")

    def query_results(self) -> str:
        """Athena's (and DuckDB's) OutputLocation for the run's statistics queries."""
        return _folder(self.uri("athena"))

    def query_result(self, query_execution_id: str) -> str:
        return f"{self.query_results()}{query_execution_id}.csv"

    # --- bias: one folder per stage (raw data, balanced data)
    def _stage(self, stage: str) -> str:
        if stage not in BIAS_STAGES:
            raise ValueError(f"bias stage {stage!r} is not one of {BIAS_STAGES}")
        return stage

    def bias_config(self, stage: str) -> str:
        return self.uri("bias", self._stage(stage), "config", clarify.CONFIG_FILE)

    def bias_output(self, stage: str) -> str:
        """The Clarify job's output prefix: analysis.json and the report."""
        return self.uri("bias", self._stage(stage), "report")

    def bias_analysis(self, stage: str) -> str:
        return f"{self.bias_output(stage)}/{clarify.ANALYSIS_FILE}"

    def bias_report(self, stage: str) -> str:
        return f"{self.bias_output(stage)}/{clarify.REPORT_NAME}.html"

    # --- features
    def features(self) -> str:
        """The prepare job's output prefix (splits, balanced rows, summary)."""
        return self.uri("features")

    def balanced(self) -> str:
        """The balanced rows as CSV (prepare's ``sentiment-balanced`` output)."""
        return f"{self.features()}/{BALANCED_FOLDER}/"

    def training_set(self, split: str) -> str:
        """Where the training-set query of ``split`` leaves its result: a training channel."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {SPLITS}")
        return _folder(self.uri("training-set", split))

    def training_set_file(self, split: str, query_execution_id: str) -> str:
        return f"{self.training_set(split)}{query_execution_id}.csv"

    # --- training and evaluation
    def training(self) -> str:
        """The training job's S3OutputPath (SageMaker adds ``<job>/output/model.tar.gz``)."""
        return self.uri("training")

    def model(self, job_name: str) -> str:
        return f"{self.training()}/{job_name}/output/model.tar.gz"

    def checkpoints(self, job_name: str) -> str:
        """One training job's checkpoint folder: a job resumes only its own checkpoints."""
        return self.uri("checkpoints", job_name)

    def evaluation(self) -> str:
        """The evaluation job's output prefix."""
        return self.uri("evaluation")

    def champion_evaluation(self) -> str:
        """The serving model's evaluation on this run's test split (champion / challenger)."""
        return self.uri("evaluation-champion")

    def labels(self) -> str:
        """The human labels this run trains on, in the prepared shape (the prepare job's input)."""
        return _folder(self.uri("labels"))

    def evaluation_file(self) -> str:
        return f"{self.evaluation()}/{EVALUATION_FILE}"

    def confusion_matrix(self) -> str:
        return f"{self.evaluation()}/{CONFUSION_MATRIX_FILE}"

    # --- model candidates (tuned fine-tune, BlazingText, Autopilot) and their leaderboard
    def prepared_text(self) -> str:
        """prepare_text.py's output prefix: ``blazingtext/<split>/`` and ``automl/<split>/``."""
        return self.uri("candidates", "text")

    def candidate_training(self, candidate: str) -> str:
        """The S3OutputPath of a candidate's own training (BlazingText, Autopilot)."""
        return self.uri("candidates", candidate, "training")

    def candidate_evaluation(self, candidate: str, *, primary: bool) -> str:
        """A candidate's evaluation prefix; the primary candidate's is :meth:`evaluation` (the
        summary's)."""
        if primary:
            return self.evaluation()
        return self.uri("candidates", candidate, "evaluation")

    def candidate_test_scores(self, candidate: str) -> str:
        """The S3OutputPath of the batch transform that scores a candidate's test split where
        the evaluation job cannot load its model (Autopilot on aws)."""
        return self.uri("candidates", candidate, "test-scores")

    def leaderboard(self) -> str:
        return self.uri("candidates", "leaderboard.json")

    def candidate_bias_config(self, candidate: str) -> str:
        """The analysis config of a candidate's post-training bias job."""
        return self.uri("candidates", candidate, "bias", "config", clarify.CONFIG_FILE)

    def candidate_bias_output(self, candidate: str) -> str:
        """Its output prefix: Clarify's analysis.json with ``post_training_bias_metrics``."""
        return self.uri("candidates", candidate, "bias", "report")

    # --- batch scoring (the reviews_batch_scoring DAG's runs)
    def batch_scoring(self) -> str:
        """Everything a scoring run writes: ``batch-scoring/{input,output,summary.json}``."""
        return self.uri("batch-scoring")

    def batch_input(self) -> str:
        """The transform job's input (JSON lines made from the DAG's input file)."""
        return f"{self.batch_scoring()}/input/reviews.jsonl"

    def batch_output(self) -> str:
        """The transform job's S3OutputPath (``<input file>.out`` per input file)."""
        return f"{self.batch_scoring()}/output/"

    def batch_summary(self) -> str:
        return f"{self.batch_scoring()}/{SUMMARY_FILE}"
