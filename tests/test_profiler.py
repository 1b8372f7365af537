"""The training job's profiler (include/jobs/profiler.py) and the profiler rules computed from
what it recorded (include/pipeline/profiler_rules.py): a real train.py run on a tiny BERT, and
recorded metrics in Debugger's record shape for what this machine cannot produce (a GPU)."""

from __future__ import annotations

import io
import json
import tarfile
import time

import pytest

from include.jobs import profiler, train
from include.pipeline import profiler_rules
from include.pipeline.profiler_rules import Profile, profile_from_files
from include.pipeline.requests.training import PROFILER_RULE, rule_configurations
from include.pipeline.training_rules import evaluate_rules
from tests.test_train import args, job, tiny_model  # noqa: F401 - fixtures

IMAGE = "rules:latest"


def record(t: float, kind: str, name: str, dimension: str, value: float) -> dict:
    return {"Timestamp": t, "Type": kind, "Name": name, "Dimension": dimension, "Value": value}


def recorded_profile(
    *, gpu: list[float] | None = None, cpu: float = 40.0, samples: int = 40, **timeline
) -> Profile:
    """A profile as the job records it: two cores every 500 ms, a GPU's utilisation when given
    (cycled over the samples), and a timeline of 100 steps of 0.2 s."""
    system = []
    for i in range(samples):
        t = 1000.0 + 0.5 * i
        system += [record(t, "cpu", f"cpu{c}", "CPUUtilization", cpu) for c in (0, 1)]
        system.append(record(t, "memory", "memory", "MemoryUsedPercent", 30.0))
        if gpu is not None:
            system.append(record(t, "gpu", "gpu0", "GPUUtilization", gpu[i % len(gpu)]))
    steps = {
        "device": "cuda:0" if gpu is not None else "cpu",
        "job_start": 1000.0,
        "first_step_start": 1012.0,
        "training_end": 1040.0,
        "step_seconds": [0.2] * 100,
        "wait_seconds": [0.002] * 100,
        "profiled_steps": list(range(5, 15)),
    } | timeline
    return Profile(system=system, timeline=profiler.StepTimeline.from_dict(steps))


def findings(profile: Profile, params: dict | None = None) -> dict[str, profiler_rules.Finding]:
    return {f.rule: f for f in profiler_rules.evaluate(profile, params)}


def test_the_training_job_records_system_metrics_steps_and_a_framework_profile(
    job,  # noqa: F811
    tiny_model,  # noqa: F811
    monkeypatch,
):
    # The job runs inside this test process, started long before (a container's job is a
    # process of its own): its start is now.
    started = time.time()
    monkeypatch.setattr(profiler, "_process_start", lambda: started)
    train.main([*args(tiny_model), "--profiler_interval_ms", "20"])
    out = job["SM_OUTPUT_DATA_DIR"]
    records = profiler.read_system_metrics((out / profiler.SYSTEM_FILE).read_text())
    dimensions = {r["Dimension"] for r in records}
    assert {"CPUUtilization", "MemoryUsedPercent"} <= dimensions
    assert all(0 <= r["Value"] <= 100 for r in records if r["Dimension"] == "CPUUtilization")
    steps = json.loads((out / profiler.STEPS_FILE).read_text())
    assert steps["device"] == "cpu" and len(steps["step_seconds"]) == 18  # 288 rows / 16
    assert all(
        0 <= w <= s for w, s in zip(steps["wait_seconds"], steps["step_seconds"], strict=True)
    )
    assert steps["job_start"] < steps["first_step_start"] < steps["training_end"]
    # The course's FrameworkProfile(start_step=5, num_steps=10): torch.profiler on steps 5..14.
    framework = json.loads((out / profiler.FRAMEWORK_FILE).read_text())
    assert framework["profiled_steps"] == list(range(5, 15)) == steps["profiled_steps"]
    names = [o["name"] for o in framework["operators"]]
    assert any(name.startswith("aten::") for name in names), names
    # The pipeline reads the same files back and judges them.
    files = {
        name: (out / name).read_bytes()
        for name in (profiler.SYSTEM_FILE, profiler.STEPS_FILE, profiler.FRAMEWORK_FILE)
    }
    verdicts = findings(profile_from_files(files))
    assert verdicts["LowGPUUtilization"].fired is None  # a CPU job
    assert verdicts["MaxInitializationTime"].fired is False
    assert "18 steps" in verdicts["DataloaderWait"].details


def test_profiling_can_be_switched_off(job, tiny_model):  # noqa: F811
    train.main([*args(tiny_model), "--profiler_interval_ms", "0", "--profile_num_steps", "0"])
    out = job["SM_OUTPUT_DATA_DIR"]
    assert not (out / profiler.SYSTEM_FILE).exists()
    assert json.loads((out / profiler.FRAMEWORK_FILE).read_text())["operators"] == []
    assert len(json.loads((out / profiler.STEPS_FILE).read_text())["step_seconds"]) == 18


