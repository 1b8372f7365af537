"""Registers the main DAG's timetable (:mod:`include.pipeline.schedule`): Airflow loads a custom
timetable only from a plugin, in the scheduler, the dag-processor and the API server alike."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.pipeline.schedule import UpcomingCronTimetable


class ReviewsSchedulePlugin(AirflowPlugin):
    name = "reviews_schedule"
    timetables = [UpcomingCronTimetable]
