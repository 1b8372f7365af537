"""The model candidates in the pipeline: their requests from the Params, the text step reading
the training-set queries' CSV, one evaluation job for every kind of model, the leaderboard."""

from __future__ import annotations

import csv
import dataclasses
import json
import tarfile
from pathlib import Path

import pytest

from include.jobs import evaluate, prepare_text
from include.jobs.documents import PREDICTION_HEADERS
from include.pipeline import settings as pipeline_settings
from include.pipeline.documents import leaderboard as board
from include.pipeline.params import PARAMS
from include.pipeline.requests import automl
from include.pipeline.requests import bias as bias_requests
from include.pipeline.requests import registry as registry_requests
from include.pipeline.requests.features import SPLITS
from include.pipeline.tasks import candidates, deployment, registry
from tests.aws_model import assert_valid
from tests.test_blazingtext import _reviews

RUN = "manual__2026-01-31T12:00:00+00:00"
CODE = "s3://bkt/code/abc/"
SOURCEDIR = "s3://bkt/code/abc/sourcedir.tar.gz"
CODE_URIS = {"code_uri": CODE, "sourcedir_uri": SOURCEDIR}  # what tasks.code.publish returns


def _params(**overrides) -> dict:
    return {name: param.resolve() for name, param in PARAMS.items()} | overrides


def _training_set() -> dict:
    return {split: f"s3://bkt/runs/r/training-set/{split}/q-{split}.csv" for split in SPLITS}


def _athena_csv(path: Path, rows: list[tuple[int, str]]) -> None:
    """The training-set query's result: a header, quoted texts (commas, quotes, newlines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
        writer.writerow(["review_id", "sentiment", "label_id", "review_body", "product_category"])
        for i, (sentiment, text) in enumerate(rows):
            writer.writerow([f"r{i}", sentiment, sentiment + 1, text, ("Dresses", "Tops")[i % 2]])


def _entry(candidate: str, accuracy: float, macro_f1: float, latency: float | None) -> board.Entry:
    return board.Entry(
        candidate=candidate,
        accuracy=accuracy,
        macro_f1=macro_f1,
        training_time_s=1.0,
        model_size_bytes=10,
        inference_ms_per_review=latency,
        job_name=f"{candidate}-job",
        model_uri=f"s3://bkt/{candidate}/model.tar.gz",
        image_uri="img",
        evaluation_uri=f"s3://bkt/{candidate}/evaluation.json",
        training_image="img",
        content_type="application/json",
    )


def _final(settings, params: dict, splits: dict, **chosen) -> dict:
    """The final training's request for the run, given the tuned / recipe results in ``chosen``."""
    return candidates.final_training_request(
        settings, params, run_id=RUN, code=CODE_URIS, training_set=splits, **chosen
    )


def test_the_leaderboard_ranks_by_the_chosen_metric_then_by_latency():
    entries = [
        _entry("finetune", 0.70, 0.50, 9.0),
        _entry("blazingtext", 0.65, 0.60, 0.1),
        _entry("autopilot", 0.70, 0.40, 1.0),
    ]
    by_accuracy = board.rank(entries, "accuracy")
    assert [e.candidate for e in by_accuracy.entries] == ["autopilot", "finetune", "blazingtext"]
    assert board.rank(entries, "macro_f1").best.candidate == "blazingtext"
    again = board.Leaderboard.from_dict(json.loads(by_accuracy.to_json()))
    assert again == by_accuracy and by_accuracy.to_dict()["best"] == "autopilot"
    with pytest.raises(ValueError, match="recall"):
        board.rank(entries, "recall")
    with pytest.raises(ValueError, match="nothing to rank"):
        board.rank([], "accuracy")


def test_unselected_candidates_skip_their_path_and_bad_names_fail():
    from airflow.sdk.exceptions import AirflowSkipException

    settings = pipeline_settings.load()
    params = _params(candidates=["blazingtext"])
    with pytest.raises(AirflowSkipException, match="finetune"):
        candidates.tuning_request(
            settings, params, run_id=RUN, code=CODE_URIS, training_set=_training_set()
        )
    with pytest.raises(AirflowSkipException, match="tuning_max_jobs"):
        candidates.tuning_request(
            settings,
            _params(tuning_max_jobs=0),
            run_id=RUN,
            code=CODE_URIS,
            training_set=_training_set(),
        )
    with pytest.raises(ValueError, match="'xgboost'"):
        candidates.require(_params(candidates=["xgboost"]), "finetune")


