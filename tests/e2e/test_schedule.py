"""Cron schedules read on the wall clock of a timezone: `schedule_timezone`, else the task's
`partition_time.timezone` (watchers: UTC). `status` (text and JSON), the API and the times
`serve` fires at agree with Python's zoneinfo; an unknown zone is refused by `validate`,
naming the file and the key. (The DST rules are unit-tested in src/config/schedule.rs: the
zones here have no DST, so the expected times follow from the offset alone.)"""

import datetime as dt
import json
import signal
import zoneinfo

from conftest import call, serving, wait_for

COLUMNS = [("id", "int64"), ("name", "string")]
UTC = dt.timezone.utc


def small_task(wd, name, **keys):
    """A full-mode task over the small table `items`."""
    base = {"source": "items", "mode": "full", "prefix": "", "concurrency": 1,
            "partition_time": {"from": "write_time", "timezone": "UTC"}}
    base.update(keys)
    return wd.write_task(name, **base)


def setup_items(wd):
    wd.write_table("items", ["id"], COLUMNS)
    wd.load("items", [{"id": i, "name": f"n{i}"} for i in range(1, 6)])


def daily(hour, minute, zone, after, n=3):
    """The first `n` times `hour:minute` on the wall clock of `zone` (a zone without DST)
    strictly after the instant `after`."""
    local = after.astimezone(zoneinfo.ZoneInfo(zone))
    first = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if first <= local:
        first += dt.timedelta(days=1)
    return [first + dt.timedelta(days=i) for i in range(n)]


def hourly(after, n=3):
    first = after.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [first + dt.timedelta(hours=i + 1) for i in range(n)]


def instants(texts):
    return [dt.datetime.fromisoformat(t) for t in texts]


def test_status_shows_the_next_runs_in_the_schedules_timezone(wd):
    setup_items(wd)
    small_task(wd, "tokyo", schedule="0 30 2 * * *", schedule_timezone="Asia/Tokyo")
    # No schedule_timezone: the partition time's zone (an offset of +05:30).
    small_task(wd, "kolkata", schedule="0 0 9 * * *",
               partition_time={"from": "write_time", "timezone": "Asia/Kolkata"})
    small_task(wd, "plain", schedule="@hourly")
    small_task(wd, "manual", schedule=None)

    before = dt.datetime.now(UTC)
    r = wd.ok("status", "--json")
    after = dt.datetime.now(UTC)
    tasks = {t["task"]: t for t in json.loads(r.out)["tasks"]}

    def check(name, zone, offset, expected):
        t = tasks[name]
        assert t["schedule_timezone"] == zone, t
        assert len(t["next_runs"]) == 3, t
        assert all(s.endswith(offset) for s in t["next_runs"]), t
        got = instants(t["next_runs"])
        assert got in (expected(before), expected(after)), (t, expected(before))
        # Written in the zone: the wall-clock time is the one scheduled.
        return got

    got = check("tokyo", "Asia/Tokyo", "+09:00", lambda at: daily(2, 30, "Asia/Tokyo", at))
    assert all((t.hour, t.minute) == (2, 30) for t in got)
    got = check("kolkata", "Asia/Kolkata", "+05:30",
                lambda at: daily(9, 0, "Asia/Kolkata", at))
    assert all((t.hour, t.minute) == (9, 0) for t in got)
    assert all(t.astimezone(UTC).minute == 30 for t in got), "09:00 IST is hh:30 UTC"
    check("plain", "UTC", "+00:00", hourly)
    assert tasks["manual"]["schedule_timezone"] is None and tasks["manual"]["next_runs"] == []

    # The text says the same, under the task's name.
    r = wd.ok("status", "tokyo")
    assert r.lines[1] == ("  schedule: 0 30 2 * * * in Asia/Tokyo, next runs "
                          + ", ".join(tasks["tokyo"]["next_runs"])), r
    assert wd.ok("status", "manual").lines[1] == "  schedule: none (runs when asked)"


