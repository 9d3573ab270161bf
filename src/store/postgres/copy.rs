//! The tuples of `COPY … TO STDOUT (FORMAT binary)`, as the server streams them.
//!
//! A shard whose query has no parameters but integers reads its rows this way instead of as
//! query results (see [`read`](super::read)): each row arrives as the field values
//! alone, with no per-row description to allocate and look up, and the server writes them
//! with the same binary send functions (the values decode exactly as query results in
//! binary format do).
//!
//! The format (PostgreSQL's `COPY` documentation, "Binary Format"): an 11-byte signature,
//! a 32-bit flags field, a 32-bit header-extension length and that many bytes; then each
//! tuple as a 16-bit field count and, per field, a 32-bit length (−1 for NULL) and that many
//! bytes; then a 16-bit −1 as the trailer. All integers are big-endian. The server sends
//! each tuple in a `CopyData` message of its own (the header with the first), but nothing
//! here relies on that: a tuple split over messages is put together again.

use bytes::Bytes;

/// The signature every binary `COPY` stream starts with.
pub(super) const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Flag bit 16: OIDs are included in the data (servers before 12 only; never asked for).
const WITH_OIDS: u32 = 1 << 16;

/// What was expected when data follows the trailer (in the last message, or in a later one).
pub(super) const AFTER_TRAILER: &str =
    "the end of the data after the trailer, the server sent more";

/// What [`CopyTuples::next_tuple`] found.
pub(super) enum Next<'a> {
    /// A whole tuple.
    Tuple(Fields<'a>),
    /// The data so far ends inside a tuple (or before one): [`CopyTuples::push`] the next.
    NeedMore,
    /// The trailer: no tuple follows.
    End,
}

/// Splits a binary `COPY` stream into tuples of `fields` fields each.
pub(super) struct CopyTuples {
    fields: usize,
    /// The data not yet parsed starts at `pos`.
    data: Bytes,
    pos: usize,
    header_read: bool,
    ended: bool,
}

impl CopyTuples {
    /// A parser of tuples with `fields` fields each.
    pub(super) fn new(fields: usize) -> CopyTuples {
        CopyTuples {
            fields,
            data: Bytes::new(),
            pos: 0,
            header_read: false,
            ended: false,
        }
    }

    /// Adds the next message's data.
    pub(super) fn push(&mut self, chunk: Bytes) {
        if self.pos == self.data.len() {
            self.data = chunk;
        } else {
            // Rare: a tuple split over messages.
            let mut joined = Vec::with_capacity(self.data.len() - self.pos + chunk.len());
            joined.extend_from_slice(&self.data[self.pos..]);
            joined.extend_from_slice(&chunk);
            self.data = Bytes::from(joined);
        }
        self.pos = 0;
    }

    /// The next tuple, if the data pushed so far holds all of it. A malformed stream (bad
    /// signature, a field count other than expected, a negative length but −1, data after the
    /// trailer) is an error that says what was expected.
    pub(super) fn next_tuple(&mut self) -> Result<Next<'_>, String> {
        if self.ended {
            return match self.pos == self.data.len() {
                true => Ok(Next::End),
                false => Err(AFTER_TRAILER.into()),
            };
        }
        let rest = &self.data[self.pos..];
        if !self.header_read {
            let Some(header_len) = header_len(rest)? else {
                return Ok(Next::NeedMore);
            };
            self.header_read = true;
            self.pos += header_len;
            return self.next_tuple();
        }
        let Some(count) = read_i16(rest, 0) else {
            return Ok(Next::NeedMore);
        };
        if count == -1 {
            self.ended = true;
            self.pos += 2;
            return self.next_tuple();
        }
        if usize::try_from(count).ok() != Some(self.fields) {
            return Err(format!(
                "tuples of {} fields, the server sent one of {count}",
                self.fields
            ));
        }
        let Some(len) = tuple_len(rest, self.fields)? else {
            return Ok(Next::NeedMore);
        };
        let start = self.pos + 2;
        self.pos += len;
        Ok(Next::Tuple(Fields {
            data: &self.data[start..self.pos],
            at: 0,
            index: 0,
        }))
    }

    /// Whether the trailer has been read.
    #[cfg(test)]
    fn ended(&self) -> bool {
        self.ended
    }
}

