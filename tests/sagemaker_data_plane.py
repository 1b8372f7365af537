"""The data plane moto lacks: SageMaker jobs, Athena queries, the offline store, InvokeEndpoint.

moto's control plane accepts CreateProcessingJob / CreateTrainingJob / CreateTransformJob,
StartQueryExecution, CreateFeatureGroup and InvokeEndpoint but runs nothing, so an end-to-end
test on moto alone cannot get a model through. :func:`data_plane` hooks moto's backends in the
process that hosts the ``ThreadedMotoServer`` and runs the very request moto received with the
project's local engines, over a mirror of moto's S3 (a lake folder):

- jobs: every bucket is pulled from moto's S3 into the mirror, the local job runner runs the
  script under the container contract, the outputs go back to the request's S3 URIs, and the moto
  job moves InProgress -> Completed / Failed with the fields SageMaker fills in (ModelArtifacts,
  FinalMetricDataList, rule evaluations, FailureReason). A job's own AWS calls go to moto
  (``AWS_ENDPOINT_URL``), its PutRecord calls to the local feature store runtime. A job script
  runs in its image's environment (``tests/image_env.py``): what the image lacks and the job
  does not install fails to import, as on AWS.
- Athena: the query runs on DuckDB (``targets/local/athena.py``) over moto's Glue catalog and the
  offline stores as they are in S3; the result is ``<OutputLocation>`` (``<id>.csv``) plus the
  ``.csv.metadata`` Athena writes next to it.
- Feature Store: a group is also created in the local store (moto's describe then names the
  local store's offline location and Glue table); offline records reach S3 when the job ends, or
  ``offline_delay_s`` later, as the real offline store lags behind PutRecord.
- Tuning: the trials run through the local tuning engine (Optuna, ``sagemaker/tuning.py``);
  the best trial replaces moto's canned one. AutoML: moto has only the V2 API, so the harness
  answers V1 CreateAutoMLJob / DescribeAutoMLJob / ListCandidatesForAutoMLJob itself, the job
  running on the local FLAML engine (``sagemaker/automl.py``).
- UpdateEndpoint (moto has none): Updating for a moment, then InService on the new config, or,
  after :meth:`DataPlane.roll_back_next_update`, rolled back as a blue/green update whose alarm
  trips: the alarms in ALARM, the endpoint InService on its old config.
- InvokeEndpoint: the endpoint's first variant's model (its ModelDataUrl in moto's S3) answers
  through the local inference handler (``targets/local/endpoint/models.py``).

What SageMaker does with the execution role on a job's, a model's or an endpoint's behalf (its
S3 inputs and outputs, PutRecord, the offline store's Glue table, container logs, ECR image pulls,
Autopilot passing the role on, the rollback alarms it reads) is recorded with each resource in
:attr:`DataPlane.execution_role_needs`, for the test to evaluate against the role's policy.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
import traceback
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import boto3

from tests.iam_policies import PASSED_TO_SAGEMAKER, Need, query_tables

_BUCKET = re.compile(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/")
# Athena writes this binary file next to each result; readers of the result prefix must skip it.
ATHENA_METADATA = b"athena result metadata (written by the test data plane)"
ACCOUNT = "123456789012"  # moto's default account
_ECR_IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@]+)")
# Where SageMaker's containers log, by kind of job (CloudWatch Logs groups).
_LOG_GROUP = {
    "Processing": "/aws/sagemaker/ProcessingJobs",
    "Training": "/aws/sagemaker/TrainingJobs",
    "HyperParameterTuning": "/aws/sagemaker/TrainingJobs",
    "AutoML": "/aws/sagemaker/ProcessingJobs",
    "Transform": "/aws/sagemaker/TransformJobs",
}


def _client(service: str, url: str, region: str):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _now() -> datetime:
    return datetime.now(UTC)


class DataPlane:
    """A mirror lake of moto's S3 and the engines that run moto's requests over it."""

    def __init__(self, url: str, root: Path, *, region: str = "us-east-1", offline_delay_s=0.0):
        self.url, self.region, self.offline_delay_s = url, region, float(offline_delay_s)
        self.lake = Path(root) / "lake"  # the mirror of moto's S3 (plus local engine state)
        self.store_lake = Path(root) / "featurestore"  # the feature store's own, unsynced side
        self.lake.mkdir(parents=True, exist_ok=True)
        self.store_lake.mkdir(parents=True, exist_ok=True)
        self.log_path = Path(root) / "data-plane.log"
        self.s3 = _client("s3", url, region)
        self.glue = _client("glue", url, region)
        self._sync = threading.RLock()
        self._etags: dict[tuple[str, str], str] = {}
        self._pushed: dict[Path, tuple[int, int]] = {}
        self._threads: list[threading.Thread] = []
        self.execution_role_needs: list[Need] = []  # what SageMaker does with the role
        # What Athena reads with its caller's permissions: the data of the tables a query names.
        self.athena_caller_needs: list[Need] = []
        self.query_failures: dict[str, str] = {}
        self.errors: list[str] = []  # harness faults (not job failures): the test asserts none
        self.jobs_run: list[str] = []
        self.automl_jobs: dict[str, dict] = {}  # name -> {"describe", "candidates"} (V1 API)
        self.rollbacks: dict[str, str] = {}  # endpoint -> alarm reason of its next update
        self.update_seconds = 1.0  # how long an UpdateEndpoint stays Updating

    # ------------------------------------------------------------------ S3 <-> mirror
    def log(self, line: str) -> None:
        with self._sync, self.log_path.open("a") as fh:
            fh.write(line.rstrip("\n") + "\n")

    def pull(self) -> None:
        """Every object of every bucket into the mirror (unchanged ones are skipped)."""
        with self._sync:
            for bucket in [b["Name"] for b in self.s3.list_buckets()["Buckets"]]:
                pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for obj in (o for page in pages for o in page.get("Contents", [])):
                    key = obj["Key"]
                    if key.endswith("/") or self._etags.get((bucket, key)) == obj["ETag"]:
                        continue
                    body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                    path = self.lake / bucket / key
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f".{path.name}.pull")
                    tmp.write_bytes(body)
                    tmp.replace(path)
                    self._etags[(bucket, key)] = obj["ETag"]
                    self._pushed[path] = self._stamp(path)

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int]:
        st = path.stat()
        return st.st_size, st.st_mtime_ns

    def push(self, uri: str, source: Path | None = None, *, as_execution_role=True) -> int:
        """Upload what changed under ``uri`` in the mirror (or in ``source``, the same layout);
        each upload is SageMaker's, with the execution role, unless ``as_execution_role`` is
        false (Athena writes a result with its caller's permissions)."""
        from include.pipeline.core.s3 import split_s3_uri
        from include.pipeline.targets.local.lake import resolve

        source = source or self.lake
        bucket, _ = split_s3_uri(uri)
        root = resolve(uri, source)
        files = [root] if root.is_file() else sorted(root.rglob("*")) if root.exists() else []
        count = 0
        with self._sync:
            for f in (p for p in files if p.is_file() and not p.name.startswith(".")):
                key = "/".join(f.relative_to(source / bucket).parts)
                if source == self.lake and self._pushed.get(f) == self._stamp(f):
                    continue
                etag = self.s3.put_object(Bucket=bucket, Key=key, Body=f.read_bytes())["ETag"]
                if as_execution_role:
                    self.on_behalf(Need("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}", {}))
                if source == self.lake:  # else the next pull brings the object into the mirror
                    self._etags[(bucket, key)] = etag
                    self._pushed[f] = self._stamp(f)
                count += 1
        return count

    # ------------------------------------------------------------------ execution role
    def on_behalf(self, *needs: Need) -> None:
        """Record what SageMaker is authorized for with the execution role."""
        with self._sync:
            self.execution_role_needs.extend(needs)

    def reads(self, uri: str) -> list[Need]:
        """Reading ``uri`` (an object or a prefix) from S3: the listing and each object under
        it, as the mirror holds them."""
        from include.pipeline.core.s3 import split_s3_uri
        from include.pipeline.targets.local.lake import resolve

        bucket, key = split_s3_uri(uri)
        needs = [Need("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": key})]
        root = resolve(uri, self.lake)
        files = [root] if root.is_file() else sorted(root.rglob("*")) if root.exists() else []
        for f in (p for p in files if p.is_file() and not p.name.startswith(".")):
            object_key = "/".join(f.relative_to(self.lake / bucket).parts)
            needs.append(Need("s3:GetObject", f"arn:aws:s3:::{bucket}/{object_key}", {}))
        return needs

    def runs_containers(self, kind: str, name: str, request: dict) -> None:
        """What starting ``request``'s containers takes: its S3 inputs (any ``s3://`` value but
        the outputs), its images from ECR, its log stream, the role passed on by Autopilot."""
        for uri in _s3_uris(request):
            self.on_behalf(*self.reads(uri))
        images = list(_images(request))
        if images:
            self.on_behalf(Need("ecr:GetAuthorizationToken", "*", {}))
        for image in images:
            match = _ECR_IMAGE.match(image)
            if not match:  # a test's stand-in name: nothing pulled from ECR
                continue
            account, region, repository = match.groups()
            arn = f"arn:aws:ecr:{region}:{account}:repository/{repository}"
            self.on_behalf(
                *(
                    Need(a, arn, {})
                    for a in (
                        "ecr:BatchCheckLayerAvailability",
                        "ecr:GetDownloadUrlForLayer",
                        "ecr:BatchGetImage",
                    )
                )
            )
        group = _LOG_GROUP.get(kind, f"/aws/sagemaker/Endpoints/{name}")
        group_arn = f"arn:aws:logs:{self.region}:{ACCOUNT}:log-group:{group}"
        stream_arn = f"{group_arn}:log-stream:{name}/algo-1"
        self.on_behalf(
            Need("logs:CreateLogGroup", group_arn, {}),
            Need("logs:DescribeLogStreams", group_arn, {}),
            Need("logs:CreateLogStream", stream_arn, {}),
            Need("logs:PutLogEvents", stream_arn, {}),
        )
        if kind == "AutoML":  # its processing, training and transform jobs get the same role
            self.on_behalf(Need("iam:PassRole", request["RoleArn"], PASSED_TO_SAGEMAKER))

    # ------------------------------------------------------------------ jobs
    def container_environment(self, feature_store_url: str) -> dict[str, str]:
        """What a SageMaker container finds in its environment (region, role credentials), with
        the endpoints pointed at moto and the local feature store runtime."""
        from include.pipeline.targets.local.featurestore import runtime

        return {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": self.url,
            runtime.ENDPOINT_ENV: feature_store_url,
        }

    def start(self, name: str, work) -> None:
        """Run ``work`` in the background, as SageMaker runs a job after Create returns."""

        def run():
            try:
                work()
            except Exception:  # noqa: BLE001 - recorded, and the job is marked Failed by work
                self.errors.append(f"{name}: {traceback.format_exc()}")
                self.log(self.errors[-1])

        thread = threading.Thread(target=run, name=f"data-plane-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def start_job(self, name: str, job, kind: str, work) -> None:
        """Run ``work`` in the background for moto's ``job`` of ``kind`` (``processing``,
        ``training``, ...): a crash marks it Failed with the reason, and it ends when work does
        (a training job's end time is its describe's, set by ``work``)."""

        def tracked():
            try:
                work()
            except Exception as exc:
                job.failure_reason = f"data plane: {type(exc).__name__}: {exc}"[:1024]
                setattr(job, f"{kind}_job_status", "Failed")
                if kind == "training":
                    job.secondary_status = "Failed"
                raise
            finally:
                job.last_modified_time = _now()
                if kind != "training":
                    setattr(job, f"{kind}_end_time", job.last_modified_time)

        self.start(name, tracked)

    def run_job(self, kind: str, request: dict, runner) -> dict:
        """Pull, run ``runner(request, lake=, log=)`` with the container environment, return its
        describe; the offline stores the job wrote reach S3 (now or ``offline_delay_s`` later)."""
        from include.pipeline.targets.local.featurestore import runtime

        self.pull()
        name = request.get(f"{kind}JobName")
        self.jobs_run.append(f"{kind}:{name}")
        self.runs_containers(kind, name, request)
        with runtime.serve(self.store_lake) as feature_store_url:
            env = {
                **(request.get("Environment") or {}),
                **self.container_environment(feature_store_url),
            }
            describe = runner({**request, "Environment": env}, lake=self.lake, log=self.log)
        if self._offline_files():
            self.on_behalf(
                *(
                    Need("sagemaker:PutRecord", _feature_group_arn(self.region, g), {})
                    for g in self._groups()
                )
            )
            if self.offline_delay_s:
                timer = threading.Timer(self.offline_delay_s, self.push_offline_stores)
                timer.daemon = True
                timer.start()
            else:
                self.push_offline_stores()
        return describe

    def _groups(self) -> list[dict]:
        from include.pipeline.targets.local.featurestore import store

        folder = self.store_lake / "_featurestore" / "groups"
        return [
            store.describe_feature_group(p.stem, self.store_lake) for p in folder.glob("*.json")
        ]

    def _offline_files(self) -> list[Path]:
        from include.pipeline.targets.local.lake import resolve

        files = []
        for group in self._groups():
            root = resolve(
                group["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"],
                self.store_lake,
            )
            files += [p for p in root.rglob("*.parquet")] if root.exists() else []
        return files

    def push_offline_stores(self) -> None:
        for group in self._groups():
            uri = group["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"]
            self.push(uri, source=self.store_lake)

    def processing(self, request: dict, job) -> None:
        from include.pipeline.targets.local.sagemaker import jobs

        job.processing_job_status, job.processing_end_time = "InProgress", None
        job.processing_start_time = _now()

        def work():
            describe = self.run_job("Processing", request, jobs.run_processing_job)
            if describe["ProcessingJobStatus"] == "Completed":
                for out in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
                    self.push(out["S3Output"]["S3Uri"])
            job.failure_reason = describe.get("FailureReason")
            job.exit_message = describe.get("ExitMessage")
            job.processing_job_status = describe["ProcessingJobStatus"]

        self.start_job(request["ProcessingJobName"], job, "processing", work)

    def training(self, request: dict, job) -> None:
        from include.pipeline.targets.local.sagemaker import jobs

        job.training_job_status, job.secondary_status = "InProgress", "Starting"
        job.model_artifacts = job.final_metric_data_list = job.training_end_time = None
        if request.get("ProfilerRuleConfigurations"):  # moto drops what it does not model
            job.profiler_rule_configurations = request["ProfilerRuleConfigurations"]
        rules = [
            *(request.get("DebugRuleConfigurations") or []),
            *(request.get("ProfilerRuleConfigurations") or []),
        ]
        in_progress = [
            {
                "RuleConfigurationName": r["RuleConfigurationName"],
                "RuleEvaluationStatus": "InProgress",
            }
            for r in rules
        ]
        job.debug_rule_evaluation_statuses = in_progress or None

        def work():
            describe = self.run_job("Training", request, jobs.run_training_job)
            output = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
            self.push(f"{output}/{request['TrainingJobName']}/")
            if request.get("CheckpointConfig"):
                self.push(request["CheckpointConfig"]["S3Uri"])
            for field in (
                "ModelArtifacts",
                "FinalMetricDataList",
                "TrainingStartTime",
                "TrainingEndTime",
                "TrainingTimeInSeconds",
                "BillableTimeInSeconds",
                "DebugRuleEvaluationStatuses",
                "ProfilerRuleEvaluationStatuses",
                "FailureReason",
            ):
                setattr(job, _snake(field), describe.get(field))
            job.secondary_status = describe["SecondaryStatus"]
            job.training_job_status = describe["TrainingJobStatus"]

        self.start_job(request["TrainingJobName"], job, "training", work)

    def transform(self, request: dict, job, model_request: dict) -> None:
        from include.pipeline.targets.local.sagemaker import transform

        job.transform_job_status = "InProgress"

        def work():
            self.pull()
            self.runs_containers("Transform", request["TransformJobName"], request)
            self.runs_containers("Transform", request["TransformJobName"], model_request)
            self._create_local_model(model_request)
            describe = transform.run_transform_job(request, lake=self.lake, log=self.log)
            self.push(request["TransformOutput"]["S3OutputPath"])
            job.failure_reason = describe.get("FailureReason", "")
            job.transform_job_status = describe["TransformJobStatus"]

        self.start_job(request["TransformJobName"], job, "transform", work)

    def tuning(self, request: dict, job) -> None:
        """A tuning job's trials through the local tuning engine (Optuna); each trial's output
        reaches S3 as it ends, the best trial lands in moto's describe when the job does."""
        from include.pipeline.targets.local.sagemaker import tuning

        job.hyper_parameter_tuning_job_status = "InProgress"
        job.best_training_job = job.OverallBestTrainingJob = None  # moto's canned best trial
        job.hyper_parameter_tuning_end_time = job.tuning_job_completion_details = None
        job.consumed_resources = None
        output = request["TrainingJobDefinition"]["OutputDataConfig"]["S3OutputPath"].rstrip("/")

        def trial_ended(describe: dict) -> None:
            self.push(f"{output}/{describe['TrainingJobName']}/")
            self.jobs_run.append(f"TuningTrial:{describe['TrainingJobName']}")

        def runner(req: dict, *, lake: Path, log) -> dict:
            env = req.pop("Environment")  # the trials' containers get it
            definition = req["TrainingJobDefinition"]
            definition = {**definition, "Environment": {**definition.get("Environment", {}), **env}}
            return tuning.run_tuning_job(
                {**req, "TrainingJobDefinition": definition},
                lake=lake,
                log=log,
                on_training_job=trial_ended,
            )

        def work():
            describe = self.run_job("HyperParameterTuning", request, runner)
            job.best_training_job = describe.get("BestTrainingJob")
            job.OverallBestTrainingJob = describe.get("OverallBestTrainingJob")
            job.training_job_status_counters = describe["TrainingJobStatusCounters"]
            job.objective_status_counters = describe["ObjectiveStatusCounters"]
            job.failure_reason = describe.get("FailureReason", "")
            job.hyper_parameter_tuning_job_status = describe["HyperParameterTuningJobStatus"]

        self.start_job(request["HyperParameterTuningJobName"], job, "hyper_parameter_tuning", work)

    def automl(self, request: dict) -> dict:
        """Start a (V1) AutoML job on the local FLAML engine; returns its first describe.
        moto models only the V2 API, so the harness keeps V1 jobs itself (:attr:`automl_jobs`)."""
        from include.pipeline.targets.local.sagemaker import automl

        name, now = request["AutoMLJobName"], _now()
        describe = {
            "AutoMLJobName": name,
            "AutoMLJobArn": f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:automl-job/{name.lower()}",
            **{
                k: request[k]
                for k in (
                    "InputDataConfig",
                    "OutputDataConfig",
                    "RoleArn",
                    "AutoMLJobObjective",
                    "ProblemType",
                    "AutoMLJobConfig",
                )
                if k in request
            },
            "CreationTime": now,
            "LastModifiedTime": now,
            "AutoMLJobStatus": "InProgress",
            "AutoMLJobSecondaryStatus": "Starting",
        }
        self.automl_jobs[name] = {"describe": describe, "candidates": []}
        output = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")

        def runner(req: dict, *, lake: Path, log) -> dict:
            req.pop("Environment")  # an AutoML request has none; its containers are AWS's
            return automl.run_automl_job(req, lake=lake, log=log)

        def work():
            try:
                done = self.run_job("AutoML", request, runner)
                self.push(f"{output}/{name}/")
                candidates = (
                    automl.list_candidates(name, self.lake) if done.get("BestCandidate") else []
                )
                self.automl_jobs[name] = {"describe": done, "candidates": candidates}
            except Exception as exc:
                describe.update(
                    AutoMLJobStatus="Failed",
                    AutoMLJobSecondaryStatus="Failed",
                    FailureReason=f"data plane: {type(exc).__name__}: {exc}"[:1024],
                    EndTime=_now(),
                    LastModifiedTime=_now(),
                )
                raise

        self.start(name, work)
        return describe

    def stop_automl(self, name: str) -> None:
        """StopAutoMLJob: the job says Stopping, and the local engine's job is stopped (once it
        has started: the harness may still be pulling its input); it then ends Stopped."""
        from include.pipeline.targets.local.sagemaker import jobs

        describe = self.automl_jobs[name]["describe"]
        if describe["AutoMLJobStatus"] != "InProgress":
            raise ValueError(f"AutoML job {name} is {describe['AutoMLJobStatus']}")
        describe.update(AutoMLJobStatus="Stopping", LastModifiedTime=_now())

        def running() -> bool:
            current = self.automl_jobs[name]["describe"]
            return current is describe and describe["AutoMLJobStatus"] == "Stopping"

        def stop() -> None:
            while running() and not jobs.stop_job(name):
                time.sleep(0.1)

        threading.Thread(target=stop, name=f"data-plane-stop-{name}", daemon=True).start()

    def roll_back_next_update(self, endpoint_name: str, alarm_reason: str) -> None:
        """The next UpdateEndpoint of ``endpoint_name`` is rolled back, as SageMaker does when a
        rollback alarm trips during a blue/green shift: its alarms go to ALARM (``alarm_reason``)
        and the endpoint returns to InService on the config it served."""
        self.rollbacks[endpoint_name] = alarm_reason

    def update_endpoint(self, endpoint, config, request: dict) -> None:
        """Updating for :attr:`update_seconds`, then on the new config (or rolled back)."""
        endpoint.endpoint_status = "Updating"
        endpoint.pending_deployment_summary = {
            "EndpointConfigName": config.endpoint_config_name,
            "StartTime": _now(),
        }
        reason = self.rollbacks.pop(endpoint.endpoint_name, None)
        # During a blue/green shift SageMaker watches the rollback alarms with the role.
        from include.pipeline.targets import waits

        self.on_behalf(
            *(
                Need(
                    "cloudwatch:DescribeAlarms",
                    f"arn:aws:cloudwatch:{self.region}:{ACCOUNT}:alarm:{a}",
                    {},
                )
                for a in waits.rollback_alarms(request)
            )
        )

        def work():
            time.sleep(self.update_seconds)
            if reason is None:
                endpoint.endpoint_config_name = config.endpoint_config_name
                endpoint.production_variants = endpoint._process_production_variants(
                    config.production_variants
                )
            else:
                cloudwatch = _client("cloudwatch", self.url, self.region)
                for alarm in waits.rollback_alarms(request):
                    cloudwatch.set_alarm_state(
                        AlarmName=alarm, StateValue="ALARM", StateReason=reason
                    )
                self.log(f"endpoint {endpoint.endpoint_name}: update rolled back ({reason})")
            endpoint.pending_deployment_summary = None
            endpoint.last_modified_time = _now()
            endpoint.endpoint_status = "InService"

        self.start(f"update-{endpoint.endpoint_name}", work)

    def _create_local_model(self, model_request: dict) -> None:
        from include.pipeline.targets.local.endpoint import models

        try:
            models.create_model(model_request, self.lake, self.region)
        except models.SageMakerValidationError:
            models.delete_model(model_request["ModelName"], self.lake)  # a new request, same name
            models.create_model(model_request, self.lake, self.region)

    # ------------------------------------------------------------------ Athena, Glue, store
    def mirror_glue(self) -> None:
        """moto's Glue catalog into the mirror's local catalog (what the DuckDB views read)."""
        from include.pipeline.targets.local import catalog

        def keep(doc: dict, keys: tuple[str, ...]) -> dict:
            return {k: doc[k] for k in keys if k in doc}

        for db in self.glue.get_databases()["DatabaseList"]:
            with suppress(catalog.AlreadyExists):
                catalog.create_database(
                    self.lake, DatabaseInput=keep(db, ("Name", "Description", "LocationUri"))
                )
            for table in self.glue.get_tables(DatabaseName=db["Name"])["TableList"]:
                table_input = keep(
                    table,
                    ("Name", "StorageDescriptor", "PartitionKeys", "Parameters", "TableType"),
                )
                with suppress(catalog.AlreadyExists):
                    catalog.create_table(self.lake, DatabaseName=db["Name"], TableInput=table_input)
                parts = self.glue.get_partitions(DatabaseName=db["Name"], TableName=table["Name"])
                for part in parts["Partitions"]:
                    with suppress(catalog.AlreadyExists):
                        catalog.create_partition(
                            self.lake,
                            DatabaseName=db["Name"],
                            TableName=table["Name"],
                            PartitionInput=keep(
                                part, ("Values", "StorageDescriptor", "Parameters")
                            ),
                        )

    def query(self, query_id: str, query: str, context: dict | None, output_uri: str) -> list:
        """Run one query to its result object; returns its rows (the header first), as
        GetQueryResults pages them."""
        import csv

        from include.pipeline.targets.local import athena
        from include.pipeline.targets.local.lake import resolve

        with self._sync:
            self.pull()
            self.mirror_glue()
            database = (context or {}).get("Database")
            for table_db, table in query_tables(query, database):
                with suppress(self.glue.exceptions.EntityNotFoundException):  # a WITH name
                    described = self.glue.get_table(DatabaseName=table_db, Name=table)["Table"]
                    self.athena_caller_needs += self.reads(
                        described["StorageDescriptor"]["Location"]
                    )
            con = athena.connect(self.lake, database)
            try:
                relation = con.sql(query)
                target = resolve(output_uri, self.lake)
                target.parent.mkdir(parents=True, exist_ok=True)
                relation.write_csv(str(target), header=True, quoting=csv.QUOTE_ALL)
                target.with_name(target.name + ".metadata").write_bytes(ATHENA_METADATA)
            finally:
                con.close()
            self.push(output_uri, as_execution_role=False)
            self.push(output_uri + ".metadata", as_execution_role=False)
        self.log(f"query {query_id}: {output_uri}")
        with resolve(output_uri, self.lake).open(newline="") as fh:
            return list(csv.reader(fh))

    def create_feature_group(self, request: dict) -> dict:
        """The group in the local store; returns its OfflineStoreConfig (location, Glue table)."""
        from include.pipeline.targets.local.featurestore import store

        described = store.create_feature_group(request, self.store_lake, region=self.region)
        groups = self.lake / "_featurestore" / "groups"  # Athena's DuckDB reads the definition
        groups.mkdir(parents=True, exist_ok=True)
        name = request["FeatureGroupName"]
        shutil.copy(self.store_lake / "_featurestore" / "groups" / f"{name}.json", groups)
        # SageMaker creates the offline store's Glue table with the group's role.
        catalog = described["OfflineStoreConfig"].get("DataCatalogConfig")
        if catalog:
            base = f"arn:aws:glue:{self.region}:{ACCOUNT}"
            arns = [
                f"{base}:catalog",
                f"{base}:database/{catalog['Database']}",
                f"{base}:table/{catalog['Database']}/{catalog['TableName']}",
            ]
            self.on_behalf(
                *(
                    Need(a, arn, {})
                    for a in ("glue:GetDatabase", "glue:CreateTable")
                    for arn in arns
                )
            )
        return described["OfflineStoreConfig"]

    def invoke(
        self,
        endpoint_name: str,
        model_request: dict,
        body: bytes,
        content_type: str,
        accept: str | None,
    ):
        from include.pipeline.targets.local.endpoint import models

        with self._sync:
            self.pull()
            self.runs_containers("Endpoint", endpoint_name, model_request)
            self._create_local_model(model_request)
        handler = models.load_handler(model_request["ModelName"], self.lake)
        try:
            return handler.predict(body, content_type, accept)
        finally:
            handler.close()

    def wait(self, timeout: float = 600) -> None:
        """Until every background job has ended."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _s3_uris(doc):
    """Every ``s3://`` value of a request (hyperparameters' JSON-quoted ones too), outputs left
    out: what the containers read."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if "Output" not in key:
                yield from _s3_uris(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _s3_uris(value)
    elif isinstance(doc, str) and doc.strip('"').startswith("s3://"):
        yield doc.strip('"')


def _images(doc):
    """The container images a request names."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("ImageUri", "TrainingImage", "Image") and isinstance(value, str):
                yield value
            else:
                yield from _images(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _images(value)


def _feature_group_arn(region: str, group: dict) -> str:
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:feature-group/{group['FeatureGroupName'].lower()}"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# The SageMaker quotas of the harness's account (moto knows none): what docs/aws.md asks a new
# account to request, which check_configuration compares with the run's needs.
ACCOUNT_QUOTAS = {
    "ml.g4dn.xlarge for training job usage": 1,
    "ml.c5.2xlarge for training job usage": 1,
    "ml.c5.2xlarge for processing job usage": 3,
    "ml.m5.xlarge for processing job usage": 4,
    "ml.m5.xlarge for endpoint usage": 2,
    "ml.m5.xlarge for transform job usage": 1,
}


@contextmanager
def data_plane(url: str, root: Path, *, region: str = "us-east-1", offline_delay_s: float = 0.0):
    """Install the data plane on moto's backends for the block; yields the :class:`DataPlane`."""
    from moto.athena.models import AthenaBackend, QueryResults
    from moto.athena.responses import AthenaResponse
    from moto.core.exceptions import JsonRESTError, ServiceException
    from moto.core.responses import ActionResult
    from moto.sagemaker.exceptions import ResourceInUseException, ResourceNotFound, ValidationError
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse
    from moto.servicequotas.responses import ServiceQuotasResponse

    from include.pipeline.targets.local.sagemaker import jobs
    from tests.image_env import image_process

    plane = DataPlane(url, root, region=region, offline_delay_s=offline_delay_s)
    saved = {  # None: an action moto lacks, removed again afterwards
        (SageMakerResponse, n): getattr(SageMakerResponse, n, None)
        for n in (
            "create_processing_job",
            "create_training_job",
            "create_transform_job",
            "create_hyper_parameter_tuning_job",
            "create_feature_group",
            "create_auto_ml_job",
            "describe_auto_ml_job",
            "list_candidates_for_auto_ml_job",
            "stop_auto_ml_job",
        )
    }
    saved[(SageMakerResponse, "update_endpoint")] = getattr(
        SageMakerResponse, "update_endpoint", None
    )
    saved[(SageMakerRuntimeResponse, "invoke_endpoint")] = SageMakerRuntimeResponse.invoke_endpoint
    saved[(AthenaBackend, "start_query_execution")] = AthenaBackend.start_query_execution
    saved[(AthenaResponse, "get_query_execution")] = AthenaResponse.get_query_execution
    for name in ("list_aws_default_service_quotas", "list_service_quotas"):
        saved[(ServiceQuotasResponse, name)] = getattr(ServiceQuotasResponse, name, None)

    def original(cls, name):
        return saved[(cls, name)]

    def create_processing_job(self):
        result = original(SageMakerResponse, "create_processing_job")(self)
        request = json.loads(self.body)
        plane.processing(
            request, self.sagemaker_backend.processing_jobs[request["ProcessingJobName"]]
        )
        return result

    def create_training_job(self):
        result = original(SageMakerResponse, "create_training_job")(self)
        request = json.loads(self.body)
        plane.training(request, self.sagemaker_backend.training_jobs[request["TrainingJobName"]])
        return result

    def create_transform_job(self):
        result = original(SageMakerResponse, "create_transform_job")(self)
        request = json.loads(self.body)
        backend = self.sagemaker_backend
        job = backend.transform_jobs[request["TransformJobName"]]
        plane.transform(request, job, _model_request(backend, request["ModelName"]))
        return result

    def create_hyper_parameter_tuning_job(self):
        result = original(SageMakerResponse, "create_hyper_parameter_tuning_job")(self)
        request = json.loads(self.body)
        name = request["HyperParameterTuningJobName"]
        plane.tuning(request, self.sagemaker_backend.hyper_parameter_tuning_jobs[name])
        return result

    def automl_job(name: str) -> dict:
        if name not in plane.automl_jobs:
            raise ResourceNotFound(message=f"Could not find AutoML job with name {name}.")
        return plane.automl_jobs[name]

    def create_auto_ml_job(self):
        request = json.loads(self.body)
        if request["AutoMLJobName"] in plane.automl_jobs:
            raise ResourceInUseException(
                message=f"Job with name {request['AutoMLJobName']} already exists."
            )
        return ActionResult({"AutoMLJobArn": plane.automl(request)["AutoMLJobArn"]})

    def describe_auto_ml_job(self):
        return ActionResult(automl_job(self._get_param("AutoMLJobName"))["describe"])

    def list_candidates_for_auto_ml_job(self):
        return ActionResult(
            {"Candidates": automl_job(self._get_param("AutoMLJobName"))["candidates"]}
        )

    def stop_auto_ml_job(self):
        name = self._get_param("AutoMLJobName")
        automl_job(name)
        try:
            plane.stop_automl(name)
        except ValueError as exc:  # as SageMaker answers a Stop* of an ended job
            raise ValidationError(message=str(exc)) from exc
        return ActionResult({})

    def create_feature_group(self):
        result = original(SageMakerResponse, "create_feature_group")(self)
        request = json.loads(self.body)
        (group,) = [
            g
            for g in self.sagemaker_backend.feature_groups.values()
            if g.feature_group_name == request["FeatureGroupName"]
        ]
        group.offline_store_config = plane.create_feature_group(request)
        return result

    def update_endpoint(self):
        """moto has no UpdateEndpoint: the harness answers it as SageMaker does."""
        backend = self.sagemaker_backend
        name, config_name = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
        if name not in backend.endpoints:
            raise ValidationError(message=f'Could not find endpoint "{name}".')
        if config_name not in backend.endpoint_configs:
            raise ValidationError(message=f'Could not find endpoint configuration "{config_name}".')
        endpoint = backend.endpoints[name]
        if endpoint.endpoint_status != "InService":
            raise ValidationError(message=f'Cannot update in-progress endpoint "{endpoint.arn}".')
        plane.update_endpoint(
            endpoint, backend.endpoint_configs[config_name], json.loads(self.body)
        )
        return ActionResult({"EndpointArn": endpoint.arn})

    def invoke_endpoint(self):
        backend = _sagemaker_backend(self.current_account, self.region)
        name = self.path.split("/")[2]
        endpoint = backend.endpoints[name]
        config = backend.endpoint_configs[endpoint.endpoint_config_name]
        variant = config.production_variants[0]
        body, content_type = plane.invoke(
            name,
            _model_request(backend, variant["ModelName"]),
            self.body if isinstance(self.body, bytes) else self.body.encode(),
            self.headers.get("Content-Type", "application/json"),
            self.headers.get("Accept"),
        )
        return (
            200,
            {
                "Content-Type": content_type,
                "x-Amzn-Invoked-Production-Variant": variant["VariantName"],
            },
            body,
        )

    def start_query_execution(self, query, context, config, workgroup, execution_parameters):
        qid = original(AthenaBackend, "start_query_execution")(
            self, query, context, config, workgroup, execution_parameters
        )
        execution = self.executions[qid]
        try:
            rows = plane.query(qid, query, context, execution.config["OutputLocation"])
            self.query_results[qid] = QueryResults(
                rows=[{"Data": [{"VarCharValue": v} for v in row]} for row in rows],
                column_info=[{"Name": n, "Label": n, "Type": "varchar"} for n in rows[0]],
            )
        except Exception as exc:  # noqa: BLE001 - the query's failure, as Athena reports it
            plane.query_failures[qid] = str(exc).splitlines()[0]
            plane.log(f"query {qid} FAILED: {exc}")
            execution.status = "FAILED"
        return qid

    def get_query_execution(self):
        answer = original(AthenaResponse, "get_query_execution")(self)
        qid = self._get_param("QueryExecutionId")
        if qid not in plane.query_failures:
            return answer
        document = json.loads(answer)
        document["QueryExecution"]["Status"].update(
            State="FAILED", StateChangeReason=plane.query_failures[qid]
        )
        return json.dumps(document)

    def sagemaker_quotas(self):
        """ListAWSDefaultServiceQuotas / ListServiceQuotas of SageMaker (moto has neither for
        it): the harness's account, :data:`ACCOUNT_QUOTAS`."""
        if json.loads(self.body).get("ServiceCode") != "sagemaker":
            raise ServiceException("NoSuchResourceException", "the harness knows SageMaker's only")
        quotas = [
            {"ServiceCode": "sagemaker", "QuotaName": name, "QuotaCode": f"L-{i:08X}", "Value": v}
            for i, (name, v) in enumerate(sorted(ACCOUNT_QUOTAS.items()))
        ]
        return json.dumps({"Quotas": quotas})

    hooks = {
        (ServiceQuotasResponse, "list_aws_default_service_quotas"): sagemaker_quotas,
        (ServiceQuotasResponse, "list_service_quotas"): sagemaker_quotas,
        (SageMakerResponse, "create_processing_job"): create_processing_job,
        (SageMakerResponse, "create_training_job"): create_training_job,
        (SageMakerResponse, "create_transform_job"): create_transform_job,
        (SageMakerResponse, "create_hyper_parameter_tuning_job"): create_hyper_parameter_tuning_job,
        (SageMakerResponse, "create_auto_ml_job"): create_auto_ml_job,
        (SageMakerResponse, "describe_auto_ml_job"): describe_auto_ml_job,
        (SageMakerResponse, "list_candidates_for_auto_ml_job"): list_candidates_for_auto_ml_job,
        (SageMakerResponse, "stop_auto_ml_job"): stop_auto_ml_job,
        (SageMakerResponse, "create_feature_group"): create_feature_group,
        (SageMakerResponse, "update_endpoint"): update_endpoint,
        (SageMakerRuntimeResponse, "invoke_endpoint"): invoke_endpoint,
        (AthenaBackend, "start_query_execution"): start_query_execution,
        (AthenaResponse, "get_query_execution"): get_query_execution,
    }

    def recorded(name, hook):
        """A fault in a hook is a harness error the test reports (moto would answer 500 and
        botocore retry, hiding it)."""

        def call(*args, **kwargs):
            try:
                return hook(*args, **kwargs)
            except (ServiceException, JsonRESTError):
                raise  # the service's own answer (no such job, already exists), not a fault
            except Exception:
                plane.errors.append(f"{name}: {traceback.format_exc()}")
                raise

        return call

    for (cls, name), hook in hooks.items():
        setattr(cls, name, recorded(name, hook))
    try:
        with jobs.process_setup(plane.lake, partial(image_process, log=plane.log)):
            yield plane
    finally:
        for (cls, name), method in saved.items():
            if method is None:
                delattr(cls, name)
            else:
                setattr(cls, name, method)


def _sagemaker_backend(account: str, region: str):
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[account][region]


def _model_request(backend, model_name: str) -> dict:
    """The CreateModel request moto keeps for ``model_name``."""
    model = backend._models[model_name]
    request = {"ModelName": model_name, "ExecutionRoleArn": model.execution_role_arn}
    if model.primary_container:
        request["PrimaryContainer"] = model.primary_container
    if model.containers:
        request["Containers"] = model.containers
    return _from_packages(backend, request)


def _from_packages(backend, request: dict) -> dict:
    """A model created from a model package as the local host serves it: the containers of the
    version in moto's registry (the local registry is not the twin's), as SageMaker copies them."""
    containers = [request["PrimaryContainer"]] if "PrimaryContainer" in request else []
    containers += request.get("Containers") or []
    if not any(c.get("ModelPackageName") for c in containers):
        return request
    resolved = []
    for container in containers:
        name = container.get("ModelPackageName")
        if not name:
            resolved.append(container)
            continue
        package = backend.describe_model_package(name)
        if package.model_approval_status != "Approved":
            raise ValueError(f"model package {name} is {package.model_approval_status}")
        resolved += package.inference_specification["Containers"]
    base = {k: v for k, v in request.items() if k not in ("PrimaryContainer", "Containers")}
    return {**base, "Containers": resolved}
