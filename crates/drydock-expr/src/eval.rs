//! Evaluation with GitHub's semantics.

use std::cmp::Ordering;

use crate::ast::{BinOp, Expr, ExprKind};
use crate::error::ExprError;
use crate::functions;
use crate::value::Value;

/// The result of the steps or jobs before this one, for `success()`, `failure()` and
/// `cancelled()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobStatus {
    #[default]
    Success,
    Failure,
    Cancelled,
}

/// `hashFiles(patterns...)`: returns the hash (hex) or an error message. Supplied by the caller
/// because it reads the workspace.
pub type HashFiles = dyn Fn(&[String]) -> Result<String, String>;

/// What an expression can see.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// An object whose keys are the context names (`github`, `env`, `needs`, `images`, `steps`,
    /// `secrets`, ...).
    pub contexts: &'a Value,
    pub status: JobStatus,
    pub hash_files: Option<&'a HashFiles>,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("contexts", self.contexts)
            .field("status", &self.status)
            .field("hash_files", &self.hash_files.is_some())
            .finish()
    }
}

impl<'a> Env<'a> {
    pub fn new(contexts: &'a Value) -> Self {
        Self {
            contexts,
            status: JobStatus::Success,
            hash_files: None,
        }
    }

    #[must_use]
    pub fn with_status(mut self, status: JobStatus) -> Self {
        self.status = status;
        self
    }

    #[must_use]
    pub fn with_hash_files(mut self, f: &'a HashFiles) -> Self {
        self.hash_files = Some(f);
        self
    }
}

/// A value, or the list a `*` filter produced (later property accesses map over it).
enum Val {
    One(Value),
    Many(Vec<Value>),
}

impl Val {
    fn into_value(self) -> Value {
        match self {
            Val::One(v) => v,
            Val::Many(items) => Value::array(items),
        }
    }
}

impl Expr {
    /// Evaluates the expression. Errors come only from functions (`format` with a bad format
    /// string, `fromJSON` with bad JSON, `hashFiles` failing).
    pub fn eval(&self, env: &Env<'_>) -> Result<Value, ExprError> {
        Ok(eval_val(self, env)?.into_value())
    }
}

fn eval_val(e: &Expr, env: &Env<'_>) -> Result<Val, ExprError> {
    Ok(match &e.kind {
        ExprKind::Property(base, name) => match eval_val(base, env)? {
            Val::One(v) => Val::One(v.get(name).cloned().unwrap_or(Value::Null)),
            Val::Many(items) => {
                Val::Many(items.iter().filter_map(|v| v.get(name).cloned()).collect())
            }
        },
        ExprKind::Index(base, idx) => {
            let base = eval_val(base, env)?;
            let idx = idx.eval(env)?;
            match base {
                Val::One(v) => Val::One(index(&v, &idx).unwrap_or(Value::Null)),
                Val::Many(items) => {
                    Val::Many(items.iter().filter_map(|v| index(v, &idx)).collect())
                }
            }
        }
        ExprKind::Filter(base) => match eval_val(base, env)? {
            Val::One(v) => Val::Many(children(&v)),
            Val::Many(items) => Val::Many(items.iter().flat_map(children).collect()),
        },
        _ => Val::One(eval_one(e, env)?),
    })
}

fn children(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.as_ref().clone(),
        Value::Object(map) => map.values().cloned().collect(),
        _ => Vec::new(),
    }
}

fn index(v: &Value, idx: &Value) -> Option<Value> {
    match v {
        Value::Array(items) => {
            let n = match idx {
                Value::Number(_) | Value::String(_) => idx.to_number(),
                _ => return None,
            };
            if !n.is_finite() || n < 0.0 {
                return None;
            }
            let i = n.floor();
            if i >= items.len() as f64 {
                return None;
            }
            items.get(i as usize).cloned()
        }
        Value::Object(_) => match idx {
            Value::Array(_) | Value::Object(_) => None,
            _ => v.get(&idx.to_display_string()).cloned(),
        },
        _ => None,
    }
}

fn eval_one(e: &Expr, env: &Env<'_>) -> Result<Value, ExprError> {
    match &e.kind {
        ExprKind::Literal(l) => Ok(l.to_value()),
        ExprKind::Context(name) => Ok(env.contexts.get(name).cloned().unwrap_or(Value::Null)),
        ExprKind::Not(inner) => Ok(Value::Bool(!inner.eval(env)?.truthy())),
        ExprKind::Binary(op, a, b) => {
            let l = a.eval(env)?;
            match op {
                BinOp::And => {
                    if !l.truthy() {
                        return Ok(l);
                    }
                    b.eval(env)
                }
                BinOp::Or => {
                    if l.truthy() {
                        return Ok(l);
                    }
                    b.eval(env)
                }
                _ => {
                    let r = b.eval(env)?;
                    let ord = l.loose_cmp(&r);
                    Ok(Value::Bool(match op {
                        BinOp::Eq => l.loose_eq(&r),
                        BinOp::Ne => !l.loose_eq(&r),
                        BinOp::Lt => ord == Some(Ordering::Less),
                        BinOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                        BinOp::Gt => ord == Some(Ordering::Greater),
                        BinOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                        BinOp::And | BinOp::Or => false,
                    }))
                }
            }
        }
        ExprKind::Call(name, args) => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push((a.eval(env)?, a.span));
            }
            functions::call(name, &vals, e.span, env)
        }
        ExprKind::Property(..) | ExprKind::Index(..) | ExprKind::Filter(..) => {
            Ok(eval_val(e, env)?.into_value())
        }
    }
}