/// The length of the header at the start of `data`, `None` when `data` ends inside it.
fn header_len(data: &[u8]) -> Result<Option<usize>, String> {
    let fixed = SIGNATURE.len() + 8;
    if data.len() < fixed {
        // A prefix that already differs from the signature will never become one.
        let known = data.len().min(SIGNATURE.len());
        if data[..known] != SIGNATURE[..known] {
            return Err("the binary COPY signature, the server sent something else".into());
        }
        return Ok(None);
    }
    if data[..SIGNATURE.len()] != SIGNATURE[..] {
        return Err("the binary COPY signature, the server sent something else".into());
    }
    let flags = read_u32(data, SIGNATURE.len()).unwrap_or(0);
    if flags & WITH_OIDS != 0 {
        return Err("tuples without OIDs, the server sent OIDs".into());
    }
    let extension = read_u32(data, SIGNATURE.len() + 4).unwrap_or(0) as usize;
    let len = fixed.saturating_add(extension);
    Ok((data.len() >= len).then_some(len))
}

/// The length (field count included) of the tuple of `fields` fields at the start of
/// `data`, `None` when `data` ends inside it.
fn tuple_len(data: &[u8], fields: usize) -> Result<Option<usize>, String> {
    let mut at = 2;
    for field in 0..fields {
        let Some(len) = read_i32(data, at) else {
            return Ok(None);
        };
        at += 4;
        match len {
            -1 => {}
            len if len >= 0 => at += len as usize,
            len => return Err(format!("a length of field {field}, the server sent {len}")),
        }
        if at > data.len() {
            return Ok(None);
        }
    }
    Ok(Some(at))
}

fn read_i16(data: &[u8], at: usize) -> Option<i16> {
    let bytes = data.get(at..at + 2)?;
    Some(i16::from_be_bytes([bytes[0], bytes[1]]))
}

fn read_i32(data: &[u8], at: usize) -> Option<i32> {
    read_u32(data, at).map(|v| v as i32)
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// The fields of one whole tuple, read in order.
pub(super) struct Fields<'a> {
    /// The fields (length, then bytes, each), the count left out.
    data: &'a [u8],
    at: usize,
    /// The index of the next field.
    index: usize,
}

