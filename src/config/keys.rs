//! Typed keys of a pipelines file. A file, and each nested section of it (`parquet:`,
//! `retry:`, `storage:` …), is a struct of optional keys that serde reads with
//! `deny_unknown_fields`; the checkers of each kind of file then check what the keys mean
//! together. [`read_keys`] makes serde report every problem of a file rather than the first
//! it meets: it reads each key on its own first, so an unknown key or a wrongly typed value is
//! reported as `FILE: KEY: message` and the other keys are still read and checked. A nested
//! section is a [`Section`], which keeps its value as written until its checker reads it with
//! its own keys struct, its problems named `section.key`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_yaml::{Mapping, Value as Yaml};

use super::Problems;

/// Reads `value` as the keys struct `T` (every field optional, `deny_unknown_fields`); `at`
/// is the section's key (`""` for the whole file). Null is an empty section. Every unknown
/// key and every value serde cannot read as its field's type is a problem, and the struct
/// holds the keys that could be read.
pub(crate) fn read_keys<T>(value: &Yaml, at: &str, problems: &mut Problems) -> T
where
    T: DeserializeOwned + Default,
{
    match value {
        Yaml::Null => T::default(),
        Yaml::Mapping(map) => read_mapping(map, at, problems),
        _ => {
            let known = serde_aux::serde_introspection::serde_introspect::<T>().join(", ");
            problems.push(at, format!("expected a mapping with keys {known}"));
            T::default()
        }
    }
}

/// [`read_keys`] of a mapping.
pub(crate) fn read_mapping<T>(map: &Mapping, at: &str, problems: &mut Problems) -> T
where
    T: DeserializeOwned + Default,
{
    let fields = serde_aux::serde_introspection::serde_introspect::<T>();
    let known = fields.join(", ");
    let mut readable = Mapping::new();
    for (key, value) in map {
        let name = key
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{key:?}"));
        let path = if at.is_empty() {
            name.clone()
        } else {
            format!("{at}.{name}")
        };
        if !fields.contains(&name.as_str()) {
            problems.push(&path, format!("unknown key; expected one of {known}"));
            continue;
        }
        let alone = Mapping::from_iter([(key.clone(), value.clone())]);
        match serde_yaml::from_value::<T>(Yaml::Mapping(alone)) {
            Ok(_) => {
                readable.insert(key.clone(), value.clone());
            }
            Err(e) => problems.push(&path, e),
        }
    }
    // Keys that read alone read together (each is a separate optional field); serde, with
    // `deny_unknown_fields`, stays the judge of what a known key is.
    serde_yaml::from_value(Yaml::Mapping(readable)).unwrap_or_else(|e| {
        problems.push(if at.is_empty() { "(file)" } else { at }, e);
        T::default()
    })
}

/// A nested section of a file as written, read as its keys struct `S` by [`Section::read`]
/// (so that its problems are reported key by key, like the file's own).
pub(crate) struct Section<S> {
    value: Yaml,
    keys: PhantomData<S>,
}

impl<S: DeserializeOwned + Default> Section<S> {
    /// The section's keys; its problems are pushed as `at.KEY: message`.
    pub(crate) fn read(&self, at: &str, problems: &mut Problems) -> S {
        read_keys(&self.value, at, problems)
    }
}

impl<S> Section<S> {
    /// The section as written.
    pub(crate) fn value(&self) -> &Yaml {
        &self.value
    }
}

impl<S> Default for Section<S> {
    fn default() -> Self {
        Section {
            value: Yaml::Null,
            keys: PhantomData,
        }
    }
}

impl<S> fmt::Debug for Section<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<'de, S> Deserialize<'de> for Section<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Section {
            value: Yaml::deserialize(deserializer)?,
            keys: PhantomData,
        })
    }
}

/// A value written as a number or as text (`60s` or `60`, `128MiB` or `1048576`), kept as
/// text for its own parser.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NumberOrText(pub(crate) String);

impl<'de> Deserialize<'de> for NumberOrText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Yaml::deserialize(deserializer)? {
            Yaml::String(text) => Ok(NumberOrText(text)),
            Yaml::Number(n) => Ok(NumberOrText(n.to_string())),
            other => Err(serde::de::Error::invalid_type(
                unexpected(&other),
                &"a number or text",
            )),
        }
    }
}

/// How serde names a YAML value that is of the wrong type.
fn unexpected(value: &Yaml) -> serde::de::Unexpected<'_> {
    use serde::de::Unexpected;
    match value {
        Yaml::Null => Unexpected::Unit,
        Yaml::Bool(b) => Unexpected::Bool(*b),
        Yaml::Number(_) => Unexpected::Other("number"),
        Yaml::String(s) => Unexpected::Str(s),
        Yaml::Sequence(_) => Unexpected::Seq,
        Yaml::Mapping(_) => Unexpected::Map,
        Yaml::Tagged(_) => Unexpected::Other("tagged value"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        size: Option<NumberOrText>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: Option<String>,
        count: Option<usize>,
        #[serde(default)]
        inner: Section<Inner>,
    }

    fn read(text: &str) -> (Outer, Inner, Vec<String>) {
        let mut problems = Problems::new(Path::new("f.yaml"));
        let value: Yaml = serde_yaml::from_str(text).unwrap();
        let outer: Outer = read_keys(&value, "", &mut problems);
        let inner = outer.inner.read("inner", &mut problems);
        (outer, inner, problems.lines)
    }

    #[test]
    fn every_problem_of_every_level_is_reported_and_the_good_keys_are_kept() {
        let (outer, inner, problems) =
            read("name: a\ncount: many\ncolour: blue\ninner: {size: [1], shape: round}\n");
        assert_eq!(outer.name.as_deref(), Some("a"));
        assert_eq!(outer.count, None);
        assert_eq!(inner.size, None);
        assert_eq!(
            problems,
            [
                "f.yaml: count: invalid type: string \"many\", expected usize",
                "f.yaml: colour: unknown key; expected one of name, count, inner",
                "f.yaml: inner.size: invalid type: sequence, expected a number or text",
                "f.yaml: inner.shape: unknown key; expected one of size",
            ]
        );
    }

    #[test]
    fn numbers_and_text_are_both_kept_as_text_and_null_is_absent() {
        let (outer, inner, problems) = read("name: ~\ninner: {size: 128MiB}\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(outer.name, None);
        assert_eq!(inner.size, Some(NumberOrText("128MiB".into())));
        let (_, inner, _) = read("inner: {size: 1024}\n");
        assert_eq!(inner.size, Some(NumberOrText("1024".into())));
    }

    #[test]
    fn a_section_that_is_not_a_mapping_names_its_keys() {
        let (_, _, problems) = read("inner: 3\n");
        assert_eq!(
            problems,
            ["f.yaml: inner: expected a mapping with keys size"]
        );
    }
}
