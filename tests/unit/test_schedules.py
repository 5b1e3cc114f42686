"""schedules.toml: every form Avtomatika knows plus cron, and errors that name the entry and field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from chronik.adapters.config import load_schedules
from chronik.adapters.scheduling import describe, trigger_of
from chronik.core.errors import ConfigError

GOOD = """
[every_minute]
blueprint = "reports"
interval_seconds = 60
input_data = {scope = "all"}

[nightly]
blueprint = "reports"
daily_at = "02:30"

[weekly]
blueprint = "reports"
weekly_days = ["mon", "Friday"]
time = "09:00"

[monthly]
blueprint = "reports"
monthly_dates = [1, 15]
time = "10:15"

[cron_five]
blueprint = "reports"
cron = "*/5 * * * *"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schedules.toml"
    path.write_text(text)
    return path


def test_every_form_fires_when_it_says(tmp_path: Path) -> None:
    entries = {entry.name: entry for entry in load_schedules(write(tmp_path, GOOD))}
    assert entries["every_minute"].input_data == {"scope": "all"}
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 11, 23, 12, 7, 30, tzinfo=berlin)  # a Monday

    def next_fire(name: str) -> datetime:
        fire = trigger_of(entries[name], berlin).get_next_fire_time(None, now)
        assert fire is not None
        return fire

    assert next_fire("every_minute") == datetime(2026, 11, 23, 12, 8, 0, tzinfo=berlin)
    assert next_fire("nightly") == datetime(2026, 11, 24, 2, 30, tzinfo=berlin)
    assert next_fire("weekly") == datetime(2026, 11, 27, 9, 0, tzinfo=berlin)  # Friday
    assert next_fire("monthly") == datetime(2026, 12, 1, 10, 15, tzinfo=berlin)
    assert next_fire("cron_five") == datetime(2026, 11, 23, 12, 10, tzinfo=berlin)
    assert describe(entries["weekly"]) == "mon,fri at 09:00"
    # Intervals count from a fixed anchor: every instance computes the same fire times.
    utc = trigger_of(entries["every_minute"], ZoneInfo("UTC")).get_next_fire_time(
        None, datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    )
    assert utc == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[a]\nblueprint = 'b'\n", "[a]: give exactly one of interval_seconds, daily_at"),
        ("[a]\nblueprint = 'b'\ndaily_at = '2:30'\n", "[a]: field 'daily_at' must be a time as \"HH:MM\""),
        ("[a]\nblueprint = 'b'\ndaily_at = '24:00'\n", "field 'daily_at' must be a time"),
        ("[a]\nblueprint = 'b'\ninterval_seconds = 0\n", "[a]: field 'interval_seconds' must be a number"),
        ("[a]\nblueprint = 'b'\nweekly_days = ['mon']\n", "[a]: field 'time' must be a time"),
        (
            "[a]\nblueprint = 'b'\nweekly_days = ['someday']\ntime = '09:00'\n",
            "field 'weekly_days' must list",
        ),
        ("[a]\nblueprint = 'b'\nmonthly_dates = [32]\ntime = '09:00'\n", "field 'monthly_dates' must list"),
        ("[a]\nblueprint = 'b'\ncron = '* *'\n", "[a]: field 'cron' must have five fields"),
        ("[a]\ndaily_at = '02:00'\n", "[a]: field 'blueprint' must name a blueprint"),
        ("[a]\nblueprint = 'b'\ndaily_at = '02:00'\ncolour = 1\n", "[a]: unknown field(s) 'colour'"),
        ("[a]\nblueprint = 'b'\ndaily_at = '02:00'\ntime = '03:00'\n", "field 'time' goes with weekly_days"),
        ("[a]\nblueprint = 'b'\ninput_data = 3\ndaily_at = '02:00'\n", "field 'input_data' must be a table"),
        ("[a\n", "not valid TOML"),
    ],
)
def test_a_malformed_file_names_the_entry_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_schedules(path)
    assert str(path) in caught.value.message
    assert message in caught.value.message


def test_a_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found \\(SCHEDULES_CONFIG_PATH\\)"):
        load_schedules(tmp_path / "nope.toml")
