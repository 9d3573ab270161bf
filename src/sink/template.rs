//! Prefix templates: the time-variable folder part of an object's path, such as
//! `dt=$yyyy-$MM-$dd/hh=$HH`.
//!
//! A template read from a task file is a plain string and cannot render anything; only
//! [`PrefixTemplate::parse`] makes the checked form, and it reports every problem at once
//! (unknown `$word`, a leading `/`, `.`/`..` or empty segments, control characters, a
//! backslash, characters object stores would escape). A checked template renders local times to
//! prefixes and knows the Hive partition columns its segments stand for. It does not know time
//! zones or UTC: [`Partitioner`](super::Partitioner) turns instants into local times.
//!
//! Variables are case-sensitive: `$yyyy` year, `$MM` month, `$dd` day, `$HH` hour (00–23),
//! `$mm` minute; each renders zero-padded. A variable name runs over ASCII letters, digits and
//! `_`, so `$yyyy$MM` is two variables while `$yyyyMM` is the unknown `$yyyyMM`.

use std::fmt;

use chrono::{Datelike, NaiveDateTime, Timelike};

/// The finest time unit a template uses: rows whose local times agree down to it share a
/// prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Granularity {
    /// No variable: every row gets the same prefix.
    None,
    /// `$yyyy` is the finest variable.
    Year,
    /// `$MM` is the finest variable.
    Month,
    /// `$dd` is the finest variable.
    Day,
    /// `$HH` is the finest variable.
    Hour,
    /// `$mm` is the finest variable.
    Minute,
}

/// One time variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Year,
    Month,
    Day,
    Hour,
    Minute,
}

impl Var {
    fn from_word(word: &str) -> Option<Var> {
        Some(match word {
            "yyyy" => Var::Year,
            "MM" => Var::Month,
            "dd" => Var::Day,
            "HH" => Var::Hour,
            "mm" => Var::Minute,
            _ => return None,
        })
    }

    fn granularity(self) -> Granularity {
        match self {
            Var::Year => Granularity::Year,
            Var::Month => Granularity::Month,
            Var::Day => Granularity::Day,
            Var::Hour => Granularity::Hour,
            Var::Minute => Granularity::Minute,
        }
    }

    /// Partition column name of a segment that holds only this variable.
    fn column(self) -> &'static str {
        match self {
            Var::Year => "year",
            Var::Month => "month",
            Var::Day => "day",
            Var::Hour => "hour",
            Var::Minute => "minute",
        }
    }

    fn render(self, local: &NaiveDateTime, out: &mut String) {
        use fmt::Write;
        // Writing into a String cannot fail.
        let _ = match self {
            Var::Year => write!(out, "{:04}", local.year()),
            Var::Month => write!(out, "{:02}", local.month()),
            Var::Day => write!(out, "{:02}", local.day()),
            Var::Hour => write!(out, "{:02}", local.hour()),
            Var::Minute => write!(out, "{:02}", local.minute()),
        };
    }
}

const EXPECTED_VARS: &str = "$yyyy $MM $dd $HH $mm";

/// Characters that object stores escape or advise against in keys (object_store percent-encodes
/// them), so a prefix holding them would not be the key that lands in the lake.
const ESCAPED_CHARS: &[char] = &[
    '{', '}', '^', '%', '`', '[', ']', '"', '<', '>', '~', '#', '|', '*', '?',
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Var(Var),
}

#[derive(Debug, Clone)]
struct Segment {
    pieces: Vec<Piece>,
    /// The partition column this segment stands for; `None` for a static segment.
    column: Option<String>,
    /// For a hive segment `name=...`: the byte length of `name=` in the rendered text.
    hive_prefix_len: Option<usize>,
}

impl Segment {
    fn has_var(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Var(_)))
    }

    fn vars(&self) -> impl Iterator<Item = Var> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(*v),
            Piece::Lit(_) => None,
        })
    }

    fn render(&self, local: &NaiveDateTime, out: &mut String) {
        for piece in &self.pieces {
            match piece {
                Piece::Lit(s) => out.push_str(s),
                Piece::Var(v) => v.render(local, out),
            }
        }
    }

    /// The segment's text when it has no variable.
    fn static_text(&self) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            if let Piece::Lit(s) = piece {
                out.push_str(s);
            }
        }
        out
    }
}