def tuning_result(best: dict, accuracy: float) -> dict:
    """A tuning operator's result: the best trial's hyperparameters and objective."""
    return {
        "Tuning": {
            "BestTrainingJob": {
                "TrainingJobName": "tune-001",
                "TunedHyperParameters": best,
                "FinalHyperParameterTuningJobObjectiveMetric": {
                    "MetricName": "validation:accuracy",
                    "Value": accuracy,
                },
            }
        }
    }


def recipe_result(accuracy: float) -> dict:
    """The recipe trial's training operator result, with its final validation accuracy."""
    return {
        "Training": {
            "TrainingJobName": "recipe-abc",
            "FinalMetricDataList": [
                {"MetricName": "train:loss", "Value": 0.6},
                {"MetricName": "validation:accuracy", "Value": accuracy},
            ],
        }
    }


def test_the_recipe_runs_at_the_trials_budget_and_a_tuned_set_must_beat_it():
    settings = pipeline_settings.load()
    params = _params()
    splits = _training_set()
    recipe = candidates.recipe_trial_request(
        settings, params, run_id=RUN, code=CODE_URIS, training_set=splits
    )
    assert_valid("sagemaker", "CreateTrainingJob", recipe)
    final = _final(settings, params, splits, tuned=None)
    # Its own job, at the trials' budget, on the same channels, with the recipe's values.
    assert recipe["TrainingJobName"] != final["TrainingJobName"]
    assert recipe["CheckpointConfig"]["S3Uri"] != final["CheckpointConfig"]["S3Uri"]
    hp = recipe["HyperParameters"]
    assert hp["train_steps_per_epoch"] == str(params["tuning_trial_steps"])
    assert hp["learning_rate"] == final["HyperParameters"]["learning_rate"]
    assert recipe["InputDataConfig"] == final["InputDataConfig"]

    tuned = tuning_result({"learning_rate": "4.3e-05", "train_batch_size": "32"}, 0.69)
    chosen, choice = candidates.choose_hyperparameters(params, tuned, recipe_result(0.70))
    assert chosen is params and choice["chosen"] == "recipe"  # the tuned set scored lower
    assert choice["recipe"]["validation_accuracy"] == 0.70
    assert choice["tuned"]["validation_accuracy"] == 0.69
    assert choice["recipe"]["hyperparameters"]["learning_rate"] == str(params["learning_rate"])
    assert choice["tuned"]["hyperparameters"]["learning_rate"] == "4.3e-05"
    kept = _final(settings, params, splits, tuned=tuned, recipe=recipe_result(0.70))
    assert kept["HyperParameters"] == final["HyperParameters"]
    # A tie keeps the recipe; a better tuned set is taken, as the Params' types.
    assert candidates.choose_hyperparameters(params, tuned, recipe_result(0.69))[1]["chosen"] == (
        "recipe"
    )
    better, choice = candidates.choose_hyperparameters(params, tuned, recipe_result(0.60))
    assert choice["chosen"] == "tuned" and better["learning_rate"] == 4.3e-05
    assert better["train_batch_size"] == 32
    # The run summary shows both, and which was taken.
    from include.pipeline import task_ids as T
    from include.pipeline.stages.summary import ENTRIES
    from include.pipeline.tasks import summary

    xcoms = {T.TUNE: tuned, T.RECIPE_TRIAL: recipe_result(0.70)}
    steps = summary.collect(settings, lambda t, key=None: xcoms.get(t), params, RUN, ENTRIES)
    assert steps["tuning"]["chosen"] == "recipe"
    assert steps["tuning"]["recipe"]["job_name"] == "recipe-abc"
    assert steps["tuning"]["tuned"]["validation_accuracy"] == 0.69
    # Tuning turned off: no recipe job either.
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException):
        candidates.recipe_trial_request(
            settings, _params(tuning_max_jobs=0), run_id=RUN, code=CODE_URIS, training_set=splits
        )


