//! The values expressions compute with, and GitHub's coercion rules.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::number::{format_number, parse_number_str};

/// A JSON-like value. Arrays and objects are shared (`Arc`): GitHub compares them by identity,
/// so `a == a` holds but two equal-looking arrays are not equal.
///
/// Object keys are looked up case-insensitively (GitHub's contexts are), exact matches first.
#[derive(Debug, Clone, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Arc<Vec<Value>>),
    Object(Arc<BTreeMap<String, Value>>),
}

impl Value {
    pub fn string(s: impl Into<String>) -> Self {
        Value::String(s.into())
    }

    pub fn array(items: Vec<Value>) -> Self {
        Value::Array(Arc::new(items))
    }

    pub fn object(map: BTreeMap<String, Value>) -> Self {
        Value::Object(Arc::new(map))
    }

    /// Builds an object from `(key, value)` pairs.
    pub fn from_pairs<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Self {
        Value::object(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// Falsy: `false`, `0`, `-0`, `NaN`, `''`, `null`. Everything else (arrays and objects
    /// included) is truthy.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::String(s) => !s.is_empty(),
            Value::Array(_) | Value::Object(_) => true,
        }
    }

    /// Number coercion: null 0, booleans 1/0, strings parsed (empty is 0, invalid is NaN),
    /// arrays and objects NaN.
    pub fn to_number(&self) -> f64 {
        match self {
            Value::Null => 0.0,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => *n,
            Value::String(s) => parse_number_str(s),
            Value::Array(_) | Value::Object(_) => f64::NAN,
        }
    }

    /// String coercion: null is `''`, booleans `true`/`false`, numbers in .NET `G15` format,
    /// arrays `Array` and objects `Object`.
    pub fn to_display_string(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => format_number(*n),
            Value::String(s) => s.clone(),
            Value::Array(_) => "Array".into(),
            Value::Object(_) => "Object".into(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Property lookup: case-insensitive on objects (exact match first), `None` otherwise.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let Value::Object(map) = self else {
            return None;
        };
        if let Some(v) = map.get(key) {
            return Some(v);
        }
        map.iter()
            .find(|(k, _)| eq_ignore_case(k, key))
            .map(|(_, v)| v)
    }

    /// Follows a dotted path of property names (`"github.event.pull_request.number"`).
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(self, |v, k| v.get(k))
    }

    /// GitHub's loose equality: same kinds compare directly (strings ignoring case, arrays and
    /// objects by identity); different kinds compare as numbers; NaN equals nothing.
    pub fn loose_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => a == b,
            (Value::String(a), Value::String(b)) => eq_ignore_case(a, b),
            (Value::Array(a), Value::Array(b)) => Arc::ptr_eq(a, b),
            (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
            _ => {
                let (a, b) = (self.to_number(), other.to_number());
                a == b
            }
        }
    }

    /// Ordering for `<`, `<=`, `>`, `>=`: strings ignoring case, otherwise numbers; `None`
    /// (every comparison false) when NaN is involved or both are arrays/objects.
    pub fn loose_cmp(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::String(a), Value::String(b)) => Some(cmp_ignore_case(a, b)),
            (Value::Array(_) | Value::Object(_), Value::Array(_) | Value::Object(_)) => None,
            _ => self.to_number().partial_cmp(&other.to_number()),
        }
    }

    /// JSON text as `toJSON` prints it: indented by two spaces, keys sorted.
    pub fn to_json_pretty(&self) -> String {
        let mut out = String::new();
        write_json(&mut out, self, 0, true);
        out
    }

    /// Compact JSON text.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        write_json(&mut out, self, 0, false);
        out
    }

    /// Converts parsed JSON (numbers become `f64`).
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(a) => Value::array(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::object(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Parses JSON text (what `fromJSON` does).
    pub fn parse_json(text: &str) -> Result<Value, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(Value::from_json(&v))
    }
}

/// Structural equality, for tests and callers (not GitHub's `==`, which is [`Value::loose_eq`]).
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => a == b,
            _ => false,
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

fn fold(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(char::to_uppercase)
}

/// Ordinal comparison ignoring case (both sides upper-cased), as .NET's `OrdinalIgnoreCase`.
pub(crate) fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || fold(a).eq(fold(b))
}

pub(crate) fn cmp_ignore_case(a: &str, b: &str) -> Ordering {
    fold(a).cmp(fold(b))
}

fn write_json(out: &mut String, v: &Value, indent: usize, pretty: bool) {
    let nl = |out: &mut String, level: usize| {
        if pretty {
            out.push('\n');
            out.push_str(&"  ".repeat(level));
        }
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_finite() {
                let s = format_number(*n);
                // JSON wants a lower-case exponent sign form like 1E+15: keep as is (valid JSON).
                out.push_str(&s);
            } else {
                out.push_str("null");
            }
        }
        Value::String(s) => write_json_string(out, s),
        Value::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, indent + 1);
                write_json(out, item, indent + 1, pretty);
            }
            nl(out, indent);
            out.push(']');
        }
        Value::Object(o) => {
            if o.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, item)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, indent + 1);
                write_json_string(out, k);
                out.push_str(if pretty { ": " } else { ":" });
                write_json(out, item, indent + 1, pretty);
            }
            nl(out, indent);
            out.push('}');
        }
    }
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coercions() {
        assert!(Value::Null.loose_eq(&Value::Number(0.0)));
        assert!(Value::Bool(true).loose_eq(&Value::Number(1.0)));
        assert!(Value::string("ABC").loose_eq(&Value::string("abc")));
        assert!(Value::string(" 0xff ").loose_eq(&Value::Number(255.0)));
        assert!(!Value::Number(f64::NAN).loose_eq(&Value::Number(f64::NAN)));
        let a = Value::array(vec![]);
        assert!(a.loose_eq(&a.clone()));
        assert!(!a.loose_eq(&Value::array(vec![])));
        assert_eq!(
            Value::string("a").loose_cmp(&Value::string("B")),
            Some(Ordering::Less)
        );
    }

    #[test]
    fn json_round_trip_and_pretty() {
        let v = Value::parse_json(r#"{"b":[1,2.5,"x"],"a":null}"#).unwrap();
        assert_eq!(v.to_json(), r#"{"a":null,"b":[1,2.5,"x"]}"#);
        assert_eq!(
            v.to_json_pretty(),
            "{\n  \"a\": null,\n  \"b\": [\n    1,\n    2.5,\n    \"x\"\n  ]\n}"
        );
    }

    #[test]
    fn case_insensitive_get() {
        let v = Value::from_pairs([("Event_Name", Value::from("push"))]);
        assert_eq!(v.get("event_name"), Some(&Value::from("push")));
    }
}
