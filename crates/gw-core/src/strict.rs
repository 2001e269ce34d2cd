//! Deserialization that takes a struct only from a table/object, never from a list.
//!
//! serde's derived `Deserialize` for a struct accepts two shapes: a map (`{"connect": 1}`)
//! and a sequence read positionally (`[1, 2, 3]` fills the fields in declaration order).
//! The configuration file and the admin API document a table/object wherever a struct is
//! expected, so the second shape is a mistake that must be refused, not stored.
//!
//! [`Strict`] wraps any [`Deserializer`] and forwards everything to it, except that a request
//! for a struct (`deserialize_struct`) is forwarded as a request for a map
//! (`deserialize_map`), and the visitor it passes down refuses a sequence with the inner
//! deserializer's own error: `invalid type: sequence, expected struct TimeoutConfig`. The
//! refusal in the visitor matters for formats whose `deserialize_map` is `deserialize_any`
//! (figment, toml): they would otherwise hand the struct's visitor a sequence all the same.
//!
//! It holds at every nesting level: every deserializer, `SeqAccess`, `MapAccess`,
//! `EnumAccess` and `VariantAccess` it hands out is wrapped again, and so is every seed, so a
//! struct inside an `Option`, a `Vec`, a map, a newtype or an enum is deserialized through
//! [`Strict`] as well. Error types are the inner deserializer's, so messages and the key
//! paths a format adds (figment's `routes.0.timeout`, serde_json's line and column) are what
//! they would be without the wrapper.
//!
//! What it leaves alone:
//!
//! - `deserialize_any`, `deserialize_seq` and the rest are forwarded as they are (with the
//!   visitor wrapped, so what lies below is still checked).
//! - Struct names that serde formats reserve for their own magic types (names starting with
//!   `$`, such as toml's datetime or `serde_spanned`'s span, and figment's `___figment_*`) are
//!   forwarded as `deserialize_struct`, untouched, so those types keep working.
//! - Untagged and internally tagged enums, and `#[serde(flatten)]` fields, first buffer their
//!   input into serde's private `Content` and deserialize the variant or the flattened struct
//!   from that buffer; that second step does not go through [`Strict`], so a struct there
//!   still accepts a sequence. The buffering itself does go through it, and so does every
//!   struct that is not behind such a buffer.
//! - `deserialize_ignored_any` is forwarded with its visitor as is: ignored input has no
//!   shape to check.
//!
//! ```
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize)]
//! struct Timeout { connect: f64, read: f64 }
//!
//! #[derive(Debug, Deserialize)]
//! struct Route { id: String, timeout: Option<Timeout> }
//!
//! let ok: Route = gw_core::strict::from_str(r#"{"id": "a", "timeout": {"connect": 1, "read": 2}}"#).unwrap();
//! assert_eq!(ok.timeout.unwrap().read, 2.0);
//!
//! // serde_json alone takes the list positionally; through Strict it is refused.
//! let text = r#"{"id": "a", "timeout": [1, 2]}"#;
//! assert!(serde_json::from_str::<Route>(text).is_ok());
//! let e = gw_core::strict::from_str::<Route>(text).unwrap_err();
//! assert!(e.to_string().contains("invalid type: sequence, expected struct Timeout"), "{e}");
//! ```
//!
//! With a library that calls `Deserialize` itself (figment's `extract`), ask it for a
//! [`Checked<T>`] instead of a `T`.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, Error as _, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};
use serde::Deserialize;

/// A [`Deserializer`] that refuses a sequence where a struct is expected, at every nesting
/// level; see the [module documentation](self).
#[derive(Clone, Copy, Debug)]
pub struct Strict<D>(D);

impl<D> Strict<D> {
    /// Wraps `inner`.
    pub fn new(inner: D) -> Self {
        Self(inner)
    }

    /// The wrapped deserializer.
    pub fn into_inner(self) -> D {
        self.0
    }
}

/// `T::deserialize(Strict::new(deserializer))`.
pub fn from_deserializer<'de, T, D>(deserializer: D) -> Result<T, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(Strict::new(deserializer))
}

/// Like `serde_json::from_str`, through [`Strict`].
pub fn from_str<'a, T: Deserialize<'a>>(text: &'a str) -> serde_json::Result<T> {
    from_slice(text.as_bytes())
}

/// Like `serde_json::from_slice`, through [`Strict`].
pub fn from_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(Strict::new(&mut de))?;
    de.end()?;
    Ok(value)
}

/// Like `serde_json::from_value`, through [`Strict`].
pub fn from_value<T: de::DeserializeOwned>(value: serde_json::Value) -> serde_json::Result<T> {
    T::deserialize(Strict::new(value))
}

/// A `T` deserialized through [`Strict`], for libraries that call `Deserialize` themselves:
/// `figment.extract::<Checked<Config>>()` keeps figment's error paths and sources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked<T>(pub T);

impl<T> Checked<T> {
    /// The value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_deserializer(deserializer).map(Checked)
    }
}