impl<'a> Fields<'a> {
    /// Field `index` (`None` for NULL). Fields are read in order: asking for another than
    /// the next one is an error.
    pub(super) fn value(&mut self, index: usize) -> Result<Option<&'a [u8]>, String> {
        if index != self.index {
            return Err(format!(
                "fields are read in order: field {index} asked for, {} is next",
                self.index
            ));
        }
        // `tuple_len` checked every length and that the tuple is whole.
        let len = read_i32(self.data, self.at).ok_or("a whole tuple")?;
        self.at += 4;
        self.index += 1;
        if len < 0 {
            return Ok(None);
        }
        let value = self
            .data
            .get(self.at..self.at + len as usize)
            .ok_or("a whole tuple")?;
        self.at += len as usize;
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        let mut h = SIGNATURE.to_vec();
        h.extend(0u32.to_be_bytes());
        h.extend(0u32.to_be_bytes());
        h
    }

    fn tuple(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut t = (values.len() as i16).to_be_bytes().to_vec();
        for v in values {
            match v {
                None => t.extend((-1i32).to_be_bytes()),
                Some(v) => {
                    t.extend((v.len() as i32).to_be_bytes());
                    t.extend(*v);
                }
            }
        }
        t
    }

    const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

    /// Tuples as their fields' values.
    type Tuples = Vec<Vec<Option<Vec<u8>>>>;

    /// Every tuple of `chunks` as field values, and whether the trailer was seen.
    fn parse(fields: usize, chunks: &[&[u8]]) -> Result<(Tuples, bool), String> {
        let mut p = CopyTuples::new(fields);
        let mut out = Vec::new();
        let mut chunks = chunks.iter();
        loop {
            match p.next_tuple()? {
                Next::Tuple(mut f) => out.push(
                    (0..fields)
                        .map(|i| f.value(i).map(|v| v.map(<[u8]>::to_vec)))
                        .collect::<Result<_, _>>()?,
                ),
                Next::NeedMore => match chunks.next() {
                    Some(c) => p.push(Bytes::copy_from_slice(c)),
                    None => return Ok((out, p.ended())),
                },
                Next::End => return Ok((out, true)),
            }
        }
    }

    fn stream() -> (Vec<u8>, Tuples) {
        let rows: Vec<Vec<Option<&[u8]>>> = vec![
            vec![Some(b"alpha"), None, Some(&[0, 0, 0, 0, 0, 0, 0, 7])],
            vec![Some(b""), Some(b"x"), None],
            vec![None, None, None],
        ];
        let mut data = header();
        for r in &rows {
            data.extend(tuple(r));
        }
        data.extend(TRAILER);
        let expected = rows
            .iter()
            .map(|r| r.iter().map(|v| v.map(<[u8]>::to_vec)).collect())
            .collect();
        (data, expected)
    }

    #[test]
    fn tuples_are_read_however_the_stream_is_cut() {
        let (data, expected) = stream();
        assert_eq!(parse(3, &[&data]).unwrap(), (expected.clone(), true));
        // Every cut into two messages, and one byte per message.
        for cut in 0..=data.len() {
            let (a, b) = data.split_at(cut);
            assert_eq!(
                parse(3, &[a, b]).unwrap(),
                (expected.clone(), true),
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(parse(3, &bytes).unwrap(), (expected, true));
    }

    #[test]
    fn a_stream_cut_short_has_not_ended() {
        let (data, expected) = stream();
        let (tuples, ended) = parse(3, &[&data[..data.len() - 2]]).unwrap();
        assert_eq!((tuples, ended), (expected.clone(), false));
        let (tuples, ended) = parse(3, &[&data[..data.len() - 3]]).unwrap();
        assert_eq!((tuples.len(), ended), (2, false));
    }

    #[test]
    fn header_extensions_are_skipped() {
        let mut data = SIGNATURE.to_vec();
        data.extend(0u32.to_be_bytes());
        data.extend(3u32.to_be_bytes());
        data.extend(b"ext");
        data.extend(tuple(&[Some(b"v")]));
        data.extend(TRAILER);
        let (tuples, ended) = parse(1, &[&data]).unwrap();
        assert_eq!((tuples, ended), (vec![vec![Some(b"v".to_vec())]], true));
    }

    #[test]
    fn malformed_streams_are_errors_that_say_what_was_expected() {
        let (data, _) = stream();
        let error = |fields: usize, data: &[u8]| parse(fields, &[data]).unwrap_err();
        assert!(error(3, b"PGCOPY\nX").contains("signature"));
        assert!(error(3, b"COPY\n").contains("signature"));
        let mut oids = header();
        oids[SIGNATURE.len()..SIGNATURE.len() + 4].copy_from_slice(&WITH_OIDS.to_be_bytes());
        assert!(error(3, &oids).contains("without OIDs"));
        assert!(error(4, &data).contains("tuples of 4 fields, the server sent one of 3"));
        let mut negative = header();
        negative.extend(1i16.to_be_bytes());
        negative.extend((-2i32).to_be_bytes());
        assert!(error(1, &negative).contains("field 0, the server sent -2"));
        let mut after = data.clone();
        after.push(0);
        assert!(error(3, &after).contains("after the trailer"));
    }

    #[test]
    fn fields_are_read_in_order_only() {
        let data = tuple(&[Some(b"a"), Some(b"b")]);
        let mut fields = Fields {
            data: &data[2..],
            at: 0,
            index: 0,
        };
        assert!(fields
            .value(1)
            .unwrap_err()
            .contains("field 1 asked for, 0 is next"));
        assert_eq!(fields.value(0).unwrap(), Some(&b"a"[..]));
        assert_eq!(fields.value(1).unwrap(), Some(&b"b"[..]));
    }
}
