"""The candidate registry is the one place that names a kind of model: the rest of the pipeline
asks it, and each kind's serving contract reads its own answers."""

from __future__ import annotations

import json
import re

import pytest

from include.jobs.documents import MODEL_KINDS
from include.pipeline import candidates
from include.pipeline import task_ids as T
from include.pipeline.documents import leaderboard
from include.pipeline.params import PARAMS
from include.pipeline.settings import REPO_ROOT

# Where a kind's name may be written out: the registry, and the container jobs (which import
# nothing of the pipeline). Image and folder names that happen to equal a kind's name are
# constants of their own modules.
ALLOWED = ("include/pipeline/candidates/", "include/jobs/")
SPELLED = {
    "include/pipeline/requests/images.py": 'BLAZINGTEXT_REPOSITORY = "blazingtext"',
    "include/pipeline/requests/text_preparation.py": 'BLAZINGTEXT_FOLDER = "blazingtext"',
}


def test_the_kinds_are_the_evaluation_jobs_and_the_forms():
    assert candidates.NAMES == MODEL_KINDS == leaderboard.CANDIDATES
    assert PARAMS["candidates"].schema["items"]["enum"] == list(candidates.NAMES)
    assert [k for k in candidates.ALL if k.primary] == [candidates.PRIMARY]
    assert set(T.TRAINED) == set(candidates.NAMES)
    with pytest.raises(ValueError, match="'xgboost' is not one of"):
        candidates.get("xgboost")


def test_per_candidate_task_ids_keep_the_primary_unsuffixed():
    assert T.evaluate(candidates.PRIMARY.name) == T.EVALUATE
    assert T.evaluate("blazingtext") == f"{T.EVALUATE}_blazingtext"
    assert T.build_evaluation("autopilot") == "build_evaluation_request_autopilot"
    with pytest.raises(ValueError, match="not one of"):
        T.posttraining_bias("xgboost")


@pytest.mark.parametrize("kind", candidates.ALL, ids=lambda k: k.name)
def test_each_contract_encodes_what_its_endpoint_takes(kind):
    call, read = kind.invocation(["I love this dress", "too small, sent it back"])
    assert call["ContentType"] == kind.content_type and isinstance(call["Body"], str)
    answers = {  # each kind's endpoint's answer for two reviews, as the container gives it
        "finetune": json.dumps([{"predicted_label": 1, "probability": 0.9}] * 2),
        "blazingtext": json.dumps([{"label": ["__label__-1"], "prob": [0.7]}] * 2),
        "autopilot": "1,0.9\n-1,0.8\n",
    }
    predictions = read(answers[kind.name].encode())
    assert len(predictions) == 2
    assert {p["predicted_label"] for p in predictions} <= {-1, 0, 1}


def test_no_other_module_spells_a_kind():
    """A new kind is a module in the registry: nothing else keeps its own list."""
    names = "|".join(candidates.NAMES)
    pattern = re.compile(rf"""["']({names})["']""")
    found = []
    for folder in ("include", "dags", "plugins"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT).as_posix()
            if rel.startswith(ALLOWED):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) and SPELLED.get(rel) not in line:
                    found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
