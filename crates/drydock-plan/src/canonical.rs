//! Canonical JSON for digests: object keys sorted, no whitespace, serde_json's number and
//! string formatting. Independent of serde_json's `preserve_order` feature.

use serde::Serialize;
use serde_json::Value;

/// The canonical JSON bytes of `value`.
pub fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain data structures to a Value cannot fail (no non-string map keys here).
    let v = serde_json::to_value(value).unwrap_or(Value::Null);
    let mut out = Vec::new();
    write(&v, &mut out);
    out
}

fn write(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(&Value::String(k.clone()), out);
                out.push(b':');
                write(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// sha256 of the canonical JSON of `value`.
pub fn digest<T: Serialize>(value: &T) -> drydock_oci::Digest {
    drydock_oci::Digest::sha256(&to_vec(value))
}

/// sha256 of `value`'s compact JSON in declaration order: canonical for drydock's own IR types,
/// whose fields have a fixed order and whose maps are `BTreeMap`s (sorted whatever serde_json
/// features are enabled). Several times faster than [`digest`], which goes through a `Value`.
pub fn digest_fixed<T: Serialize>(value: &T) -> drydock_oci::Digest {
    // Serialising plain data cannot fail.
    drydock_oci::Digest::sha256(&serde_json::to_vec(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"d": [1, {"z": 0, "y": "é"}], "c": null}});
        assert_eq!(
            String::from_utf8(to_vec(&v)).unwrap(),
            r#"{"a":{"c":null,"d":[1,{"y":"é","z":0}]},"b":1}"#
        );
    }
}
