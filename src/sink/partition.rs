//! Assigning rows to partitions: UTC instants → local time in an IANA zone → rendered prefix.
//!
//! A [`Partitioner`] owns a checked [`PrefixTemplate`] and a zone. Each UTC instant maps to
//! exactly one local time (the zone's offset at that instant), so DST needs no special case:
//! in a skipped hour no row lands, and the two passes through a repeated hour share one
//! prefix. Rows whose local times agree down to the template's [`Granularity`] share a
//! partition id; ids are dense (0, 1, 2, … in order of first appearance) and
//! [`Partitioner::prefix`] gives each one's rendered prefix.
//!
//! Hot path: the partitioner remembers the UTC interval around the last slow lookup in which
//! every instant has the same offset and the same truncated local time, and reuses that id
//! for the next rows that fall into it. The interval is the local bucket intersected with the
//! UTC hour of the instant, and it is kept only when the offsets at both of its ends equal the
//! instant's offset (so a zone would need two offset changes within one hour to fool it; no
//! IANA zone has ever had that). Outside it, the id comes from a map keyed by the truncated
//! local time.
//!
//! This module does not decide *which* time a row's partition follows (write time, a column,
//! the run's start): that is delivery's choice; it only maps instants it is given.

use std::collections::HashMap;

use arrow::array::{Array, TimestampMillisecondArray, UInt32Array};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike};
use chrono_tz::Tz;

use super::template::{Granularity, PrefixTemplate};
use crate::error::{Error, Result};

const HOUR_MS: i64 = 3_600_000;

/// The UTC interval `[start, end)` (ms) whose instants all take partition `id`.
#[derive(Debug, Clone, Copy)]
struct Cached {
    start: i64,
    end: i64,
    id: u32,
}

/// Gives rows partition ids from their UTC times, for one template and time zone.
#[derive(Debug)]
pub struct Partitioner {
    template: PrefixTemplate,
    tz: Tz,
    /// Truncated local time (seconds since the epoch, read as if UTC) → id.
    ids: HashMap<i64, u32>,
    prefixes: Vec<String>,
    last: Option<Cached>,
}

impl Partitioner {
    /// A partitioner rendering `template` in the local time of `tz`.
    pub fn new(template: PrefixTemplate, tz: Tz) -> Partitioner {
        Partitioner {
            template,
            tz,
            ids: HashMap::new(),
            prefixes: Vec::new(),
            last: None,
        }
    }

    /// The template.
    pub fn template(&self) -> &PrefixTemplate {
        &self.template
    }

    /// The time zone.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// Partition ids for `utc_ms` (ms since the epoch, UTC; the array's own time-zone label is
    /// ignored), one per row. The caller guarantees there are no NULLs: a NULL is an
    /// [`Error::InvalidInput`], as is a time whose local year is outside 0000–9999.
    pub fn assign(&mut self, utc_ms: &TimestampMillisecondArray) -> Result<UInt32Array> {
        if utc_ms.null_count() > 0 {
            return Err(Error::InvalidInput(format!(
                "partition time: {} of {} rows are NULL; every row needs a partition time",
                utc_ms.null_count(),
                utc_ms.len()
            )));
        }
        let mut out = Vec::with_capacity(utc_ms.len());
        for (row, &ms) in utc_ms.values().iter().enumerate() {
            let id = self
                .lookup(ms)
                .map_err(|e| Error::InvalidInput(format!("row {row}: {}", e.chain())))?;
            out.push(id);
        }
        Ok(UInt32Array::from(out))
    }

    /// The partition id of one instant (e.g. a run's start time for snapshot partitions).
    pub fn for_instant(&mut self, utc_ms: i64) -> Result<u32> {
        self.lookup(utc_ms)
    }

    /// The rendered prefix of partition `id`, e.g. `dt=2024-03-05`.
    ///
    /// # Panics
    /// When `id` was not returned by this partitioner.
    pub fn prefix(&self, id: u32) -> &str {
        &self.prefixes[id as usize]
    }

    /// Number of partitions seen so far (ids are `0..len`).
    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// True when no partition has been assigned yet.
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    fn lookup(&mut self, ms: i64) -> Result<u32> {
        if let Some(c) = self.last {
            if c.start <= ms && ms < c.end {
                return Ok(c.id);
            }
        }
        self.slow_lookup(ms)
    }