def test_low_gpu_utilization_on_recorded_gpu_metrics():
    params = {"LowGPUUtilization_patience": "0"}
    idle = findings(recorded_profile(gpu=[20, 35, 50, 30]), params)["LowGPUUtilization"]
    assert idle.fired is True and "underused" in idle.details and "p95 50%" in idle.details
    stalling = findings(recorded_profile(gpu=[95, 97, 2, 96]), params)["LowGPUUtilization"]
    assert stalling.fired is True and "stalling" in stalling.details
    busy = findings(recorded_profile(gpu=[88, 92, 95, 90]), params)["LowGPUUtilization"]
    assert busy.fired is False and "busy" in busy.details
    # Debugger's default patience (1000 samples) leaves a 40-sample job unjudged.
    assert findings(recorded_profile(gpu=[20]))["LowGPUUtilization"].fired is None


def test_cpu_bottleneck_on_recorded_gpu_metrics():
    params = {"CPUBottleneck_patience": "0"}
    starved = findings(recorded_profile(gpu=[3, 5], cpu=97.0), params)["CPUBottleneck"]
    assert starved.fired is True and "40 of 40 samples" in starved.details
    fed = findings(recorded_profile(gpu=[90, 95], cpu=97.0), params)["CPUBottleneck"]
    assert fed.fired is False
    cpu_job = findings(recorded_profile(cpu=99.0), params)["CPUBottleneck"]
    assert cpu_job.fired is None and "no GPU" in cpu_job.details


def test_step_outliers_dataloader_waits_and_initialisation_time():
    slow = [0.2] * 100
    for i in (20, 40, 60):  # three steps ten times slower than the rest
        slow[i] = 2.0
    slow[6] = 9.0  # a profiled step: torch.profiler's own overhead, left out
    verdicts = findings(recorded_profile(step_seconds=slow), {"StepOutlier_n_outliers": "2"})
    assert verdicts["StepOutlier"].fired is True
    assert "3 of 89 steps" in verdicts["StepOutlier"].details  # 100 - first - 10 profiled
    assert "step 21: 2.000 s" in verdicts["StepOutlier"].details
    # Debugger's default n_outliers (10) lets three pass; steady steps have none.
    assert findings(recorded_profile(step_seconds=slow))["StepOutlier"].fired is False
    assert findings(recorded_profile())["StepOutlier"].details.startswith("0 of 89")
    waiting = findings(recorded_profile(wait_seconds=[0.05] * 100))["DataloaderWait"]
    assert waiting.fired is True and "25.0%" in waiting.details
    late = findings(recorded_profile(first_step_start=1000.0 + 25 * 60))
    assert (
        late["MaxInitializationTime"].fired is True
        and "1500.0 s" in late["MaxInitializationTime"].details
    )
    assert findings(recorded_profile())["MaxInitializationTime"].fired is False
    tolerant = findings(
        recorded_profile(first_step_start=1000.0 + 25 * 60),
        {"MaxInitializationTime_threshold": "30"},
    )
    assert tolerant["MaxInitializationTime"].fired is False


def test_profiler_report_rule_is_evaluated_not_recorded():
    config = rule_configurations(PROFILER_RULE, IMAGE)
    healthy = evaluate_rules(config, {}, profile=recorded_profile())[0]
    assert healthy["RuleEvaluationStatus"] == "NoIssuesFound"
    assert "StepOutlier NoIssuesFound" in healthy["StatusDetails"]
    assert "LowGPUUtilization not applicable" in healthy["StatusDetails"]
    waiting = recorded_profile(wait_seconds=[0.05] * 100)
    issues = evaluate_rules(config, {}, profile=waiting)[0]
    assert issues["RuleEvaluationStatus"] == "IssuesFound"
    assert "DataloaderWait IssuesFound" in issues["StatusDetails"]
    missing = evaluate_rules(config, {}, profile=None)[0]
    assert (
        missing["RuleEvaluationStatus"] == "Error"
        and "no profiler data" in missing["StatusDetails"]
    )


def test_report_html_shows_each_rule_and_the_metrics():
    profile = recorded_profile(gpu=[20, 30])
    page = profiler_rules.report_html(
        profiler_rules.evaluate(profile, {"LowGPUUtilization_patience": "0"}), profile, "job<1>"
    )
    assert "Profiler report: job&lt;1&gt;" in page and "job<1>" not in page
    for rule in profiler_rules.RULES:
        assert rule in page
    assert "GPUUtilization" in page and "Issues found" in page and "100 steps on cuda:0" in page


def test_profile_from_an_output_archive_and_bad_records():
    buffer = io.BytesIO()
    body = json.dumps(recorded_profile().timeline.to_dict()).encode()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(profiler.STEPS_FILE)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    profile = profiler_rules.profile_from_archive(buffer.getvalue(), "s3://b/output.tar.gz")
    assert profile is not None and len(profile.timeline.step_seconds) == 100
    assert profile_from_files({}) is None
    with pytest.raises(ValueError, match="line 2 is not a system-metric record"):
        profiler.read_system_metrics('{"Timestamp": 1, "Dimension": "x", "Value": 1}\n{"Value":')
