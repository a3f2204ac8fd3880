//! Expression contexts (`github`, `env`, `needs`, `images`, `steps`, `secrets`, `job`) and
//! evaluation with errors that point at the expression.

use std::collections::BTreeMap;

use drydock_expr::{Env, JobStatus, Value};

use crate::images::ImageState;
use crate::plan::{Cond, Text};

#[derive(Debug, Clone, Default)]
pub(crate) struct Contexts {
    pub github: Value,
    pub env: BTreeMap<String, String>,
    pub needs: Value,
    pub images: BTreeMap<String, ImageState>,
    pub steps: BTreeMap<String, Value>,
    pub secrets: BTreeMap<String, String>,
    pub job_status: &'static str,
}

impl Contexts {
    pub(crate) fn value(&self) -> Value {
        let strings = |m: &BTreeMap<String, String>| {
            Value::object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::string(v)))
                    .collect(),
            )
        };
        Value::from_pairs([
            ("github", self.github.clone()),
            ("env", strings(&self.env)),
            ("needs", self.needs.clone()),
            (
                "images",
                Value::object(
                    self.images
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_value()))
                        .collect(),
                ),
            ),
            ("steps", Value::object(self.steps.clone())),
            ("secrets", strings(&self.secrets)),
            (
                "job",
                Value::from_pairs([("status", Value::string(self.job_status))]),
            ),
        ])
    }
}

/// Evaluates a string with `${{ }}` parts.
pub(crate) fn text(t: &Text, ctx: &Value) -> Result<String, String> {
    t.template
        .eval_string(&Env::new(ctx))
        .map_err(|e| format!("{}: {e} (in `{}`)", t.origin, t.text.trim()))
}

/// Evaluates a value and tells whether it is truthy (an image's `push`, `continue-on-error`).
pub(crate) fn truthy(t: &Text, ctx: &Value) -> Result<bool, String> {
    t.template
        .eval(&Env::new(ctx))
        .map(|v| v.truthy())
        .map_err(|e| format!("{}: {e} (in `{}`)", t.origin, t.text.trim()))
}

/// Evaluates an `if:`-like condition with the status of what came before.
pub(crate) fn cond(c: &Cond, ctx: &Value, status: JobStatus) -> Result<bool, String> {
    c.cond
        .eval(&Env::new(ctx).with_status(status))
        .map_err(|e| format!("{}: {e} (in `{}`)", c.origin, c.text.trim()))
}

/// Evaluates `(name, value)` pairs in order, each seeing the ones before it in `env`.
pub(crate) fn env_pairs(
    pairs: &[(String, Text)],
    base: &mut Contexts,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (k, t) in pairs {
        let v = text(t, &base.value())?;
        base.env.insert(k.clone(), v.clone());
        out.push((k.clone(), v));
    }
    Ok(out)
}