    fn slow_lookup(&mut self, ms: i64) -> Result<u32> {
        let granularity = self.template.granularity();
        if granularity == Granularity::None {
            let id = self.id_for(0, &NaiveDateTime::default());
            self.last = Some(Cached {
                start: i64::MIN,
                end: i64::MAX,
                id,
            });
            return Ok(id);
        }

        let offset_ms = self.offset_ms(ms).ok_or_else(|| out_of_range(ms))?;
        let local = ms
            .checked_add(offset_ms)
            .and_then(DateTime::from_timestamp_millis)
            .map(|d| d.naive_utc())
            .ok_or_else(|| out_of_range(ms))?;
        if !(0..=9999).contains(&local.year()) {
            return Err(out_of_range(ms));
        }
        let (start, end) = bucket(&local, granularity).ok_or_else(|| out_of_range(ms))?;
        let start_ms = start.and_utc().timestamp_millis();
        let end_ms = end.and_utc().timestamp_millis();
        let id = self.id_for(start.and_utc().timestamp(), &start);

        // The UTC interval around `ms` with the same offset and bucket, within its UTC hour.
        let hour = ms.div_euclid(HOUR_MS) * HOUR_MS;
        let a = (start_ms - offset_ms).max(hour);
        let b = (end_ms - offset_ms).min(hour + HOUR_MS);
        let same_offset = |t: i64| self.offset_ms(t) == Some(offset_ms);
        self.last = if a <= ms && ms < b && same_offset(a) && same_offset(b - 1) {
            Some(Cached {
                start: a,
                end: b,
                id,
            })
        } else {
            Some(Cached {
                start: ms,
                end: ms + 1,
                id,
            })
        };
        Ok(id)
    }

    /// The zone's offset from UTC at `ms`, in ms; `None` when `ms` is beyond chrono's range.
    fn offset_ms(&self, ms: i64) -> Option<i64> {
        let utc = DateTime::from_timestamp_millis(ms)?.naive_utc();
        let secs = self
            .tz
            .offset_from_utc_datetime(&utc)
            .fix()
            .local_minus_utc();
        Some(i64::from(secs) * 1000)
    }

    fn id_for(&mut self, key: i64, start: &NaiveDateTime) -> u32 {
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.prefixes.len() as u32;
        self.prefixes.push(self.template.render(start));
        self.ids.insert(key, id);
        id
    }
}

fn out_of_range(ms: i64) -> Error {
    Error::InvalidInput(format!(
        "partition time {ms} ms since the epoch is outside the years 0000-9999"
    ))
}