def test_the_candidates_requests_are_valid_and_share_the_splits():
    settings = pipeline_settings.load()
    params = _params(tuning_warm_start_parent="tune-parent")
    splits = _training_set()
    tuning = candidates.tuning_request(
        settings, params, run_id=RUN, code=CODE_URIS, training_set=splits
    )
    assert_valid("sagemaker", "CreateHyperParameterTuningJob", tuning)
    definition = tuning["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"]["train_steps_per_epoch"] == str(
        params["tuning_trial_steps"]
    )
    assert tuning["WarmStartConfig"]["ParentHyperParameterTuningJobs"] == [
        {"HyperParameterTuningJobName": "tune-parent"}
    ]
    # The best trial's values (strings) reach the final training as the Params' types, when
    # they beat the recipe's job at the same budget.
    tuned = tuning_result({"train_batch_size": "16"}, 0.71)
    final = _final(settings, params, splits, tuned=tuned, recipe=recipe_result(0.70))
    assert final["HyperParameters"]["train_batch_size"] == "16"
    assert final["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == splits["train"]

    text = candidates.prepare_text_request(
        settings, params, run_id=RUN, code_uri=CODE, training_set=splits
    )
    assert_valid("sagemaker", "CreateProcessingJob", text)
    assert {i["S3Input"]["S3Uri"] for i in text["ProcessingInputs"]} == {*splits.values(), CODE}
    bt = candidates.blazingtext_request(settings, params, run_id=RUN)
    assert_valid("sagemaker", "CreateTrainingJob", bt)
    assert bt["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"].startswith(
        text["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    )
    arguments = candidates.automl_arguments(settings, params, run_id=RUN)
    assert len(arguments["job_name"]) <= 32
    request = {
        "AutoMLJobName": arguments["job_name"],
        "InputDataConfig": arguments["extras"]["InputDataConfig"],
        "OutputDataConfig": {"S3OutputPath": arguments["s3_output"]},
        "RoleArn": arguments["role_arn"],
        **{k: v for k, v in arguments["extras"].items() if k != "InputDataConfig"},
    }
    assert_valid("sagemaker", "CreateAutoMLJob", request)
    limits = request["AutoMLJobConfig"]["CompletionCriteria"]
    assert limits["MaxAutoMLJobRuntimeInSeconds"] == params["automl_max_runtime_s"]
    assert request["InputDataConfig"][0]["TargetAttributeName"] == automl.TARGET_ATTRIBUTE

    trained = {"Training": {"ModelArtifacts": {"S3ModelArtifacts": "s3://bkt/bt/model.tar.gz"}}}
    evaluations = [
        candidates.evaluation_request(
            settings,
            params,
            run_id=RUN,
            candidate=kind,
            code_uri=CODE,
            trained=trained,
            test_uri=splits["test"],
        )
        for kind in ("finetune", "blazingtext")
    ]
    for request in evaluations:
        assert_valid("sagemaker", "CreateProcessingJob", request)
    finetune, blazingtext = (r["AppSpecification"]["ContainerArguments"] for r in evaluations)
    assert "--model_kind" not in finetune and blazingtext[-2:] == ["--model_kind", "blazingtext"]
    outputs = {r["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] for r in evaluations}
    assert len(outputs) == 2  # each candidate has its own evaluation.json


def test_prepare_text_reads_the_training_set_query_csv(tmp_path: Path):
    rows = [(1, 'Love it, "really"\nfits'), (-1, "Ripped; awful"), (0, "okay")]
    for split in ("train", "test"):
        _athena_csv(tmp_path / "in" / split / "q.csv", rows)
    prepare_text.main(
        ["--input-data", str(tmp_path / "in"), "--output-data", str(tmp_path / "out")]
        + ["--splits", "train,test"]
    )
    lines = (tmp_path / "out" / "blazingtext" / "test" / "test.txt").read_text().splitlines()
    assert lines[0] == '__label__1 love it , " really " fits'
    # Autopilot's inference input: the same rows' text alone, one CSV row (and line) each.
    inference = tmp_path / "out" / "automl-inference" / "test" / "test.csv"
    assert inference.read_text().splitlines() == [
        '"Love it, ""really"" fits"',
        "Ripped; awful",
        "okay",
    ]
    _athena_csv(tmp_path / "bad" / "test" / "q.csv", [(1, "fine"), (7, "odd")])
    with pytest.raises(
        prepare_text.TextDataError, match=r"q.csv: row 3 column 'sentiment' has value 7;"
    ):
        prepare_text.read_split(tmp_path / "bad" / "test")


def test_the_evaluation_job_scores_a_text_candidate_into_the_same_document(tmp_path: Path):
    """An Autopilot candidate's archive as the local AutoML engine packs it (model.pkl)."""
    import io
    import pickle

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    rows = _reviews(12)
    vectorizer = TfidfVectorizer().fit([t for _, t in rows])
    classes = ["-1", "0", "1"]
    model = LogisticRegression(C=100).fit(
        vectorizer.transform([t for _, t in rows]), [classes.index(str(s)) for s, _ in rows]
    )
    data = pickle.dumps({"vectorizer": vectorizer, "model": model, "classes": classes})
    (tmp_path / "model").mkdir()
    with tarfile.open(tmp_path / "model" / "model.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("model.pkl")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    _athena_csv(tmp_path / "test" / "q.csv", rows)
    out = tmp_path / "evaluation"
    doc = evaluate.main(
        ["--model_path", str(tmp_path / "model"), "--test_path", str(tmp_path / "test")]
        + ["--output_dir", str(out), "--model_kind", "autopilot"]
    )
    assert doc["n_samples"] == len(rows)
    assert doc["metrics"]["accuracy"]["value"] == 1.0  # the words say the sentiment
    assert (
        doc["serving"]["model_size_bytes"] == (tmp_path / "model" / "model.tar.gz").stat().st_size
    )
    assert doc["serving"]["inference_ms_per_review"] > 0
    assert doc["serving"]["model_load_s"] >= 0
    assert json.loads((out / "evaluation.json").read_text()) == doc
    # The predictions with the facet (and the text's flip-test features) are the dataset of the
    # candidate's post-training bias job.
    with (out / "predictions.csv").open(newline="") as fh:
        predictions = list(csv.DictReader(fh))
    assert tuple(predictions[0]) == PREDICTION_HEADERS
    assert [int(r["sentiment"]) for r in predictions] == [s for s, _ in rows]
    assert {r["product_category"] for r in predictions} == {"Dresses", "Tops"}
    from include.pipeline.requests import bias
    from include.pipeline.targets.local.clarify import processor

    config = bias.post_training_analysis_config({}, list(predictions[0]))
    (tmp_path / "analysis_config.json").write_text(json.dumps(config))
    processor.run(tmp_path / "analysis_config.json", out / "predictions.csv", tmp_path / "bias")
    analysis = json.loads((tmp_path / "bias" / "analysis.json").read_text())
    facet = analysis["post_training_bias_metrics"]["facets"]["product_category"]
    assert {e["value_or_threshold"] for e in facet} == {"Dresses", "Tops"}
    (dresses,) = (e for e in facet if e["value_or_threshold"] == "Dresses")
    metrics = {m["name"]: m["value"] for m in dresses["metrics"]}
    assert set(metrics) == set(bias.POST_TRAINING_METHODS) and "FT" in metrics
    assert metrics["AD"] == 0.0  # a perfect model is as accurate on every category
    assert -1 <= metrics["FT"] <= 1  # computed on the text_f* columns, not undefined
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


def test_a_candidates_post_training_bias_job_is_a_valid_clarify_request(lake: Path):
    from include.pipeline.targets.local.lake import resolve

    settings = pipeline_settings.load()
    from include.pipeline import targets

    store = targets.load(settings).storage
    request = candidates.posttraining_bias_request(
        settings, _params(), store, run_id=RUN, candidate="blazingtext"
    )
    assert_valid("sagemaker", "CreateProcessingJob", request)
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]}
    assert inputs["dataset"].endswith("/candidates/blazingtext/evaluation/predictions.csv")
    config = json.loads(resolve(inputs["analysis_config"], lake).read_text())
    assert config["predicted_label"] == "predicted_label"
    assert config["methods"] == {
        "post_training_bias": {"methods": list(bias_requests.POST_TRAINING_METHODS)}
    }
    assert config["facet"] == [{"name_or_index": "product_category"}]


def test_model_facts_of_an_autopilot_candidate():
    """The best candidate is registered and served as the pipeline Autopilot lists (feature
    transform, algorithm, inverse label transform), not its first container alone."""
    settings = pipeline_settings.load()
    describe = {
        **_automl_describe(),
        "CreationTime": "2026-01-31T12:00:00+00:00",
        "EndTime": "2026-01-31T12:00:30+00:00",
    }
    facts = candidates.model_facts(settings, "autopilot", describe)
    assert facts["training_time_s"] == 30.0 and facts["content_type"] == "text/csv"
    assert facts["model_uri"] == "s3://bkt/a/tuning/model.tar.gz"  # the algorithm's archive
    containers = facts["containers"]
    assert [c["ModelDataUrl"] for c in containers] == [
        c["ModelDataUrl"] for c in describe["BestCandidate"]["InferenceContainers"]
    ]
    assert containers[-1]["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] == (
        "predicted_label,probability"
    )
    entry = {**facts, "candidate": "autopilot"}
    registered = registry.registration_arguments(
        settings,
        _params(),
        run_id=RUN,
        ingested={"raw_hash": "ab" * 32},
        model=entry,
        evaluation_uri="s3://bkt/evaluation.json",
        bias=None,
    )
    package = registry_requests.create_model_package_request(registered)
    assert_valid("sagemaker", "CreateModelPackage", package)
    assert package["InferenceSpecification"]["Containers"] == containers
    deployed = deployment.build_deployment_requests(
        settings,
        _params(),
        run_id=RUN,
        model_data_url=facts["model_uri"],
        champion_model=None,
        candidate=entry,
    )["model"]
    assert_valid("sagemaker", "CreateModel", deployed)
    assert "PrimaryContainer" not in deployed and deployed["Containers"] == containers


def test_the_reports_page_shows_the_leaderboard_best_first():
    from include.pipeline import reports
    from tests.test_reports_plugin import load_plugin_module

    ranked = board.rank(
        [_entry("finetune", 0.6, 0.5, 9.0), _entry("autopilot", 0.7, 0.4, 1.0)], "accuracy"
    )
    summary = {
        "leaderboard": {**ranked.to_dict(), "uri": "s3://bkt/leaderboard.json"},
        "deployment": {"endpoint_name": "reviews-sentiment", "candidate": "autopilot"},
    }
    view = reports.leaderboard(summary)
    assert [r["candidate"] for r in view["rows"]] == ["autopilot", "finetune"]
    assert view["rows"][0]["deployed"] and view["rows"][0]["model_size_mb"] == 0.0
    html = load_plugin_module().leaderboard_section(summary, "/reviews")
    assert html.index("autopilot <b>(deployed)</b>") < html.index("finetune")
    assert "ms / review" in html and "Best by accuracy" in html
    assert reports.leaderboard({"leaderboard": {"skipped": "no candidates"}}) is None


def test_a_served_model_is_evaluated_as_the_candidate_its_image_says():
    from include.pipeline.candidates import of_image
    from include.pipeline.requests.images import image_uri

    assert of_image(image_uri("blazingtext", "us-east-1")).name == "blazingtext"
    autopilot = "123.dkr.ecr.us-east-1.amazonaws.com/sagemaker-sklearn-automl:2.5-1-cpu-py3"
    assert of_image(autopilot).name == "autopilot"
    settings = pipeline_settings.load()
    finetune = candidates.model_facts(
        settings,
        "finetune",
        {
            "Training": {
                "TrainingJobName": "train-1",
                "ModelArtifacts": {"S3ModelArtifacts": "s3://b/m.tar.gz"},
                "AlgorithmSpecification": {"TrainingImage": "pytorch-training:2"},
            }
        },
    )
    assert of_image(finetune["image_uri"]).name == "finetune"


def _automl_describe() -> dict:
    """DescribeAutoMLJob of an AWS Autopilot job: the best candidate's three containers (data
    processing, algorithm, label inverse transform), as Autopilot lists them."""
    image = "683313688378.dkr.ecr.us-east-1.amazonaws.com"
    return {
        "AutoMLJobName": "automl-abc",
        "BestCandidate": {
            "CandidateName": "automl-abc-xgb",
            "InferenceContainers": [
                {
                    "Image": f"{image}/sagemaker-sklearn-automl:2.5-1-cpu-py3",
                    "ModelDataUrl": "s3://bkt/a/data-processor-models/model.tar.gz",
                    "Environment": {"AUTOML_TRANSFORM_MODE": "feature-transform"},
                },
                {
                    "Image": f"{image}/sagemaker-xgboost:1.7-1-cpu-py3",
                    "ModelDataUrl": "s3://bkt/a/tuning/model.tar.gz",
                    "Environment": {
                        "SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label,probability,probabilities"
                    },
                },
                {
                    "Image": f"{image}/sagemaker-sklearn-automl:2.5-1-cpu-py3",
                    "ModelDataUrl": "s3://bkt/a/data-processor-models/model.tar.gz",
                    "Environment": {
                        "AUTOML_TRANSFORM_MODE": "inverse-label-transform",
                        "SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label,probability,labels",
                    },
                },
            ],
        },
    }


def test_on_aws_autopilot_is_scored_by_a_batch_transform_of_its_model():
    """aws: the evaluation job cannot run Autopilot's containers, so the best candidate becomes
    a model (all its containers) and a text/csv batch transform scores the test split's text;
    the evaluation job reads those predictions instead of a model archive."""
    settings = dataclasses.replace(pipeline_settings.load(), target="aws")
    params, splits = _params(), _training_set()
    built = candidates.autopilot_scoring_requests(
        settings, params, run_id=RUN, trained=_automl_describe()
    )
    assert_valid("sagemaker", "CreateModel", built["model"])
    assert_valid("sagemaker", "CreateTransformJob", built["transform"])
    containers = built["model"]["Containers"]
    assert [c["Environment"].get("SAGEMAKER_INFERENCE_OUTPUT") for c in containers] == [
        None,
        "predicted_label,probability",
        "predicted_label,probability",
    ]
    assert containers[2]["Environment"]["SAGEMAKER_INFERENCE_INPUT"] == (
        "predicted_label,probability"
    )
    job = built["transform"]
    assert job["ModelName"] == built["model"]["ModelName"]
    assert job["TransformInput"]["ContentType"] == "text/csv"
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformOutput"]["AssembleWith"] == "Line"
    text = candidates.prepare_text_request(
        settings, params, run_id=RUN, code_uri=CODE, training_set=splits
    )
    prepared = text["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    source = job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    assert source == f"{prepared}/automl-inference/test"

    request = candidates.evaluation_request(
        settings,
        params,
        run_id=RUN,
        candidate="autopilot",
        code_uri=CODE,
        trained=_automl_describe(),
        test_uri=splits["test"],
    )
    assert_valid("sagemaker", "CreateProcessingJob", request)
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]}
    assert "model" not in inputs
    assert inputs["predictions"] == job["TransformOutput"]["S3OutputPath"]
    assert inputs["test"] == splits["test"]
    arguments = request["AppSpecification"]["ContainerArguments"]
    assert arguments[:2] == ["--predictions_path", "/opt/ml/processing/input/predictions"]
    with pytest.raises(ValueError, match="does not answer"):
        automl.inference_containers(_automl_describe()["BestCandidate"]["InferenceContainers"][:1])


def test_locally_autopilot_is_scored_by_a_batch_transform_of_its_pipeline_too():
    """The local AutoML engine's candidates are inference pipelines as Autopilot's are, so the
    local target scores them the same way: the whole pipeline as a model, a batch transform."""
    settings = dataclasses.replace(pipeline_settings.load(), target="local")
    built = candidates.autopilot_scoring_requests(
        settings, _params(), run_id=RUN, trained=_automl_describe()
    )
    assert len(built["model"]["Containers"]) == 3
    request = candidates.evaluation_request(
        settings,
        _params(),
        run_id=RUN,
        candidate="autopilot",
        code_uri=CODE,
        trained=_automl_describe(),
        test_uri=_training_set()["test"],
    )
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]}
    assert "model" not in inputs
    assert inputs["predictions"] == built["transform"]["TransformOutput"]["S3OutputPath"]


def test_a_failed_candidate_is_listed_with_its_reason_and_the_others_are_ranked():
    """One candidate's failed training leaves it off the ranking (listed as failed, with the
    task that failed); the others go on, and the run's last check fails naming it."""
    from airflow.sdk.exceptions import AirflowFailException

    params = _params(candidates=["finetune", "blazingtext", "autopilot"])
    results = {
        "finetune": ({"Training": {}}, {"OutputFiles": {}}, None),
        "blazingtext": (None, None, None),  # its training failed: nothing downstream ran
        "autopilot": ({"AutoMLJobName": "a"}, {"OutputFiles": {}}, None),
    }
    paths = {
        "finetune": {"ingest_reviews", "tune_finetune", "train_model", "evaluate_model"},
        "blazingtext": {"ingest_reviews", "train_blazingtext", "evaluate_model_blazingtext"},
        "autopilot": {"ingest_reviews", "create_automl_job", "evaluate_model_autopilot"},
    }
    states = {
        "ingest_reviews": "success",
        "train_blazingtext": "failed",
        "evaluate_model_blazingtext": "upstream_failed",
    }
    failed = candidates.failed_candidates(params, results, states=states, paths=paths)
    assert failed == {"blazingtext": "task train_blazingtext failed"}
    # a path skipped by a gate, or a candidate the run did not ask for, is not a failure
    skipped = dict.fromkeys(paths["blazingtext"] - {"ingest_reviews"}, "skipped")
    assert not candidates.failed_candidates(
        params, results, states={**states, **skipped}, paths=paths
    )
    alone = _params(candidates=["finetune"])
    assert not candidates.failed_candidates(alone, results, states=states, paths=paths)
    shared = {"ingest_reviews": "failed"} | dict.fromkeys(
        set().union(*paths.values()) - {"ingest_reviews"}, "upstream_failed"
    )
    nothing = dict.fromkeys(candidates.failed_candidates(params, {}, states=shared, paths=paths))
    assert set(nothing) == {"finetune", "blazingtext", "autopilot"}
    assert candidates.failed_candidates(params, {}, states=shared, paths=paths)["autopilot"] == (
        "task ingest_reviews failed"
    )

    ranked = board.rank(
        [_entry("finetune", 0.7, 0.5, 1.0), _entry("autopilot", 0.6, 0.4, None)], "accuracy", failed
    )
    doc = ranked.to_dict()
    assert [e["candidate"] for e in doc["entries"]] == ["finetune", "autopilot"]
    assert doc["failed"] == [
        {"candidate": "blazingtext", "reason": "task train_blazingtext failed"}
    ]
    assert board.Leaderboard.from_dict(doc).failed == doc["failed"]
    with pytest.raises(AirflowFailException, match="blazingtext: task train_blazingtext failed"):
        candidates.require_every_candidate(doc)
    candidates.require_every_candidate(
        board.rank([_entry("finetune", 0.7, 0.5, 1.0)], "accuracy").to_dict()
    )
    with pytest.raises(ValueError, match="blazingtext: task train_blazingtext failed"):
        board.rank([], "accuracy", failed)
    from airflow.sdk.exceptions import AirflowSkipException

    settings = pipeline_settings.load()
    with pytest.raises(AirflowSkipException, match="paths were skipped"):  # a gate stopped it
        candidates.leaderboard(settings, params, None, run_id=RUN, results={}, failed={})
    # every path failed upstream (the first task refused the run): fail at once, no retry
    everything = candidates.failed_candidates(params, {}, states=shared, paths=paths)
    with pytest.raises(AirflowFailException, match="autopilot: task ingest_reviews failed"):
        candidates.leaderboard(settings, params, None, run_id=RUN, results={}, failed=everything)

    from include.pipeline import reports
    from tests.test_reports_plugin import load_plugin_module

    summary = {"leaderboard": {**doc, "uri": "s3://bkt/leaderboard.json"}}
    assert reports.leaderboard(summary)["failed"] == doc["failed"]
    html = load_plugin_module().leaderboard_section(summary, "/reviews")
    assert "blazingtext <b>(failed)</b>" in html and "train_blazingtext failed" in html