/// A checked prefix template; the only form that can render.
///
/// ```
/// use lakeport::sink::{Granularity, PrefixTemplate};
/// let t = PrefixTemplate::parse("inventory/dt=$yyyy-$MM-$dd/hh=$HH").unwrap();
/// let local = chrono::NaiveDate::from_ymd_opt(2024, 3, 5).unwrap().and_hms_opt(7, 30, 0).unwrap();
/// assert_eq!(t.render(&local), "inventory/dt=2024-03-05/hh=07");
/// assert_eq!(t.fixed_prefix(), "inventory");
/// assert_eq!(t.partition_columns(), ["dt", "hh"]);
/// assert_eq!(t.granularity(), Granularity::Hour);
/// ```
#[derive(Debug, Clone)]
pub struct PrefixTemplate {
    raw: String,
    segments: Vec<Segment>,
    granularity: Granularity,
}

impl PrefixTemplate {
    /// Checks `raw` and returns the template, or every problem found (one message each,
    /// positions counted in characters from 1). A trailing `/` is dropped; an empty template
    /// is allowed and puts every object at the destination's root.
    pub fn parse(raw: &str) -> Result<PrefixTemplate, Vec<String>> {
        let mut errors = Vec::new();
        if raw.starts_with('/') {
            errors.push(
                "a prefix must not start with '/' (it is relative to the destination)".to_string(),
            );
        }
        let body = raw.trim_start_matches('/').trim_end_matches('/');
        // Character position (1-based) in `raw` of the first character of `body`.
        let body_start = raw.len() - raw.trim_start_matches('/').len() + 1;

        let mut segments = Vec::new();
        if !body.is_empty() {
            let mut pos = body_start;
            for text in body.split('/') {
                if let Some(seg) = parse_segment(text, pos, &mut errors) {
                    segments.push(seg);
                }
                pos += text.chars().count() + 1;
            }
        }

        // Partition columns: one per segment holding a variable, names unique.
        let mut seen: Vec<String> = Vec::new();
        for seg in &mut segments {
            if !seg.has_var() {
                continue;
            }
            let name = match seg.column.take() {
                Some(hive) => hive,
                None => derived_column(seg),
            };
            if seen.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
                errors.push(format!(
                    "partition column {name:?} appears twice; give each time segment its own \
                     name, e.g. `year=$yyyy`"
                ));
            }
            seen.push(name.clone());
            seg.column = Some(name);
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        let granularity = segments
            .iter()
            .flat_map(|s| s.vars())
            .map(Var::granularity)
            .max()
            .unwrap_or(Granularity::None);
        Ok(PrefixTemplate {
            raw: raw.to_string(),
            segments,
            granularity,
        })
    }

    /// The template as written.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The finest variable the template uses.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// Renders the prefix for a local time, e.g. `dt=2024-03-05/hh=07` (no leading or trailing
    /// `/`; empty for an empty template).
    pub fn render(&self, local: &NaiveDateTime) -> String {
        let mut out = String::new();
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            seg.render(local, &mut out);
        }
        out
    }

    /// The static segments before the first segment holding a variable, joined by `/`; the
    /// table location. `""` when the template starts with a variable.
    pub fn fixed_prefix(&self) -> String {
        self.segments
            .iter()
            .take_while(|s| !s.has_var())
            .map(Segment::static_text)
            .collect::<Vec<_>>()
            .join("/")
    }

    /// One partition column per segment holding a variable, in path order: the name of a hive
    /// segment (`dt=$yyyy-$MM-$dd` → `dt`); `year`/`month`/`day`/`hour`/`minute` for a lone
    /// variable; `dt` for year, month and day in that order with any separators; otherwise the
    /// variables' names joined by `_` (`$yyyy$MM` → `year_month`).
    pub fn partition_columns(&self) -> Vec<String> {
        self.segments
            .iter()
            .filter_map(|s| s.column.clone())
            .collect()
    }

    /// The `(column, value)` pairs of a prefix this template rendered; for a hive segment the
    /// value is the text after `name=`. Segments missing from `rendered` give no pair.
    pub fn partition_values(&self, rendered: &str) -> Vec<(String, String)> {
        if self.segments.is_empty() {
            return Vec::new();
        }
        self.segments
            .iter()
            .zip(rendered.split('/'))
            .filter_map(|(seg, text)| {
                let column = seg.column.clone()?;
                let value = match seg.hive_prefix_len {
                    Some(n) => text.get(n..).unwrap_or(""),
                    None => text,
                };
                Some((column, value.to_string()))
            })
            .collect()
    }
}

