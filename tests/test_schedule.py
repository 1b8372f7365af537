"""The main DAG's cron schedule: unpausing starts no catch-up run (the next run is the next
tick), a tick that has just passed still runs, and the DAG serializes with it as the scheduler
loads it (through the plugin that registers it)."""

from __future__ import annotations

import pendulum
import pytest
from airflow.timetables.base import TimeRestriction
from airflow.timetables.trigger import CronTriggerTimetable

from include.pipeline import schedule
from include.pipeline.schedule import UpcomingCronTimetable

START = pendulum.datetime(2026, 1, 1, tz="UTC")
NOW = pendulum.datetime(2026, 12, 7, 12, 30, tz="UTC")


@pytest.fixture
def now(monkeypatch):
    def at(moment):
        monkeypatch.setattr(schedule, "utcnow", lambda: moment)
        monkeypatch.setattr("airflow.timetables.trigger.utcnow", lambda: moment)

    return at


def next_run(timetable, last=None):
    from airflow.timetables.base import DataInterval

    interval = DataInterval(last, last) if last else None
    info = timetable.next_dagrun_info(
        last_automated_data_interval=interval,
        restriction=TimeRestriction(earliest=START, latest=None, catchup=False),
    )
    return info.run_after


def test_unpausing_waits_for_the_next_tick_where_airflow_would_catch_up(now):
    now(NOW)
    assert next_run(CronTriggerTimetable("@daily", timezone="UTC")) == NOW.start_of("day")
    assert next_run(UpcomingCronTimetable("@daily", timezone="UTC")) == NOW.add(days=1).start_of(
        "day"
    )


def test_a_tick_that_just_passed_still_runs(now):
    tick = NOW.start_of("day")
    now(tick.add(minutes=2))
    assert next_run(UpcomingCronTimetable("@daily", timezone="UTC")) == tick


def test_after_a_pause_the_missed_ticks_are_skipped(now):
    now(NOW)
    last = NOW.subtract(days=3).start_of("day")
    upcoming = next_run(UpcomingCronTimetable("@daily", timezone="UTC"), last)
    assert upcoming == NOW.add(days=1).start_of("day")
    # running on schedule, the next run is the tick after the last one
    now(last.add(seconds=5))
    assert next_run(UpcomingCronTimetable("@daily", timezone="UTC"), last) == last.add(days=1)


def test_the_main_dag_serializes_with_its_schedule():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    from tests.conftest import REPO

    dag = DagBag(str(REPO / "dags" / "reviews_pipeline.py")).dags["reviews_pipeline"]
    loaded = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    inner = loaded.timetable.timetable
    assert isinstance(inner, UpcomingCronTimetable), type(inner)
    assert inner.summary.endswith(", next tick only"), inner.summary
