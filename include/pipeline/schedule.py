"""The main DAG's cron schedule without a catch-up run when it is unpaused.

Airflow's ``CronTriggerTimetable`` with ``catchup=False`` still runs the latest tick that has
passed: unpausing the DAG (which the Trigger dialog does) starts a scheduled run at once, and
with ``max_active_runs=1`` the run the person asked for waits behind it. Here the next run is the
next tick to come; a tick that passed less than :data:`GRACE` ago still runs, so a scheduler
that reads the schedule a moment after the tick does not skip it.

A custom timetable must be registered by a plugin (``plugins/reviews_schedule.py``) for the
scheduler and the dag-processor to load it.
"""

from __future__ import annotations

import datetime

from airflow._shared.timezones.timezone import coerce_datetime, utcnow
from airflow.timetables.base import DagRunInfo
from airflow.timetables.trigger import CronTriggerTimetable

GRACE = datetime.timedelta(minutes=5)


class UpcomingCronTimetable(CronTriggerTimetable):
    """A cron schedule whose first run after a pause is the next tick, not the last one."""

    @property
    def summary(self) -> str:
        return f"{self._expression}, next tick only"

    def _next_tick(self, last_run_after, earliest) -> datetime.datetime:
        now = coerce_datetime(utcnow())
        latest = self._align_to_prev(now)
        candidates = [latest if now - latest <= GRACE else self._align_to_next(now)]
        if last_run_after is not None:
            candidates.append(self._get_next(last_run_after))
        if earliest is not None:
            candidates.append(self._align_to_next(earliest))
        return max(candidates)

    def next_dagrun_info(self, *, last_automated_data_interval, restriction):
        if restriction.catchup:
            return super().next_dagrun_info(
                last_automated_data_interval=last_automated_data_interval,
                restriction=restriction,
            )
        last = last_automated_data_interval.end if last_automated_data_interval else None
        start = self._next_tick(last, restriction.earliest)
        if restriction.latest is not None and restriction.latest < start:
            return None
        return DagRunInfo.interval(coerce_datetime(start - self._interval), start)


def assets_or_cron(assets, cron: str | None):
    """A DAG's schedule: runs on ``assets`` (an asset or an ``AssetAny``), and on ``cron``'s
    ticks as well when one is set (:class:`UpcomingCronTimetable`: no catch-up run on unpause);
    ``cron`` None is asset-only."""
    if not cron:
        return assets
    from airflow.sdk import AssetOrTimeSchedule

    # A core timetable, as plugins register them; the SDK's annotation names its own base.
    timetable = UpcomingCronTimetable(cron, timezone="UTC")
    return AssetOrTimeSchedule(timetable=timetable, assets=assets)  # type: ignore[arg-type]
