//! Schedules in a timezone: a cron expression (seconds first) read on the wall clock of an
//! IANA timezone, and the instants it fires at. `lakeport serve` arms its scheduler with
//! these instants, and `status` and the API show them; nothing else decides when a schedule
//! fires.
//!
//! The wall-clock times the expression matches come from croner (on a calendar without
//! daylight saving time); this module maps each to the instants it fires at, so that a
//! schedule is right across a DST change whatever instant it is asked from. The rules are
//! those of Vixie cron and croner, by the kind of schedule:
//!
//! - A **time-of-day** schedule (its second, minute and hour fields are numbers or lists of
//!   numbers, as in `0 30 2 * * *`, `@daily`, `0 0 6,18 * * MON`) fires once at each time it
//!   names on each day it names. A time the clock skips when it springs forward (02:30 in
//!   Europe/Berlin on 2026-03-29) fires once, at the first instant after the skip (03:00
//!   CEST); a time the clock shows twice when it falls back (02:30 on 2026-10-25) fires once,
//!   at its first occurrence (02:30 CEST).
//! - An **interval** schedule (a `*`, range or step in the second, minute or hour field, as
//!   in `0 */15 * * * *` or `@hourly`) keeps its rhythm in real time: the times the clock
//!   skips do not fire, and the repeated times fire in both passes (an hourly schedule fires
//!   every hour of the 25-hour day).

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;

use crate::config::{cron_expression, parse_cron};

/// A cron schedule and the timezone its wall-clock times are read in.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The 6-field expression (`@daily` and the like in their cron form).
    expression: String,
    cron: croner::Cron,
    zone: Tz,
    time_of_day: bool,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        self.expression == other.expression && self.zone == other.zone
    }
}

impl Eq for Schedule {}

/// How far ahead a fall-back is looked for (longer than any change of a zone's offset).
const LOOK_AHEAD: Duration = Duration::hours(6);

/// Wall-clock times tried for one next instant, at most (the longest search is an
/// every-second schedule over a repeated hour: a few thousand).
const MAX_CANDIDATES: usize = 100_000;

/// Minutes searched for the end of a skipped stretch of wall-clock time, at most.
const MAX_GAP_MINUTES: usize = 3 * 24 * 60;

impl Schedule {
    /// The schedule `text` (cron with seconds, `@hourly`…; see [`cron_expression`]) in
    /// `zone`; `None` for `continuous`. An expression that does not parse is an error saying
    /// what was expected.
    pub fn new(text: &str, zone: Tz) -> std::result::Result<Option<Schedule>, String> {
        let Some(expression) = cron_expression(text)? else {
            return Ok(None);
        };
        let cron = parse_cron(&expression)?;
        let time_of_day = expression
            .split_whitespace()
            .take(3)
            .all(|f| f.chars().all(|c| c.is_ascii_digit() || c == ','));
        Ok(Some(Schedule {
            expression,
            cron,
            zone,
            time_of_day,
        }))
    }

    /// The 6-field cron expression.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The timezone its wall-clock times are read in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first instant after `after` the schedule fires at (instants fall on whole
    /// seconds: one in the second of `after` has passed). `None` when croner finds no time
    /// that matches (`0 0 0 30 2 *`: February has no 30th).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Tz>> {
        let zone = self.zone;
        let after = after.trunc_subsecs(0);
        // Wall-clock times before `after`'s can fire after it only when the clock is about
        // to go back: look back by as much as it goes back within that much time.
        let drop = |ahead: Duration| offset(zone, after) - offset(zone, after + ahead);
        let back = drop(drop(LOOK_AHEAD).max(Duration::zero())).max(Duration::zero());
        let mut wall = after.with_timezone(&zone).naive_local() - back;
        let mut inclusive = true;
        let mut best: Option<DateTime<Tz>> = None;
        let consider = |best: &mut Option<DateTime<Tz>>, t: DateTime<Tz>| {
            if t > after && best.as_ref().is_none_or(|b| t < *b) {
                *best = Some(t);
            }
        };
        for _ in 0..MAX_CANDIDATES {
            match self
                .cron
                .find_next_occurrence(&Utc.from_utc_datetime(&wall), inclusive)
            {
                Ok(next) => wall = next.naive_utc(),
                Err(_) => break,
            }
            inclusive = false;
            match zone.from_local_datetime(&wall) {
                LocalResult::Single(t) => consider(&mut best, t),
                // The repeated times: the later pass's instants come after the earlier
                // pass's instants of later times, so keep looking while they last.
                LocalResult::Ambiguous(first, second) => {
                    consider(&mut best, first);
                    if !self.time_of_day {
                        consider(&mut best, second);
                    }
                    continue;
                }
                LocalResult::None if self.time_of_day => consider(&mut best, gap_end(zone, wall)?),
                LocalResult::None => {}
            }
            // Past the repeated times, later wall-clock times are later instants.
            if best.is_some() {
                break;
            }
        }
        best
    }

    /// The first `n` instants after `after` the schedule fires at.
    pub fn next_times(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Tz>> {
        let mut times: Vec<DateTime<Tz>> = Vec::with_capacity(n);
        let mut from = after;
        while times.len() < n {
            let Some(t) = self.next_after(from) else {
                break;
            };
            from = t.with_timezone(&Utc);
            times.push(t);
        }
        times
    }
}