/// Whether `name` is one a format reserves for a magic type of its own.
fn is_reserved(name: &str) -> bool {
    name.starts_with('$') || name.starts_with("___figment")
}

/// Forwards `deserialize_*` methods that take only a visitor.
macro_rules! forward {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method(Wrap::new(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward! {
        deserialize_any deserialize_bool
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_option deserialize_unit
        deserialize_seq deserialize_map deserialize_identifier
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Wrap::new(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Wrap::new(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Wrap::new(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_tuple_struct(name, len, Wrap::new(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        if is_reserved(name) {
            self.0.deserialize_struct(name, fields, Wrap::new(visitor))
        } else {
            self.0.deserialize_map(Wrap::table_only(visitor))
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Wrap::new(visitor))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_ignored_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A visitor that hands the inner visitor wrapped accesses and deserializers; with
/// `table_only`, one that refuses a sequence (the visitor of a struct).
struct Wrap<V> {
    inner: V,
    table_only: bool,
}

impl<V> Wrap<V> {
    fn new(inner: V) -> Self {
        Self {
            inner,
            table_only: false,
        }
    }

    fn table_only(inner: V) -> Self {
        Self {
            inner,
            table_only: true,
        }
    }
}

/// Forwards `visit_*` methods that take a plain value.
macro_rules! visit {
    ($($method:ident: $ty:ty)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    visit! {
        visit_bool: bool
        visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64 visit_i128: i128
        visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64 visit_u128: u128
        visit_f32: f32 visit_f64: f64 visit_char: char
        visit_str: &str visit_borrowed_str: &'de str visit_string: String
        visit_bytes: &[u8] visit_borrowed_bytes: &'de [u8] visit_byte_buf: Vec<u8>
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Strict::new(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(Strict::new(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if self.table_only {
            return Err(A::Error::invalid_type(Unexpected::Seq, &self));
        }
        self.inner.visit_seq(Seq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(Map(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(Enum(data))
    }
}

/// A seed whose value is deserialized through [`Strict`].
struct Seed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Strict::new(d))
    }
}

struct Seq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct Map<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Seed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Seed(seed))
    }

    fn next_entry_seed<K: DeserializeSeed<'de>, T: DeserializeSeed<'de>>(
        &mut self,
        key: K,
        value: T,
    ) -> Result<Option<(K::Value, T::Value)>, A::Error> {
        self.0.next_entry_seed(Seed(key), Seed(value))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct Enum<A>(A);

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<A> {
    type Error = A::Error;
    type Variant = Variant<A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        self.0
            .variant_seed(Seed(seed))
            .map(|(value, variant)| (value, Variant(variant)))
    }
}

struct Variant<A>(A);

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap::new(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrap::table_only(visitor))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use figment::providers::{Format, Toml};
    use figment::Figment;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: u32,
        #[serde(default)]
        b: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Wrapper(Inner);

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Choice {
        Plain,
        Boxed(Inner),
        Fields { inner: Inner },
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Flat {
        name: String,
        #[serde(flatten)]
        rest: BTreeMap<String, u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        direct: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
        #[serde(default)]
        map: BTreeMap<String, Inner>,
        #[serde(default)]
        newtype: Option<Wrapper>,
        #[serde(default)]
        choice: Option<Choice>,
        #[serde(default)]
        aud: Option<OneOrMany>,
        #[serde(default)]
        flat: Option<Flat>,
    }

    const SEQ: &str = "invalid type: sequence, expected struct Inner";

    /// Each case as JSON: the map shape parses, the list shape is refused by name.
    const JSON_CASES: [(&str, &str); 5] = [
        (r#"{"direct": {"a": 1}}"#, r#"{"direct": [1, 2]}"#),
        (r#"{"list": [{"a": 1}]}"#, r#"{"list": [{"a": 1}, [1, 2]]}"#),
        (r#"{"map": {"k": {"a": 1}}}"#, r#"{"map": {"k": [1]}}"#),
        (r#"{"newtype": {"a": 1}}"#, r#"{"newtype": [1]}"#),
        (
            r#"{"choice": {"fields": {"inner": {"a": 1}}}}"#,
            r#"{"choice": {"boxed": [1, 2]}}"#,
        ),
    ];

    #[test]
    fn json_text_refuses_a_list_for_a_struct_at_every_level() {
        for (good, bad) in JSON_CASES {
            from_str::<Outer>(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            serde_json::from_str::<Outer>(bad).expect("plain serde_json takes the list");
            let e = from_str::<Outer>(bad).unwrap_err().to_string();
            assert!(e.contains(SEQ), "{bad}: {e}");
            assert!(e.contains("line 1 column"), "position kept: {e}");
        }
    }

    #[test]
    fn json_values_refuse_a_list_for_a_struct_at_every_level() {
        for (good, bad) in JSON_CASES {
            let good: serde_json::Value = serde_json::from_str(good).unwrap();
            from_value::<Outer>(good).unwrap();
            let bad: serde_json::Value = serde_json::from_str(bad).unwrap();
            serde_json::from_value::<Outer>(bad.clone()).expect("plain serde_json takes it");
            let e = from_value::<Outer>(bad).unwrap_err().to_string();
            assert!(e.contains(SEQ), "{e}");
        }
    }

    #[test]
    fn the_top_level_itself_must_be_a_map() {
        let e = from_str::<Inner>("[1, 2]").unwrap_err().to_string();
        assert!(e.contains(SEQ), "{e}");
        assert_eq!(
            from_str::<Inner>(r#"{"a": 7}"#).unwrap(),
            Inner { a: 7, b: 0 }
        );
        let e = from_str::<Inner>(r#"{"a": 1} x"#).unwrap_err().to_string();
        assert!(e.contains("trailing characters"), "{e}");
    }

    #[test]
    fn other_errors_are_unchanged() {
        for text in [
            r#"{"direct": {"a": 1, "z": 2}}"#,
            r#"{"direct": {"a": "one"}}"#,
            r#"{"nope": 1}"#,
            r#"{"choice": "other"}"#,
        ] {
            let plain = serde_json::from_str::<Outer>(text).unwrap_err().to_string();
            let strict = from_str::<Outer>(text).unwrap_err().to_string();
            assert_eq!(plain, strict, "{text}");
        }
    }

    #[test]
    fn enums_untagged_and_flatten_keep_working() {
        let text = r#"{
            "choice": "plain",
            "aud": ["x", "y"],
            "flat": {"name": "n", "k": 3}
        }"#;
        let v: Outer = from_str(text).unwrap();
        assert_eq!(v.choice, Some(Choice::Plain));
        assert_eq!(v.aud, Some(OneOrMany::Many(vec!["x".into(), "y".into()])));
        assert_eq!(v.flat.unwrap().rest["k"], 3);
        let v: Outer = from_str(r#"{"aud": "x", "choice": {"boxed": {"a": 2}}}"#).unwrap();
        assert_eq!(v.aud, Some(OneOrMany::One("x".into())));
        assert_eq!(v.choice, Some(Choice::Boxed(Inner { a: 2, b: 0 })));
        // A list is still a list where one is expected.
        let v: Vec<u32> = from_str("[1, 2]").unwrap();
        assert_eq!(v, [1, 2]);
        let v: (u32, String) = from_str(r#"[1, "x"]"#).unwrap();
        assert_eq!(v, (1, "x".into()));
    }

    /// Each case as TOML.
    const TOML_CASES: [(&str, &str, &str); 5] = [
        ("direct = { a = 1 }", "direct = [1, 2]", "direct"),
        ("[[list]]\na = 1", "list = [{ a = 1 }, [1, 2]]", "list.1"),
        ("[map.k]\na = 1", "map = { k = [1] }", "map.k"),
        ("newtype = { a = 1 }", "newtype = [1]", "newtype"),
        (
            "[choice.fields.inner]\na = 1",
            "choice = { boxed = [1, 2] }",
            "choice.boxed",
        ),
    ];

    #[test]
    fn toml_refuses_a_list_for_a_struct_at_every_level() {
        for (good, bad, _) in TOML_CASES {
            from_deserializer::<Outer, _>(toml::Deserializer::new(good))
                .unwrap_or_else(|e| panic!("{good}: {e}"));
            toml::from_str::<Outer>(bad).expect("plain toml takes the list");
            let e = from_deserializer::<Outer, _>(toml::Deserializer::new(bad))
                .unwrap_err()
                .to_string();
            assert!(e.contains(SEQ), "{bad}: {e}");
        }
    }

    #[test]
    fn figment_refuses_a_list_for_a_struct_and_keeps_the_path() {
        for (good, bad, path) in TOML_CASES {
            Figment::from(Toml::string(good))
                .extract::<Checked<Outer>>()
                .unwrap_or_else(|e| panic!("{good}: {e}"));
            let plain = Figment::from(Toml::string(bad)).extract::<Outer>();
            plain.expect("plain figment takes the list");
            let e = Figment::from(Toml::string(bad))
                .extract::<Checked<Outer>>()
                .unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains("invalid type: found sequence, expected struct Inner"),
                "{bad}: {text}"
            );
            assert_eq!(e.path.join("."), path, "{bad}: {text}");
        }
        // And through `Strict` over figment's own value.
        let value: figment::value::Value = Figment::from(Toml::string("direct = [1]"))
            .extract()
            .unwrap();
        let e = from_deserializer::<Outer, _>(&value).unwrap_err();
        assert!(e.to_string().contains("found sequence"), "{e}");
        assert_eq!(e.path, ["direct"]);
    }

    #[test]
    fn reserved_struct_names_reach_the_format() {
        // figment's magic `Value` asks for a struct of a reserved name.
        #[derive(Debug, Deserialize)]
        struct Holder {
            any: figment::value::Value,
        }
        let h = Figment::from(Toml::string("any = [1, 2]"))
            .extract::<Checked<Holder>>()
            .unwrap();
        assert!(h.0.any.as_array().is_some_and(|a| a.len() == 2));
        assert!(is_reserved("$__toml_private_datetime"));
        assert!(!is_reserved("Inner"));
    }
}
