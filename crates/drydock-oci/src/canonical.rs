//! Deterministic JSON for everything drydock hashes.
//!
//! `oci-spec` stores annotations and labels in `HashMap`s, whose iteration order changes from one
//! process to the next; hashing their direct serialisation would make digests irreproducible.
//! Going through `serde_json::Value` (a `BTreeMap` without the `preserve_order` feature, which this
//! workspace must not enable) sorts every object's keys.

use serde::Serialize;

/// Compact JSON with object keys sorted at every level.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    serde_json::to_vec(&v)
}

/// Indented JSON with sorted keys, for files people read (`index.json`, `manifest.json`).
pub fn to_vec_pretty<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    serde_json::to_vec_pretty(&v)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[test]
    fn hash_maps_serialise_in_one_order() {
        let mut m = HashMap::new();
        for i in 0..64 {
            m.insert(format!("k{i}"), i);
        }
        let a = super::to_vec(&m).unwrap();
        let mut keys: Vec<_> = m.keys().cloned().collect();
        keys.sort();
        let expected: String = keys
            .iter()
            .map(|k| format!("\"{k}\":{}", &k[1..]))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(String::from_utf8(a).unwrap(), format!("{{{expected}}}"));
    }
}
