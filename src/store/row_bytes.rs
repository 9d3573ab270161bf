//! Rows as bytes, so that an import can sort and compare millions of them without a heap
//! value per field: a row's primary key in an order-preserving form (comparing two encoded
//! keys as bytes orders them as SQLite orders the key columns), then its other columns in a
//! compact tagged form.
//!
//! Both sides of a snapshot import use it: the snapshot's rows (from [`Value`]s) and the rows
//! read back from the store (from the backend's own values), each seen as a [`Field`], one of
//! SQLite's storage classes. Two rows encode to the same bytes exactly when the store would
//! find them equal: a boolean is the integer 0 or 1, a timestamp its integer, and a zero
//! double has no sign (SQLite keeps none). Key order assumes each key column holds one storage
//! class, as declared columns do (integers and doubles are not compared with each other).

use crate::error::{Error, Result};
use crate::model::ColumnType;
use crate::store::Value;

/// A value as the store holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Field<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

impl<'a> From<&'a Value> for Field<'a> {
    fn from(v: &'a Value) -> Field<'a> {
        match v {
            Value::Null => Field::Null,
            Value::String(s) => Field::Text(s.as_bytes()),
            Value::Int64(n) | Value::TimestampMs(n) => Field::Int(*n),
            Value::Bool(b) => Field::Int(i64::from(*b)),
            Value::Double(d) => Field::Real(*d),
            Value::Binary(b) => Field::Blob(b),
        }
    }
}

// Tags of key fields, in SQLite's order of storage classes.
const KEY_NULL: u8 = 1;
const KEY_INT: u8 = 2;
const KEY_REAL: u8 = 3;
const KEY_TEXT: u8 = 4;
const KEY_BLOB: u8 = 5;

// Tags of the other fields.
const NULL: u8 = 0;
const INT: u8 = 1;
const REAL: u8 = 2;
const TEXT: u8 = 3;
const BLOB: u8 = 4;

/// Encodes and decodes the rows of one table.
#[derive(Debug, Clone)]
pub(crate) struct RowCodec {
    /// Table positions of the key columns, in key order.
    key: Vec<usize>,
    /// Table positions of the other columns, in table order.
    other: Vec<usize>,
    /// Every column's type, in table order.
    types: Vec<ColumnType>,
}

impl RowCodec {
    /// A codec for a table with these column types and key columns (table positions, in
    /// key order).
    pub(crate) fn new(types: Vec<ColumnType>, key: &[usize]) -> RowCodec {
        let other = (0..types.len()).filter(|i| !key.contains(i)).collect();
        RowCodec {
            key: key.to_vec(),
            other,
            types,
        }
    }

    /// How many key columns a row has.
    pub(crate) fn key_columns(&self) -> usize {
        self.key.len()
    }

    /// Appends the encoding of a row given as values in table order; returns the length of
    /// its key part.
    pub(crate) fn encode_values(&self, values: &[Value], out: &mut Vec<u8>) -> usize {
        let start = out.len();
        for &i in &self.key {
            encode_key_field(field_at(values, i), out);
        }
        let key_len = out.len() - start;
        for &i in &self.other {
            encode_field(field_at(values, i), out);
        }
        key_len
    }

    /// Appends the key part alone of a row whose key values are given in key order (a
    /// delete); returns its length.
    pub(crate) fn encode_key(&self, key: &[Value], out: &mut Vec<u8>) -> usize {
        let start = out.len();
        for j in 0..self.key.len() {
            encode_key_field(field_at(key, j), out);
        }
        out.len() - start
    }

