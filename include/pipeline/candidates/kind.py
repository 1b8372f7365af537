"""What the pipeline asks of a model candidate, declared once per kind (:class:`Kind`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

# An answer as every caller reads it: one ``{"predicted_label", "probability"}`` per review.
Predictions = list[dict]


@dataclass(frozen=True)
class Kind:
    """A kind of model candidate. ``name`` is what the ``candidates`` Param, the leaderboard,
    the registry's lineage and the evaluation job's ``--model_kind`` call it."""

    name: str
    title: str  # what a person reads on the leaderboard and in the docs
    trained_task: str  # the task whose result describes the trained model
    # (DescribeTrainingJob / DescribeAutoMLJob)
    quota: tuple[str, str]  # (instance type, usage) of its own jobs, for the quota check
    content_type: str  # what its endpoint takes
    encode: Callable[[list[str]], str]  # reviews -> the request body of its serving contract
    decode: Callable[[bytes], Predictions]  # its endpoint's answer -> predictions
    accept: str | None = None  # the Accept header its endpoint wants, if any
    # The fine-tune: its steps keep the pipeline's unsuffixed task ids and its evaluation is the
    # run's (the gate's, the summary's).
    primary: bool = False
    text_prepared: bool = False  # trained from prepare_text.py's output
    # Scored by a batch transform of its model (an inference pipeline of several containers)
    # rather than by the evaluation job loading the model.
    batch_scored: bool = False
    # The repository of the image it serves from; None: the project's inference.py on the
    # framework image (script mode).
    serving_repository: str | None = None
    monitoring_baseline: bool = False  # the monitoring baseline job can score its model

    @property
    def script_mode(self) -> bool:
        return self.serving_repository is None

    def task_id(self, base: str) -> str:
        """A per-candidate task's id: ``base`` for the primary kind, ``base_<name>`` else."""
        return base if self.primary else f"{base}_{self.name}"

    def job_prefix(self, base: str) -> str:
        """A per-candidate job name's prefix, as :meth:`task_id` (``-`` joins: AWS names)."""
        return base if self.primary else f"{base}-{self.name}"

    def invocation(self, reviews: list[str]) -> tuple[dict, Callable[[bytes], Predictions]]:
        """InvokeEndpoint's arguments (less EndpointName) for ``reviews`` in this kind's
        contract, and how its answer reads. The smoke test and the demo's curl example use it."""
        call = {"ContentType": self.content_type, "Body": self.encode(reviews)}
        if self.accept:
            call["Accept"] = self.accept
        return call, self.decode


def json_features(reviews: list[str]) -> str:
    """The project's inference contract: ``{"features": [review, ...]}``."""
    return json.dumps({"features": reviews})
