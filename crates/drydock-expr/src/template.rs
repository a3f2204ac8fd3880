//! Strings with `${{ }}` parts, and `if:` conditions.

use drydock_diagnostics::Span;

use crate::ast::{BinOp, Expr, ExprKind, Segment};
use crate::error::ExprError;
use crate::eval::Env;
use crate::parser::{ParseOptions, parse_expression_with};
use crate::value::Value;

/// A string that may contain `${{ expression }}` parts. Spans are byte offsets into the
/// template text.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub segments: Vec<Segment>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, ExprError> {
        Self::parse_with(text, &ParseOptions::default())
    }

    /// Splits `text` into literal parts and `${{ }}` expressions; the closing `}}` is the first
    /// one outside a quoted string.
    pub fn parse_with(text: &str, opts: &ParseOptions) -> Result<Template, ExprError> {
        let mut segments = Vec::new();
        let mut pos = 0;
        while let Some(rel) = text[pos..].find("${{") {
            let open = pos + rel;
            if open > pos {
                segments.push(Segment::Text(
                    text[pos..open].to_string(),
                    Span::new(pos, open),
                ));
            }
            let inner_start = open + 3;
            let Some(close) = find_close(text, inner_start) else {
                return Err(ExprError::syntax(
                    "`${{` is not closed by `}}`",
                    Span::new(open, text.len()),
                )
                .with_hint("an expression is written `${{ <expression> }}`"));
            };
            let inner = &text[inner_start..close];
            let mut expr = parse_expression_with(inner, opts).map_err(|e| {
                if inner.trim().is_empty() {
                    ExprError::syntax("empty expression `${{ }}`", Span::new(open, close + 2))
                } else {
                    e.shifted(inner_start)
                }
            })?;
            expr.shift(inner_start);
            segments.push(Segment::Expr(expr, Span::new(open, close + 2)));
            pos = close + 2;
        }
        if pos < text.len() || segments.is_empty() {
            segments.push(Segment::Text(
                text[pos..].to_string(),
                Span::new(pos, text.len()),
            ));
        }
        Ok(Template { segments })
    }

    /// A template without any `${{ }}` (a plain string).
    pub fn is_literal(&self) -> bool {
        self.segments.iter().all(|s| matches!(s, Segment::Text(..)))
    }

    /// The single expression when the template is just `${{ expr }}` (surrounding whitespace
    /// allowed): such a value keeps its type when evaluated.
    pub fn single_expr(&self) -> Option<&Expr> {
        let mut found = None;
        for s in &self.segments {
            match s {
                Segment::Text(t, _) if t.trim().is_empty() => {}
                Segment::Text(..) => return None,
                Segment::Expr(e, _) if found.is_none() => found = Some(e),
                Segment::Expr(..) => return None,
            }
        }
        found
    }

    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Expr(e, _) => Some(e),
            Segment::Text(..) => None,
        })
    }

    /// Evaluates: a single expression keeps its value's type; otherwise parts are converted to
    /// strings (null is empty, numbers in GitHub's format) and joined.
    pub fn eval(&self, env: &Env<'_>) -> Result<Value, ExprError> {
        if let Some(e) = self.single_expr() {
            return e.eval(env);
        }
        Ok(Value::String(self.eval_string(env)?))
    }

    /// Evaluates to a string, whatever the parts are.
    pub fn eval_string(&self, env: &Env<'_>) -> Result<String, ExprError> {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Text(t, _) => out.push_str(t),
                Segment::Expr(e, _) => out.push_str(&e.eval(env)?.to_display_string()),
            }
        }
        Ok(out)
    }
}

/// Byte offset of the `}}` closing an expression that starts at `from`, skipping quoted strings.
fn find_close(text: &str, from: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = from;
    let mut in_str = false;
    while i < b.len() {
        match b[i] {
            b'\'' => in_str = !in_str, // '' inside a string toggles twice: still inside
            b'}' if !in_str && b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// An `if:` value. Written with or without `${{ }}`; without a status function it means
/// `success() && (<expr>)`, as in GitHub Actions.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub expr: Expr,
    /// The expression as written had a status function (`success()`, `failure()`,
    /// `always()`, `cancelled()`).
    pub explicit_status: bool,
}

impl Condition {
    pub fn parse(text: &str) -> Result<Condition, ExprError> {
        Self::parse_with(text, &ParseOptions::default())
    }

    pub fn parse_with(text: &str, opts: &ParseOptions) -> Result<Condition, ExprError> {
        let expr = if text.contains("${{") {
            let t = Template::parse_with(text, opts)?;
            match t.single_expr() {
                Some(e) => e.clone(),
                None => {
                    return Err(ExprError::syntax(
                        "an `if:` that mixes `${{ }}` with other text is a non-empty string, so it is always true",
                        Span::new(0, text.len()),
                    )
                    .with_hint("write the whole condition as one expression: `${{ a && b }}` or `a && b`"));
                }
            }
        } else {
            parse_expression_with(text, opts)?
        };
        let explicit_status = expr.uses_status_function();
        Ok(Condition {
            expr,
            explicit_status,
        })
    }

    /// The condition's result, with the implicit `success() &&` applied.
    pub fn eval(&self, env: &Env<'_>) -> Result<bool, ExprError> {
        if !self.explicit_status && env.status != crate::JobStatus::Success {
            return Ok(false);
        }
        Ok(self.expr.eval(env)?.truthy())
    }

    /// The expression as it is evaluated (`success() && (...)` when implicit).
    pub fn effective(&self) -> Expr {
        if self.explicit_status {
            return self.expr.clone();
        }
        let span = self.expr.span;
        let success = Expr {
            kind: ExprKind::Call("success".into(), vec![]),
            span: Span::point(span.start),
        };
        Expr {
            kind: ExprKind::Binary(BinOp::And, Box::new(success), Box::new(self.expr.clone())),
            span,
        }
    }
}