    /// Appends the encoding of a row given field by field: `key(j)` is the j-th key column,
    /// `other(p)` the p-th of [`RowCodec::other_columns`]. Returns the length of the key part.
    pub(crate) fn encode_fields<'r>(
        &self,
        out: &mut Vec<u8>,
        mut key: impl FnMut(usize) -> Result<Field<'r>>,
        mut other: impl FnMut(usize) -> Result<Field<'r>>,
    ) -> Result<usize> {
        let start = out.len();
        for j in 0..self.key.len() {
            encode_key_field(key(j)?, out);
        }
        let key_len = out.len() - start;
        for p in 0..self.other.len() {
            encode_field(other(p)?, out);
        }
        Ok(key_len)
    }

    /// Calls `f` with each field of an encoded row and its table position, without copying
    /// (but for a key text that holds a zero byte, unescaped into `scratch`).
    pub(crate) fn for_each_field<E: From<Error>>(
        &self,
        row: &[u8],
        scratch: &mut Vec<u8>,
        mut f: impl FnMut(usize, Field<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut r = Reader { bytes: row, at: 0 };
        for &i in &self.key {
            match r.byte()? {
                tag @ (KEY_TEXT | KEY_BLOB) => {
                    let start = r.at;
                    let zero = row[start..]
                        .iter()
                        .position(|&b| b == 0)
                        .ok_or_else(|| r.corrupt())?;
                    let bytes = if row.get(start + zero + 1) == Some(&0) {
                        r.at = start + zero + 2;
                        &row[start..start + zero]
                    } else {
                        *scratch = r.unescape()?;
                        scratch.as_slice()
                    };
                    f(
                        i,
                        if tag == KEY_TEXT {
                            Field::Text(bytes)
                        } else {
                            Field::Blob(bytes)
                        },
                    )?;
                }
                _ => {
                    r.at -= 1;
                    f(i, r.key_field()?.as_field())?;
                }
            }
        }
        for &i in &self.other {
            match r.byte()? {
                TEXT => {
                    let n = r.len()?;
                    f(i, Field::Text(r.take(n)?))?;
                }
                BLOB => {
                    let n = r.len()?;
                    f(i, Field::Blob(r.take(n)?))?;
                }
                _ => {
                    r.at -= 1;
                    f(i, r.field()?.as_field())?;
                }
            }
        }
        r.end()?;
        Ok(())
    }

    /// The values of an encoded row, in table order.
    pub(crate) fn decode(&self, row: &[u8]) -> Result<Vec<Value>> {
        let mut values = vec![Value::Null; self.types.len()];
        let mut r = Reader { bytes: row, at: 0 };
        for &i in &self.key {
            values[i] = self.value(i, r.key_field()?)?;
        }
        for &i in &self.other {
            values[i] = self.value(i, r.field()?)?;
        }
        r.end()?;
        Ok(values)
    }

    /// The key values of an encoded row (or of its key part alone), in key order.
    pub(crate) fn decode_key(&self, row: &[u8]) -> Result<Vec<Value>> {
        let mut r = Reader { bytes: row, at: 0 };
        self.key
            .iter()
            .map(|&i| self.value(i, r.key_field()?))
            .collect()
    }

    fn value(&self, column: usize, f: Decoded) -> Result<Value> {
        Ok(match (f, self.types[column]) {
            (Decoded::Null, _) => Value::Null,
            (Decoded::Int(n), ColumnType::Bool) => Value::Bool(n != 0),
            (Decoded::Int(n), ColumnType::TimestampMs) => Value::TimestampMs(n),
            (Decoded::Int(n), _) => Value::Int64(n),
            (Decoded::Real(d), _) => Value::Double(d),
            (Decoded::Text(t), _) => Value::String(
                String::from_utf8(t)
                    .map_err(|e| Error::store_caused("a stored text value is not UTF-8", e))?,
            ),
            (Decoded::Blob(b), _) => Value::Binary(b),
        })
    }
}

fn field_at(values: &[Value], i: usize) -> Field<'_> {
    values.get(i).map_or(Field::Null, Field::from)
}

/// A double's bits with the sign of zero dropped.
fn real_bits(d: f64) -> u64 {
    if d == 0.0 {
        0
    } else {
        d.to_bits()
    }
}

fn encode_key_field(f: Field<'_>, out: &mut Vec<u8>) {
    match f {
        Field::Null => out.push(KEY_NULL),
        Field::Int(n) => {
            out.push(KEY_INT);
            out.extend_from_slice(&((n as u64) ^ (1 << 63)).to_be_bytes());
        }
        Field::Real(d) => {
            out.push(KEY_REAL);
            let bits = real_bits(d);
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits ^ (1 << 63)
            };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        Field::Text(t) => {
            out.push(KEY_TEXT);
            escape(t, out);
        }
        Field::Blob(b) => {
            out.push(KEY_BLOB);
            escape(b, out);
        }
    }
}

/// Bytes with each 0 written as 0, 0xFF and a 0, 0 terminator: a shorter string that is a
/// prefix of a longer one sorts first, as in SQLite's BINARY collation.
fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    let mut rest = bytes;
    while let Some(zero) = rest.iter().position(|&b| b == 0) {
        out.extend_from_slice(&rest[..zero]);
        out.extend_from_slice(&[0, 0xFF]);
        rest = &rest[zero + 1..];
    }
    out.extend_from_slice(rest);
    out.extend_from_slice(&[0, 0]);
}