/// The local bucket `[start, end)` holding `local` at `granularity` (not `None`).
fn bucket(
    local: &NaiveDateTime,
    granularity: Granularity,
) -> Option<(NaiveDateTime, NaiveDateTime)> {
    let midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN);
    let date = local.date();
    Some(match granularity {
        Granularity::None | Granularity::Year => {
            let start = NaiveDate::from_ymd_opt(date.year(), 1, 1)?;
            let end = NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)?;
            (midnight(start), midnight(end))
        }
        Granularity::Month => {
            let start = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?;
            let end = if date.month() == 12 {
                NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)?
            };
            (midnight(start), midnight(end))
        }
        Granularity::Day => (midnight(date), midnight(date.succ_opt()?)),
        Granularity::Hour => {
            let start = date.and_hms_opt(local.hour(), 0, 0)?;
            (start, start + chrono::TimeDelta::hours(1))
        }
        Granularity::Minute => {
            let start = date.and_hms_opt(local.hour(), local.minute(), 0)?;
            (start, start + chrono::TimeDelta::minutes(1))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn part(template: &str, tz: Tz) -> Partitioner {
        Partitioner::new(PrefixTemplate::parse(template).unwrap(), tz)
    }

    fn prefixes(p: &mut Partitioner, times: &[i64]) -> Vec<String> {
        let ids = p
            .assign(&TimestampMillisecondArray::from(times.to_vec()))
            .unwrap();
        ids.values()
            .iter()
            .map(|&id| p.prefix(id).to_string())
            .collect()
    }

    /// What chrono says directly, without any caching.
    fn reference(ms: i64, tz: Tz, fmt: &str) -> String {
        Utc.timestamp_millis_opt(ms)
            .unwrap()
            .with_timezone(&tz)
            .format(fmt)
            .to_string()
    }

    const ALL: &str = "$yyyy/$MM/$dd/$HH/$mm";
    const ALL_FMT: &str = "%Y/%m/%d/%H/%M";

    #[test]
    fn all_variables_in_utc() {
        let mut p = part(ALL, Tz::UTC);
        let got = prefixes(&mut p, &[utc("2024-03-05T07:09:59.999Z")]);
        assert_eq!(got, ["2024/03/05/07/09"]);
    }

    #[test]
    fn hive_segments() {
        let mut p = part("inv/dt=$yyyy-$MM-$dd/hh=$HH", Tz::Asia__Tokyo);
        let got = prefixes(&mut p, &[utc("2024-03-05T20:00:00Z")]);
        assert_eq!(got, ["inv/dt=2024-03-06/hh=05"]);
    }

    #[test]
    fn same_bucket_shares_an_id() {
        let mut p = part("dt=$yyyy-$MM-$dd", Tz::UTC);
        let t = [
            utc("2024-01-01T00:00:00Z"),
            utc("2024-01-02T00:00:00Z"),
            utc("2024-01-01T23:59:59.999Z"),
            utc("2024-01-01T12:00:00Z"),
            utc("2024-01-02T05:00:00Z"),
        ];
        let ids = p
            .assign(&TimestampMillisecondArray::from(t.to_vec()))
            .unwrap();
        assert_eq!(ids.values().to_vec(), [0, 1, 0, 0, 1]);
        assert_eq!(p.len(), 2);
        assert_eq!(p.prefix(0), "dt=2024-01-01");
        assert_eq!(p.prefix(1), "dt=2024-01-02");
    }

    #[test]
    fn berlin_spring_forward_skips_two_oclock() {
        // 2024-03-31 01:00Z: 02:00 CET becomes 03:00 CEST.
        let mut p = part("$HH:$mm", Tz::Europe__Berlin);
        let got = prefixes(
            &mut p,
            &[
                utc("2024-03-31T00:59:59.999Z"),
                utc("2024-03-31T01:00:00Z"),
                utc("2024-03-31T01:30:00Z"),
            ],
        );
        assert_eq!(got, ["01:59", "03:00", "03:30"]);
    }

    #[test]
    fn berlin_fall_back_repeats_two_oclock_in_one_partition() {
        // 2024-10-27 01:00Z: 03:00 CEST becomes 02:00 CET.
        let mut p = part("dt=$yyyy-$MM-$dd/hh=$HH", Tz::Europe__Berlin);
        let t = [
            utc("2024-10-27T00:00:00Z"),     // 02:00 CEST
            utc("2024-10-27T00:59:59.999Z"), // 02:59 CEST
            utc("2024-10-27T01:00:00Z"),     // 02:00 CET
            utc("2024-10-27T01:59:59.999Z"), // 02:59 CET
            utc("2024-10-27T02:00:00Z"),     // 03:00 CET
        ];
        let ids = p
            .assign(&TimestampMillisecondArray::from(t.to_vec()))
            .unwrap();
        assert_eq!(ids.values().to_vec(), [0, 0, 0, 0, 1]);
        assert_eq!(p.prefix(0), "dt=2024-10-27/hh=02");
        assert_eq!(p.prefix(1), "dt=2024-10-27/hh=03");
    }

    #[test]
    fn new_york_transitions() {
        let mut p = part("$dd $HH:$mm", Tz::America__New_York);
        let got = prefixes(
            &mut p,
            &[
                // 2024-03-10 07:00Z: 02:00 EST becomes 03:00 EDT.
                utc("2024-03-10T06:59:00Z"),
                utc("2024-03-10T07:00:00Z"),
                // 2024-11-03 06:00Z: 02:00 EDT becomes 01:00 EST.
                utc("2024-11-03T05:30:00Z"),
                utc("2024-11-03T06:30:00Z"),
                utc("2024-11-03T05:31:00Z"),
            ],
        );
        assert_eq!(
            got,
            ["10 01:59", "10 03:00", "03 01:30", "03 01:30", "03 01:31"]
        );
        // 01:30 EDT and 01:30 EST are one minute bucket.
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn new_york_day_spans_25_hours_at_fall_back() {
        let mut p = part("dt=$yyyy-$MM-$dd", Tz::America__New_York);
        let got = prefixes(
            &mut p,
            &[
                utc("2024-11-03T03:59:59.999Z"),
                utc("2024-11-03T04:00:00Z"),
                utc("2024-11-04T04:59:59.999Z"),
                utc("2024-11-04T05:00:00Z"),
            ],
        );
        assert_eq!(
            got,
            [
                "dt=2024-11-02",
                "dt=2024-11-03",
                "dt=2024-11-03",
                "dt=2024-11-04"
            ]
        );
    }

    /// The cache must agree with a direct conversion everywhere, in particular across the
    /// transitions; sweep them in small steps, forwards and interleaved.
    #[test]
    fn cache_agrees_with_direct_conversion_around_transitions() {
        let windows = [
            (
                Tz::Europe__Berlin,
                "2024-03-30T20:00:00Z",
                "2024-03-31T06:00:00Z",
            ),
            (
                Tz::Europe__Berlin,
                "2024-10-26T20:00:00Z",
                "2024-10-27T06:00:00Z",
            ),
            (
                Tz::America__New_York,
                "2024-03-10T02:00:00Z",
                "2024-03-10T12:00:00Z",
            ),
            (
                Tz::America__New_York,
                "2024-11-03T01:00:00Z",
                "2024-11-03T11:00:00Z",
            ),
            (
                Tz::Asia__Kolkata,
                "2023-12-31T10:00:00Z",
                "2024-01-01T02:00:00Z",
            ),
            (
                Tz::Australia__Lord_Howe,
                "2024-04-06T10:00:00Z",
                "2024-04-07T02:00:00Z",
            ),
            // transitions at local midnight: the day boundary itself moves
            (
                Tz::America__Santiago,
                "2024-04-06T20:00:00Z",
                "2024-04-07T10:00:00Z",
            ),
            (
                Tz::America__Santiago,
                "2024-09-07T20:00:00Z",
                "2024-09-08T10:00:00Z",
            ),
        ];
        let templates = [
            ("$yyyy/$MM/$dd/$HH/$mm", "%Y/%m/%d/%H/%M"),
            ("$yyyy/$MM/$dd/$HH", "%Y/%m/%d/%H"),
            ("dt=$yyyy-$MM-$dd", "dt=%Y-%m-%d"),
            ("$yyyy/$MM", "%Y/%m"),
            ("$yyyy", "%Y"),
        ];
        for (tz, from, to) in windows {
            for (template, fmt) in templates {
                let mut p = part(template, tz);
                let (from, to) = (utc(from), utc(to));
                let mut times = Vec::new();
                let mut t = from;
                while t < to {
                    times.push(t);
                    times.push(t + 59_999);
                    // jump back and forth so both the interval cache and the map are used
                    times.push(to - (t - from));
                    t += 7 * 60_000 + 13;
                }
                let got = prefixes(&mut p, &times);
                for (ms, got) in times.iter().zip(got) {
                    assert_eq!(got, reference(*ms, tz, fmt), "{tz} {template} at {ms}");
                }
            }
        }
    }

    #[test]
    fn before_1970() {
        let mut p = part(ALL, Tz::UTC);
        assert_eq!(prefixes(&mut p, &[-1]), ["1969/12/31/23/59"]);
        let mut p = part(ALL, Tz::Europe__Berlin);
        assert_eq!(prefixes(&mut p, &[-1]), ["1970/01/01/00/59"]);
        let mut p = part(ALL, Tz::America__New_York);
        let old = utc("1901-07-04T12:00:00Z");
        assert_eq!(
            prefixes(&mut p, &[old]),
            [reference(old, Tz::America__New_York, ALL_FMT)]
        );
        assert_eq!(prefixes(&mut p, &[old]), ["1901/07/04/07/00"]);
    }

    #[test]
    fn negative_ms_cache_is_consistent() {
        let mut p = part("$HH:$mm", Tz::UTC);
        let got = prefixes(&mut p, &[-60_001, -60_000, -1, 0, -59_999]);
        assert_eq!(got, ["23:58", "23:59", "23:59", "00:00", "23:59"]);
    }

    #[test]
    fn year_boundaries() {
        let t = [utc("2023-12-31T23:00:00Z"), utc("2023-12-31T22:59:59.999Z")];
        let mut berlin = part("$yyyy", Tz::Europe__Berlin);
        assert_eq!(prefixes(&mut berlin, &t), ["2024", "2023"]);
        let mut ny = part("$yyyy/$MM", Tz::America__New_York);
        assert_eq!(
            prefixes(
                &mut ny,
                &[utc("2024-01-01T04:59:59.999Z"), utc("2024-01-01T05:00:00Z")]
            ),
            ["2023/12", "2024/01"]
        );
    }

    #[test]
    fn out_of_range_is_an_error() {
        let mut p = part("$yyyy", Tz::UTC);
        let err = p
            .assign(&TimestampMillisecondArray::from(vec![0, i64::MAX]))
            .unwrap_err();
        assert!(err.to_string().contains("row 1:"), "{err}");
        assert!(err.to_string().contains("outside the years"), "{err}");
        let year_10000 = utc("9999-12-31T23:59:59Z") + 1000;
        assert!(p.for_instant(year_10000).is_err());
        assert!(p.for_instant(year_10000 - 1).is_ok());
    }

    #[test]
    fn nulls_are_rejected() {
        let mut p = part("$yyyy", Tz::UTC);
        let arr = TimestampMillisecondArray::from(vec![Some(0), None]);
        assert!(p.assign(&arr).is_err());
    }

    #[test]
    fn no_variables_means_one_partition() {
        let mut p = part("static", Tz::UTC);
        let got = prefixes(&mut p, &[i64::MIN, 0, i64::MAX]);
        assert_eq!(got, ["static", "static", "static"]);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn for_instant_shares_ids_with_assign() {
        let mut p = part("dt=$yyyy-$MM-$dd", Tz::UTC);
        let a = p.for_instant(utc("2024-05-01T10:00:00Z")).unwrap();
        let ids = p
            .assign(&TimestampMillisecondArray::from(vec![utc(
                "2024-05-01T23:00:00Z",
            )]))
            .unwrap();
        assert_eq!(ids.value(0), a);
        assert_eq!(p.prefix(a), "dt=2024-05-01");
    }
}