/// An IANA timezone name (`UTC`, `Europe/Berlin`), or an error saying what was expected.
pub fn parse_zone(name: &str) -> std::result::Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("{name:?} is not an IANA timezone name (such as UTC or Europe/Berlin)")
    })
}

/// `t` as RFC 3339 with its zone's offset, to the second (`2026-03-29T03:00:00+02:00`).
pub fn rfc3339_local(t: &DateTime<Tz>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// `zone`'s offset from UTC at `at`.
fn offset(zone: Tz, at: DateTime<Utc>) -> Duration {
    let seconds = zone
        .offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc();
    Duration::seconds(i64::from(seconds))
}

/// The first instant after the stretch of wall-clock time the clock skipped that holds
/// `wall` (None if no such instant is found within three days).
fn gap_end(zone: Tz, wall: NaiveDateTime) -> Option<DateTime<Tz>> {
    let mut probe = wall;
    for _ in 0..MAX_GAP_MINUTES {
        probe += Duration::minutes(1);
        let Some(mut first) = zone.from_local_datetime(&probe).earliest() else {
            continue;
        };
        // The skip ended within the last minute: find its first second.
        loop {
            let earlier = first.naive_local() - Duration::seconds(1);
            match zone.from_local_datetime(&earlier).earliest() {
                Some(t) if earlier > wall => first = t,
                _ => return Some(first),
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn schedule(expr: &str, zone: &str) -> Schedule {
        Schedule::new(expr, parse_zone(zone).unwrap())
            .unwrap()
            .unwrap()
    }

    /// The next `n` times after `after`, as RFC 3339 in the schedule's zone.
    fn next(expr: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
        schedule(expr, zone)
            .next_times(at(after), n)
            .iter()
            .map(rfc3339_local)
            .collect()
    }

    #[test]
    fn a_daily_time_the_clock_skips_runs_once_when_the_skip_ends() {
        // Europe/Berlin springs from 02:00 CET to 03:00 CEST on 2026-03-29.
        assert_eq!(
            next("0 30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 3),
            [
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00",
                "2026-03-31T02:30:00+02:00"
            ]
        );
        // Asked at the very instant it ran, or from inside the hour that follows: not again.
        for after in ["2026-03-29T01:00:00Z", "2026-03-29T01:20:00Z"] {
            assert_eq!(
                next("0 30 2 * * *", "Europe/Berlin", after, 1),
                ["2026-03-30T02:30:00+02:00"],
                "from {after}"
            );
        }
        // Weekly on Sunday, the day of the change; two times in the skipped hour run once.
        assert_eq!(
            next("0 30 2 * * SUN", "Europe/Berlin", "2026-03-28T00:00:00Z", 2),
            ["2026-03-29T03:00:00+02:00", "2026-04-05T02:30:00+02:00"]
        );
        assert_eq!(
            next("0 0,30 2 * * *", "Europe/Berlin", "2026-03-28T23:00:00Z", 2),
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"]
        );
        // America/New_York springs from 02:00 EST to 03:00 EDT on 2026-03-08.
        assert_eq!(
            next(
                "0 30 2 * * *",
                "America/New_York",
                "2026-03-07T12:00:00Z",
                2
            ),
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
        );
    }

    #[test]
    fn a_daily_time_the_clock_shows_twice_runs_once_at_its_first_occurrence() {
        // Europe/Berlin falls from 03:00 CEST back to 02:00 CET on 2026-10-25.
        assert_eq!(
            next("0 30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
        // From any instant after the first occurrence, also inside the repeated hour (02:15
        // CET is 01:15Z, after 02:30 CEST): the next day.
        for after in [
            "2026-10-25T00:30:00Z",
            "2026-10-25T00:45:00Z",
            "2026-10-25T01:15:00Z",
            "2026-10-25T01:45:00Z",
        ] {
            assert_eq!(
                next("0 30 2 * * *", "Europe/Berlin", after, 1),
                ["2026-10-26T02:30:00+01:00"],
                "from {after}"
            );
        }
        // Before it, from inside the first pass: its first occurrence.
        assert_eq!(
            next("0 30 2 * * *", "Europe/Berlin", "2026-10-25T00:10:00Z", 1),
            ["2026-10-25T02:30:00+02:00"]
        );
        // America/New_York falls from 02:00 EDT back to 01:00 EST on 2026-11-01.
        assert_eq!(
            next(
                "0 30 1 * * *",
                "America/New_York",
                "2026-10-31T12:00:00Z",
                2
            ),
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
        );
        // Australia/Lord_Howe falls back by half an hour (02:00 to 01:30) on 2026-04-05.
        assert_eq!(
            next(
                "0 45 1 * * *",
                "Australia/Lord_Howe",
                "2026-04-04T00:00:00Z",
                2
            ),
            ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]
        );
    }

    #[test]
    fn an_interval_schedule_keeps_its_rhythm_in_real_time() {
        // Every 30 minutes over the fall-back: both passes of the repeated hour.
        assert_eq!(
            next("0 */30 * * * *", "Europe/Berlin", "2026-10-24T23:45:00Z", 6),
            [
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T02:30:00+01:00",
                "2026-10-25T03:00:00+01:00",
                "2026-10-25T03:30:00+01:00"
            ]
        );
        // Asked from the first pass (02:45 CEST): the second pass comes next.
        assert_eq!(
            next("0 */30 * * * *", "Europe/Berlin", "2026-10-25T00:45:00Z", 1),
            ["2026-10-25T02:00:00+01:00"]
        );
        // Over the spring-forward: the skipped times do not run.
        assert_eq!(
            next("0 */30 * * * *", "Europe/Berlin", "2026-03-29T00:15:00Z", 3),
            [
                "2026-03-29T01:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T03:30:00+02:00"
            ]
        );
        assert_eq!(
            next("0 30 * * * *", "Europe/Berlin", "2026-03-29T00:15:00Z", 2),
            ["2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00"]
        );
        // Every second: one second apart in real time across both changes.
        for (zone, after) in [
            ("Europe/Berlin", "2026-10-25T00:59:58Z"),
            ("Europe/Berlin", "2026-03-29T00:59:58Z"),
        ] {
            let times = schedule("* * * * * *", zone).next_times(at(after), 4);
            let secs: Vec<i64> = times.iter().map(|t| t.timestamp()).collect();
            let start = at(after).timestamp();
            assert_eq!(secs, [start + 1, start + 2, start + 3, start + 4], "{zone}");
        }
    }

    #[test]
    fn over_a_year_a_daily_schedule_runs_once_a_day_and_an_hourly_one_every_hour() {
        let from = at("2025-12-31T23:00:00Z");
        let daily = schedule("0 30 2 * * *", "Europe/Berlin").next_times(from, 400);
        let in_2026: Vec<_> = daily
            .iter()
            .filter(|t| t.format("%Y").to_string() == "2026")
            .collect();
        assert_eq!(in_2026.len(), 365);
        let mut days: Vec<String> = in_2026.iter().map(|t| t.format("%F").to_string()).collect();
        days.dedup();
        assert_eq!(days.len(), 365, "one run per calendar day");
        let hourly = schedule("@hourly", "Europe/Berlin").next_times(from, 8760);
        for pair in hourly.windows(2) {
            assert_eq!((pair[1] - pair[0]).num_seconds(), 3600, "{pair:?}");
        }
    }

    #[test]
    fn without_dst_the_wall_clock_is_the_zone_offset_away() {
        assert_eq!(
            next("0 0 9 * * *", "Asia/Tokyo", "2026-01-01T00:00:00Z", 2),
            ["2026-01-02T09:00:00+09:00", "2026-01-03T09:00:00+09:00"]
        );
        assert_eq!(
            next("0 0 9 * * *", "Asia/Tokyo", "2025-12-31T23:59:59.500Z", 1),
            ["2026-01-01T09:00:00+09:00"]
        );
    }

    #[test]
    fn the_next_time_is_on_a_whole_second_after_now() {
        let daily = schedule("0 0 2 * * *", "UTC");
        for (now, next) in [
            ("2026-11-28T01:59:59.500Z", "2026-11-28T02:00:00Z"),
            ("2026-11-28T02:00:00.000Z", "2026-11-29T02:00:00Z"),
            ("2026-11-28T02:00:00.300Z", "2026-11-29T02:00:00Z"),
            ("2026-11-28T06:39:14.189Z", "2026-11-29T02:00:00Z"),
        ] {
            assert_eq!(
                daily.next_after(at(now)).map(|t| t.with_timezone(&Utc)),
                Some(at(next)),
                "from {now}"
            );
        }
        let every_second = schedule("* * * * * *", "UTC");
        assert_eq!(
            every_second
                .next_after(at("2026-11-28T06:39:14.999Z"))
                .map(|t| t.with_timezone(&Utc)),
            Some(at("2026-11-28T06:39:15Z"))
        );
        assert_eq!(
            schedule("0 0 0 30 2 *", "UTC").next_after(at("2026-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn continuous_has_no_schedule_and_bad_input_says_what_was_expected() {
        assert_eq!(Schedule::new("continuous", Tz::UTC), Ok(None));
        let err = Schedule::new("0 2 * * *", Tz::UTC).unwrap_err();
        assert!(err.contains("expected cron with seconds"), "{err}");
        let err = parse_zone("Mars/Olympus_Mons").unwrap_err();
        assert!(
            err.contains("\"Mars/Olympus_Mons\" is not an IANA timezone name"),
            "{err}"
        );
        assert_eq!(parse_zone("Asia/Tokyo"), Ok(chrono_tz::Asia::Tokyo));
    }
}