def test_validate_refuses_an_unknown_timezone_naming_the_file_and_key(wd):
    setup_items(wd)
    small_task(wd, "good", schedule="0 0 2 * * *", schedule_timezone="Europe/Berlin")
    small_task(wd, "bad-zone", schedule="0 0 2 * * *", schedule_timezone="Mars/Olympus_Mons")
    small_task(wd, "bad-pt-zone", schedule="0 0 2 * * *",
               partition_time={"from": "write_time", "timezone": "Atlantis/Capital"})
    small_task(wd, "zone-unused", mode="incremental", schedule="continuous",
               schedule_timezone="Asia/Tokyo")
    (wd.root / "reports").mkdir()
    wd.write("pipelines/watch.yaml", """\
        kind: inventory-watch
        name: reports-watch
        root: reports
        schedule: "0 0 * * * *"
        schedule_timezone: Nowhere/Land
        """)

    r = wd.lakeport("validate", expect=2)
    lines = [ln for ln in (r.out + r.err).splitlines() if ln.strip()]

    def problem(file, key, *parts):
        hits = [ln for ln in lines
                if f"{file}: {key}: " in ln and all(p in ln for p in parts)]
        assert len(hits) == 1, f"no single problem {file}: {key}: {parts}\n{r}"

    problem("bad-zone.yaml", "schedule_timezone",
            '"Mars/Olympus_Mons" is not an IANA timezone name')
    problem("bad-pt-zone.yaml", "partition_time.timezone",
            '"Atlantis/Capital" is not an IANA timezone name')
    problem("zone-unused.yaml", "schedule_timezone", "only used with a cron schedule")
    problem("watch.yaml", "schedule_timezone", '"Nowhere/Land" is not an IANA timezone name')
    assert not any("good.yaml" in ln for ln in lines), r
    assert len(lines) == 4, r

    for name in ("bad-zone", "bad-pt-zone", "zone-unused", "watch"):
        (wd.root / "pipelines" / f"{name}.yaml").unlink()
    assert wd.ok("validate").lines[-1] == "ok: 1 tasks, 0 watchers, 2 tables"


def test_serve_fires_at_the_wall_clock_time_of_the_schedules_zone(wd):
    """A daily schedule at a wall-clock time a few seconds ahead in Asia/Kolkata (UTC+05:30)
    fires then, once; a per-second schedule in America/New_York keeps firing; the API shows
    each task's and watcher's zone and next runs."""
    setup_items(wd)
    kolkata = zoneinfo.ZoneInfo("Asia/Kolkata")
    target = (dt.datetime.now(UTC) + dt.timedelta(seconds=8)).replace(microsecond=0)
    wall = target.astimezone(kolkata)
    small_task(wd, "once", schedule=f"{wall.second} {wall.minute} {wall.hour} * * *",
               schedule_timezone="Asia/Kolkata")
    small_task(wd, "ticker", schedule="* * * * * *", schedule_timezone="America/New_York")
    (wd.root / "reports").mkdir()
    wd.write("pipelines/watch.yaml", """\
        kind: inventory-watch
        name: reports-watch
        root: reports
        schedule: "0 0 0 * * *"
        schedule_timezone: Asia/Tokyo
        """)

    with serving(wd) as (p, base):
        status, once = call(base, "/api/tasks/once")
        assert status == 200, once
        assert once["schedule_timezone"] == "Asia/Kolkata", once
        tomorrow = target + dt.timedelta(days=1)
        assert dt.datetime.now(UTC) < target, "serve took too long to start for this test"
        assert instants([once["next_run"]]) == [target], once
        assert once["next_runs"] == [(wall + dt.timedelta(days=i)).isoformat()
                                     for i in range(3)], once

        run = wait_for("the Kolkata schedule to fire", lambda: (
            call(base, "/api/tasks/once")[1]["last_run"]), timeout=60)
        started = dt.datetime.fromtimestamp(run["started_ms"] / 1000, UTC)
        assert target <= started < target + dt.timedelta(seconds=3), (started, target)

        ticker = wait_for("the per-second schedule to fire three times", lambda: (
            lambda t: t if t["service"]["runs_started"] >= 3 else None
        )(call(base, "/api/tasks/ticker")[1]), timeout=60)
        assert ticker["schedule_timezone"] == "America/New_York", ticker
        offsets = {s[-6:] for s in ticker["next_runs"]}
        assert offsets <= {"-05:00", "-04:00"} and len(ticker["next_runs"]) == 3, ticker

        once = call(base, "/api/tasks/once")[1]
        assert once["service"]["runs_started"] == 1, once
        assert instants(once["next_runs"])[0] == tomorrow, once

        asked = dt.datetime.now(UTC)
        status, watcher = call(base, "/api/watchers/reports-watch")
        answered = dt.datetime.now(UTC)
        assert status == 200, watcher
        assert watcher["schedule_timezone"] == "Asia/Tokyo", watcher
        got = instants(watcher["next_runs"])
        assert got in (daily(0, 0, "Asia/Tokyo", asked), daily(0, 0, "Asia/Tokyo", answered))
        assert all(s.endswith("T00:00:00+09:00") for s in watcher["next_runs"]), watcher

        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=120)
        err = p.log.read_text()
    assert p.returncode == 0, err