impl fmt::Display for PrefixTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Column name of a non-hive segment holding variables.
fn derived_column(seg: &Segment) -> String {
    let vars: Vec<Var> = seg.vars().collect();
    if vars == [Var::Year, Var::Month, Var::Day] {
        return "dt".to_string();
    }
    vars.iter()
        .map(|v| v.column())
        .collect::<Vec<_>>()
        .join("_")
}

/// Parses one `/`-separated segment starting at character position `pos`; pushes its
/// problems to `errors` and returns `None` when it had any.
fn parse_segment(text: &str, pos: usize, errors: &mut Vec<String>) -> Option<Segment> {
    let before = errors.len();
    if text.is_empty() {
        let at = pos - 1;
        errors.push(format!(
            "empty segment ('//') at position {at}; remove the extra '/'"
        ));
        return None;
    }
    if text == "." || text == ".." {
        errors.push(format!(
            "segment {text:?} at position {pos} is not allowed (no relative path segments)"
        ));
        return None;
    }

    let mut pieces: Vec<Piece> = Vec::new();
    let mut lit = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = pos + i;
        if c == '$' {
            let word: String = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .collect();
            if word.is_empty() {
                errors.push(format!(
                    "'$' at position {at} is not followed by a variable name; expected one of \
                     {EXPECTED_VARS}"
                ));
            } else {
                match Var::from_word(&word) {
                    Some(v) => {
                        if !lit.is_empty() {
                            pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                        }
                        pieces.push(Piece::Var(v));
                    }
                    None => errors.push(format!(
                        "unknown variable ${word} at position {at}; expected one of {EXPECTED_VARS}"
                    )),
                }
            }
            i += 1 + word.chars().count();
            continue;
        }
        if c == '\\' {
            errors.push(format!(
                "backslash at position {at}; separate segments with '/'"
            ));
        } else if c.is_control() {
            errors.push(format!(
                "control character {c:?} at position {at} is not allowed in a prefix"
            ));
        } else if ESCAPED_CHARS.contains(&c) {
            errors.push(format!(
                "character {c:?} at position {at} is not allowed in a prefix (object stores \
                 escape it)"
            ));
        }
        lit.push(c);
        i += 1;
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    if errors.len() > before {
        return None;
    }

    // Hive segment: `name=...` where `name` is static text and the rest holds a variable.
    let mut column = None;
    let mut hive_prefix_len = None;
    if let Some(Piece::Lit(first)) = pieces.first() {
        if let Some(eq) = first.find('=') {
            let has_var = pieces.iter().any(|p| matches!(p, Piece::Var(_)));
            let name = &first[..eq];
            if has_var {
                if name.is_empty() {
                    errors.push(format!(
                        "segment {text:?} at position {pos} has no column name before '='"
                    ));
                    return None;
                }
                column = Some(name.to_string());
                hive_prefix_len = Some(eq + 1);
            }
        }
    }
    Some(Segment {
        pieces,
        column,
        hive_prefix_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    fn cols(t: &PrefixTemplate) -> Vec<String> {
        t.partition_columns()
    }

    #[test]
    fn renders_every_variable_zero_padded() {
        let t = PrefixTemplate::parse("$yyyy/$MM/$dd/$HH/$mm").unwrap();
        assert_eq!(t.render(&at(2024, 3, 5, 7, 9)), "2024/03/05/07/09");
        assert_eq!(t.render(&at(987, 12, 31, 23, 59)), "0987/12/31/23/59");
        assert_eq!(t.granularity(), Granularity::Minute);
        assert_eq!(cols(&t), ["year", "month", "day", "hour", "minute"]);
    }

    #[test]
    fn month_and_minute_are_case_sensitive() {
        let t = PrefixTemplate::parse("m=$MM/n=$mm").unwrap();
        assert_eq!(t.render(&at(2024, 11, 5, 7, 42)), "m=11/n=42");
    }

    #[test]
    fn adjacent_variables_and_literals() {
        let t = PrefixTemplate::parse("v$yyyy$MM$dd.x").unwrap();
        assert_eq!(t.render(&at(2024, 1, 2, 0, 0)), "v20240102.x");
        assert_eq!(cols(&t), ["dt"]);
        assert_eq!(t.granularity(), Granularity::Day);
    }

    #[test]
    fn granularity_is_finest_variable() {
        let g = |s: &str| PrefixTemplate::parse(s).unwrap().granularity();
        assert_eq!(g(""), Granularity::None);
        assert_eq!(g("static/path"), Granularity::None);
        assert_eq!(g("$yyyy"), Granularity::Year);
        assert_eq!(g("$yyyy/$MM"), Granularity::Month);
        assert_eq!(g("$HH/$yyyy"), Granularity::Hour);
        assert_eq!(g("$dd"), Granularity::Day);
    }

    #[test]
    fn every_error_is_reported_together() {
        let errs = PrefixTemplate::parse("/a//$foo/../b\\c/$/x\u{0}y/$YYYY").unwrap_err();
        let all = errs.join("\n");
        assert!(all.contains("must not start with '/'"), "{all}");
        assert!(all.contains("empty segment ('//') at position 3"), "{all}");
        assert!(
            all.contains(
                "unknown variable $foo at position 5; expected one of $yyyy $MM $dd $HH $mm"
            ),
            "{all}"
        );
        assert!(all.contains("segment \"..\""), "{all}");
        assert!(all.contains("backslash at position 14"), "{all}");
        assert!(all.contains("'$' at position 17 is not followed"), "{all}");
        assert!(all.contains("control character '\\0'"), "{all}");
        assert!(all.contains("unknown variable $YYYY"), "{all}");
        assert_eq!(errs.len(), 8, "{all}");
    }

    #[test]
    fn word_runs_over_letters_digits_underscore() {
        let errs = PrefixTemplate::parse("$yyyyMM").unwrap_err();
        assert_eq!(
            errs,
            ["unknown variable $yyyyMM at position 1; expected one of $yyyy $MM $dd $HH $mm"]
        );
        assert!(PrefixTemplate::parse("$yyyy_x").is_err());
        assert!(PrefixTemplate::parse("$yyyy-x").is_ok());
    }

    #[test]
    fn dollar_before_non_word_is_an_error() {
        assert!(PrefixTemplate::parse("a$-b").is_err());
        assert!(PrefixTemplate::parse("a$").is_err());
        assert!(PrefixTemplate::parse("$$yyyy").is_err());
    }

    #[test]
    fn rejects_escaped_chars_and_dot_segments() {
        assert!(PrefixTemplate::parse("a%20b/$yyyy").is_err());
        assert!(PrefixTemplate::parse("a/./$yyyy").is_err());
        assert!(PrefixTemplate::parse("a/#/$yyyy").is_err());
        assert!(PrefixTemplate::parse("a b/c.d-e_f/$yyyy").is_ok());
    }

    #[test]
    fn trailing_slash_is_trimmed() {
        let t = PrefixTemplate::parse("dt=$yyyy-$MM-$dd/").unwrap();
        assert_eq!(t.render(&at(2024, 1, 1, 0, 0)), "dt=2024-01-01");
        assert_eq!(t.raw(), "dt=$yyyy-$MM-$dd/");
    }

    #[test]
    fn duplicate_columns_are_errors() {
        let errs = PrefixTemplate::parse("$yyyy/x/$yyyy").unwrap_err();
        assert!(errs[0].contains("\"year\" appears twice"), "{errs:?}");
        assert!(PrefixTemplate::parse("dt=$yyyy/DT=$MM").is_err());
    }

    #[test]
    fn hive_segment_needs_a_name() {
        let errs = PrefixTemplate::parse("=$yyyy").unwrap_err();
        assert!(errs[0].contains("no column name before '='"), "{errs:?}");
    }

    #[test]
    fn ymd_folders() {
        let t = PrefixTemplate::parse("$yyyy/$MM/$dd").unwrap();
        let r = t.render(&at(2024, 2, 29, 13, 0));
        assert_eq!(r, "2024/02/29");
        assert_eq!(t.fixed_prefix(), "");
        assert_eq!(cols(&t), ["year", "month", "day"]);
        assert_eq!(
            t.partition_values(&r),
            [
                ("year".to_string(), "2024".to_string()),
                ("month".to_string(), "02".to_string()),
                ("day".to_string(), "29".to_string())
            ]
        );
    }

    #[test]
    fn hive_date() {
        let t = PrefixTemplate::parse("dt=$yyyy-$MM-$dd").unwrap();
        let r = t.render(&at(2024, 12, 31, 23, 59));
        assert_eq!(r, "dt=2024-12-31");
        assert_eq!(t.fixed_prefix(), "");
        assert_eq!(cols(&t), ["dt"]);
        assert_eq!(
            t.partition_values(&r),
            [("dt".to_string(), "2024-12-31".to_string())]
        );
    }

    #[test]
    fn hive_date_and_hour() {
        let t = PrefixTemplate::parse("dt=$yyyy-$MM-$dd/hh=$HH").unwrap();
        let r = t.render(&at(2024, 3, 5, 7, 0));
        assert_eq!(r, "dt=2024-03-05/hh=07");
        assert_eq!(cols(&t), ["dt", "hh"]);
        assert_eq!(
            t.partition_values(&r),
            [
                ("dt".to_string(), "2024-03-05".to_string()),
                ("hh".to_string(), "07".to_string())
            ]
        );
        assert_eq!(t.granularity(), Granularity::Hour);
    }

    #[test]
    fn static_segments_before_and_between() {
        let t = PrefixTemplate::parse("inventory/$yyyy/data/$MM").unwrap();
        let r = t.render(&at(2023, 7, 1, 0, 0));
        assert_eq!(r, "inventory/2023/data/07");
        assert_eq!(t.fixed_prefix(), "inventory");
        assert_eq!(cols(&t), ["year", "month"]);
        assert_eq!(
            t.partition_values(&r),
            [
                ("year".to_string(), "2023".to_string()),
                ("month".to_string(), "07".to_string())
            ]
        );
    }

    #[test]
    fn multi_level_fixed_prefix() {
        let t = PrefixTemplate::parse("lake/inv/x=$HH").unwrap();
        assert_eq!(t.fixed_prefix(), "lake/inv");
    }

    #[test]
    fn empty_template() {
        let t = PrefixTemplate::parse("").unwrap();
        assert_eq!(t.render(&at(2024, 1, 1, 0, 0)), "");
        assert_eq!(t.fixed_prefix(), "");
        assert!(cols(&t).is_empty());
        assert!(t.partition_values("").is_empty());
        assert_eq!(t.granularity(), Granularity::None);
    }

    #[test]
    fn static_only_template() {
        let t = PrefixTemplate::parse("a/b").unwrap();
        assert_eq!(t.render(&at(2024, 1, 1, 0, 0)), "a/b");
        assert_eq!(t.fixed_prefix(), "a/b");
        assert!(cols(&t).is_empty());
        assert!(t.partition_values("a/b").is_empty());
    }

    #[test]
    fn other_combinations_join_variable_names() {
        let t = PrefixTemplate::parse("$yyyy$MM/$HH-$mm/$dd-$MM-$yyyy").unwrap();
        assert_eq!(cols(&t), ["year_month", "hour_minute", "day_month_year"]);
        let r = t.render(&at(2024, 5, 6, 8, 9));
        assert_eq!(r, "202405/08-09/06-05-2024");
        assert_eq!(t.partition_values(&r)[1].1, "08-09");
    }

    #[test]
    fn static_segment_with_equals_is_not_a_column() {
        let t = PrefixTemplate::parse("src=s3/dt=$yyyy-$MM-$dd").unwrap();
        assert_eq!(cols(&t), ["dt"]);
        assert_eq!(t.fixed_prefix(), "src=s3");
    }
}