fn encode_field(f: Field<'_>, out: &mut Vec<u8>) {
    match f {
        Field::Null => out.push(NULL),
        Field::Int(n) => {
            out.push(INT);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Field::Real(d) => {
            out.push(REAL);
            out.extend_from_slice(&real_bits(d).to_le_bytes());
        }
        Field::Text(t) => {
            out.push(TEXT);
            push_len(t.len(), out);
            out.extend_from_slice(t);
        }
        Field::Blob(b) => {
            out.push(BLOB);
            push_len(b.len(), out);
            out.extend_from_slice(b);
        }
    }
}

/// A length as LEB128.
fn push_len(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

enum Decoded {
    Null,
    Int(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Decoded {
    /// A number or NULL as a field (texts and blobs are read without copying instead).
    fn as_field(&self) -> Field<'_> {
        match self {
            Decoded::Null => Field::Null,
            Decoded::Int(n) => Field::Int(*n),
            Decoded::Real(d) => Field::Real(*d),
            Decoded::Text(t) => Field::Text(t),
            Decoded::Blob(b) => Field::Blob(b),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn corrupt(&self) -> Error {
        Error::store(format!(
            "an encoded row is corrupt at byte {} of {}",
            self.at,
            self.bytes.len()
        ))
    }

    fn byte(&mut self) -> Result<u8> {
        let b = *self.bytes.get(self.at).ok_or_else(|| self.corrupt())?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or_else(|| self.corrupt())?;
        let slice = self.bytes.get(self.at..end).ok_or_else(|| self.corrupt())?;
        self.at = end;
        Ok(slice)
    }

    fn eight(&mut self) -> Result<[u8; 8]> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(a)
    }

    fn len(&mut self) -> Result<usize> {
        let mut n = 0usize;
        for shift in (0..usize::BITS).step_by(7) {
            let b = self.byte()?;
            n |= usize::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(self.corrupt())
    }

    fn unescape(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            match self.byte()? {
                0 => match self.byte()? {
                    0 => return Ok(out),
                    0xFF => out.push(0),
                    _ => return Err(self.corrupt()),
                },
                b => out.push(b),
            }
        }
    }

    fn key_field(&mut self) -> Result<Decoded> {
        Ok(match self.byte()? {
            KEY_NULL => Decoded::Null,
            KEY_INT => Decoded::Int((u64::from_be_bytes(self.eight()?) ^ (1 << 63)) as i64),
            KEY_REAL => {
                let ordered = u64::from_be_bytes(self.eight()?);
                let bits = if ordered >> 63 == 1 {
                    ordered ^ (1 << 63)
                } else {
                    !ordered
                };
                Decoded::Real(f64::from_bits(bits))
            }
            KEY_TEXT => Decoded::Text(self.unescape()?),
            KEY_BLOB => Decoded::Blob(self.unescape()?),
            _ => return Err(self.corrupt()),
        })
    }

    fn field(&mut self) -> Result<Decoded> {
        Ok(match self.byte()? {
            NULL => Decoded::Null,
            INT => Decoded::Int(i64::from_le_bytes(self.eight()?)),
            REAL => Decoded::Real(f64::from_bits(u64::from_le_bytes(self.eight()?))),
            TEXT => {
                let n = self.len()?;
                Decoded::Text(self.take(n)?.to_vec())
            }
            BLOB => {
                let n = self.len()?;
                Decoded::Blob(self.take(n)?.to_vec())
            }
            _ => return Err(self.corrupt()),
        })
    }

    fn end(&self) -> Result<()> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(self.corrupt())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Field, RowCodec};
    use crate::model::ColumnType;
    use crate::store::Value;

    fn codec() -> RowCodec {
        use ColumnType::*;
        // Key: (b, n, k); other columns a, d, t, z.
        RowCodec::new(
            vec![String, Bool, Int64, Double, TimestampMs, String, Binary],
            &[0, 2, 5],
        )
    }

    fn row(b: &str, n: i64, k: &str) -> Vec<Value> {
        vec![
            Value::String(b.into()),
            Value::Bool(true),
            Value::Int64(n),
            Value::Double(-1.5),
            Value::TimestampMs(1_700_000_000_000),
            Value::String(k.into()),
            Value::Binary(vec![0, 1, 0xFF]),
        ]
    }

    fn key_of(values: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        let n = codec().encode_values(values, &mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn rows_round_trip() {
        let c = codec();
        for values in [
            row("b", -3, "a\0b"),
            row("", i64::MIN, ""),
            row("é", i64::MAX, "x\u{10FFFF}"),
            vec![
                Value::String("b".into()),
                Value::Null,
                Value::Int64(0),
                Value::Null,
                Value::Null,
                Value::String("k".into()),
                Value::Null,
            ],
        ] {
            let mut out = Vec::new();
            let key_len = c.encode_values(&values, &mut out);
            assert_eq!(c.decode(&out).unwrap(), values);
            let key = c.decode_key(&out[..key_len]).unwrap();
            assert_eq!(
                key,
                vec![values[0].clone(), values[2].clone(), values[5].clone()]
            );
            // A key alone (a delete's) encodes as the row's key part.
            let mut alone = Vec::new();
            assert_eq!(c.encode_key(&key, &mut alone), key_len);
            assert_eq!(alone, out[..key_len]);
        }
    }

    /// Visiting the fields of an encoded row sees what decoding it gives, keys with a zero
    /// byte included.
    #[test]
    fn fields_are_visited_without_decoding() {
        let c = codec();
        for values in [row("b", 3, "a\0b"), row("b\0", -1, "plain"), row("", 0, "")] {
            let mut out = Vec::new();
            c.encode_values(&values, &mut out);
            let mut seen = vec![None; values.len()];
            let mut scratch = Vec::new();
            c.for_each_field::<crate::error::Error>(&out, &mut scratch, |i, f| {
                seen[i] = Some(match f {
                    Field::Null => Value::Null,
                    Field::Int(n) => match &values[i] {
                        Value::Bool(_) => Value::Bool(n != 0),
                        Value::TimestampMs(_) => Value::TimestampMs(n),
                        _ => Value::Int64(n),
                    },
                    Field::Real(d) => Value::Double(d),
                    Field::Text(t) => Value::String(String::from_utf8(t.to_vec()).unwrap()),
                    Field::Blob(b) => Value::Binary(b.to_vec()),
                });
                Ok(())
            })
            .unwrap();
            let seen: Vec<Value> = seen.into_iter().map(Option::unwrap).collect();
            assert_eq!(seen, values);
        }
    }

    /// Encoded keys compare as SQLite compares the key columns: field by field, integers by
    /// value, text by its UTF-8 bytes with a prefix first.
    #[test]
    fn key_bytes_sort_as_the_key() {
        let keys = [
            ("a", -5, "z"),
            ("a", 0, ""),
            ("a", 0, "\0"),
            ("a", 0, "\0\0"),
            ("a", 0, "\0a"),
            ("a", 0, "a"),
            ("a", 0, "a\0"),
            ("a", 0, "a/"),
            ("a", 0, "ab"),
            ("a", 0, "z"),
            ("a", 0, "é"),
            ("a", 1, ""),
            ("a", i64::MAX, ""),
            ("a\0", i64::MIN, ""),
            ("ab", -1, ""),
        ];
        for w in keys.windows(2) {
            let (x, y) = (
                key_of(&row(w[0].0, w[0].1, w[0].2)),
                key_of(&row(w[1].0, w[1].1, w[1].2)),
            );
            assert!(x < y, "{:?} < {:?}", w[0], w[1]);
        }
    }

    /// A row read back from the store encodes to the same bytes as the values that wrote it;
    /// a different value, or another storage class, to other bytes.
    #[test]
    fn equal_rows_encode_equal() {
        let c = codec();
        let values = row("b", 7, "k");
        let mut from_values = Vec::new();
        c.encode_values(&values, &mut from_values);
        let stored = [
            Field::Text(b"b"),
            Field::Int(1),
            Field::Int(7),
            Field::Real(-1.5),
            Field::Int(1_700_000_000_000),
            Field::Text(b"k"),
            Field::Blob(&[0, 1, 0xFF]),
        ];
        let encode = |fields: &[Field<'static>]| {
            let mut out = Vec::new();
            c.encode_fields(
                &mut out,
                |j| Ok(fields[[0, 2, 5][j]]),
                |p| Ok(fields[[1, 3, 4, 6][p]]),
            )
            .unwrap();
            out
        };
        assert_eq!(encode(&stored), from_values);
        let mut other = stored;
        other[6] = Field::Text(&[0, 1, 0xFF]);
        assert_ne!(encode(&other), from_values);
        let mut zero = row("b", 7, "k");
        zero[3] = Value::Double(-0.0);
        let mut a = Vec::new();
        c.encode_values(&zero, &mut a);
        let mut positive = stored;
        positive[3] = Field::Real(0.0);
        assert_eq!(encode(&positive), a, "a zero double has no sign");
    }

    #[test]
    fn corrupt_bytes_are_an_error() {
        let c = codec();
        let mut out = Vec::new();
        c.encode_values(&row("b", 1, "k"), &mut out);
        for cut in [1, 5, out.len() - 1] {
            assert!(c.decode(&out[..cut]).is_err(), "cut at {cut}");
        }
        out.push(0);
        assert!(c.decode(&out).is_err(), "trailing byte");
    }
}
