//! The image a plan produces: layers from the root state's chain, one per history step, and a
//! config with Docker's history (`created_by`, `empty_layer`, `comment`), all timestamps at the
//! build's epoch, stored as canonical JSON so the same inputs give the same digests.

use std::collections::{BTreeMap, HashMap};

use drydock_content::Store;
use drydock_oci::spec::{Descriptor, MediaType};
use drydock_oci::{Digest, media_type};
use drydock_plan::{Op, OpId, Plan};
use serde_json::{Value, json};

use crate::chain::{Chain, LayerRef};
use crate::error::BuildError;
use crate::solver::State;

/// A resolved base image.
#[derive(Debug, Clone)]
pub struct BaseImage {
    pub reference: String,
    pub manifest: Digest,
    pub layers: Chain,
    /// The whole config document (for its history).
    pub config: Value,
}

/// The op whose state a plan's image starts from: follow the first input from the root to an
/// image or scratch.
pub fn base_op(plan: &Plan) -> Option<OpId> {
    let mut id = plan.root.clone();
    for _ in 0..100_000 {
        let op = plan.get(&id)?;
        id = match op {
            Op::Image(_) | Op::Scratch => return Some(id),
            Op::Exec(e) => e.root.clone(),
            Op::File(f) => match &f.base {
                Some(b) => b.clone(),
                None => return None,
            },
            Op::Merge(m) => m.inputs.first()?.clone(),
            Op::Diff(_) | Op::Local(_) | Op::Http(_) | Op::Git(_) => return None,
        };
    }
    None
}

/// What [`assemble`] stored.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub manifest: Descriptor,
    pub config_digest: Digest,
    pub layers: Chain,
}

/// Builds and stores the config and manifest.
pub fn assemble(
    store: &Store,
    plan: &Plan,
    states: &HashMap<OpId, State>,
    bases: &HashMap<Digest, BaseImage>,
    labels: &BTreeMap<String, String>,
    epoch: i64,
) -> Result<Assembled, BuildError> {
    let chain_of = |id: &OpId| -> Result<Chain, BuildError> {
        match states.get(id) {
            Some(State::Layers(c)) => Ok(c.clone()),
            _ => Err(BuildError::Cache(format!(
                "internal: no layer chain for op {id}"
            ))),
        }
    };
    let created = drydock_content::image::rfc3339(epoch);
    let mut history: Vec<Value> = Vec::new();
    let mut layers: Chain = Vec::new();
    if let Some(b) = base_op(plan) {
        layers = chain_of(&b)?;
        if let Some(Op::Image(img)) = plan.get(&b) {
            let base_hist: Vec<Value> = bases
                .get(&img.digest)
                .and_then(|bi| bi.config.get("history"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let non_empty = base_hist
                .iter()
                .filter(|h| {
                    !h.get("empty_layer")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                })
                .count();
            // A base image without (enough) history gets entries for its layers, so the
            // config keeps Docker's rule: one non-empty history entry per layer.
            for _ in non_empty..layers.len() {
                history.push(
                    json!({"created": created, "created_by": "", "comment": "base image layer"}),
                );
            }
            history.extend(base_hist);
        }
    }
    let mut prev = layers.clone();
    for step in &plan.history {
        let mut h = json!({"created": created, "created_by": step.history.created_by});
        if let Some(c) = &step.history.comment {
            h["comment"] = Value::from(c.as_str());
        }
        let mut empty = step.history.empty_layer;
        if let Some(op) = &step.op {
            let chain = chain_of(op)?;
            if chain.len() < prev.len() || chain[..prev.len()] != prev[..] {
                return Err(BuildError::Unsupported(format!(
                    "history step {:?} does not extend the previous step's layers",
                    step.history.created_by
                )));
            }
            let added = &chain[prev.len()..];
            match added.len() {
                0 => empty = true,
                1 => {
                    layers.push(added[0].clone());
                    empty = false;
                }
                n => {
                    return Err(BuildError::Unsupported(format!(
                        "history step {:?} adds {n} layers (squashing is not implemented)",
                        step.history.created_by
                    )));
                }
            }
            prev = chain;
        }
        if empty {
            h["empty_layer"] = Value::Bool(true);
        }
        history.push(h);
    }
    let root = chain_of(&plan.root)?;
    if root != layers {
        return Err(BuildError::Unsupported(
            "the plan's history does not account for the root's layers".into(),
        ));
    }
    let mut cfg = plan.config.clone();
    for (k, v) in labels {
        cfg.config.labels.insert(k.clone(), v.clone());
    }
    let mut config = json!({
        "architecture": cfg.architecture,
        "os": cfg.os,
        "created": created,
        "config": serde_json::to_value(&cfg.config)
            .map_err(|e| BuildError::Cache(format!("encode config: {e}")))?,
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
        },
        "history": history,
    });
    if let Some(v) = &cfg.variant {
        config["variant"] = Value::from(v.as_str());
    }
    if let Some(a) = &cfg.author {
        config["author"] = Value::from(a.as_str());
    }
    let config_desc = drydock_content::image::put_json(store, &config, media_type::OCI_CONFIG)?;
    let config_digest = drydock_content::graph::digest_of(&config_desc)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": config_desc,
        "layers": layers.iter().map(LayerRef::oci_descriptor).collect::<Vec<_>>(),
    });
    let manifest = drydock_content::image::put_json(store, &manifest, media_type::OCI_MANIFEST)?;
    Ok(Assembled {
        manifest,
        config_digest,
        layers,
    })
}

/// An OCI index over per-platform manifests.
pub fn index(
    store: &Store,
    manifests: &[(drydock_oci::Platform, Descriptor)],
) -> Result<Descriptor, BuildError> {
    let entries: Vec<Value> = manifests
        .iter()
        .map(|(p, d)| {
            let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
            let mut plat = json!({"architecture": p.architecture, "os": p.os});
            if let Some(var) = &p.variant {
                plat["variant"] = Value::from(var.as_str());
            }
            v["platform"] = plat;
            v
        })
        .collect();
    let idx = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": entries,
    });
    Ok(drydock_content::image::put_json(
        store,
        &idx,
        media_type::OCI_INDEX,
    )?)
}

/// A layer descriptor's media type as stored.
pub fn descriptor_media_type(d: &Descriptor) -> String {
    let mt: &MediaType = d.media_type();
    mt.to_string()
}
