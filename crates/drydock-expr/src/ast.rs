//! The expression tree. Every node carries a byte span into the text it was parsed from.

use drydock_diagnostics::Span;

use crate::value::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

impl Literal {
    pub fn to_value(&self) -> Value {
        match self {
            Literal::Null => Value::Null,
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Number(n) => Value::Number(*n),
            Literal::String(s) => Value::String(s.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Literal(Literal),
    /// A context name such as `github` (stored as written).
    Context(String),
    /// `a.b`
    Property(Box<Expr>, String),
    /// `a[b]`
    Index(Box<Expr>, Box<Expr>),
    /// `a.*` or `a[*]`
    Filter(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// A function call; the name is stored lower-cased (function names ignore case).
    Call(String, Vec<Expr>),
}

impl Expr {
    /// Whether a status function (`success`, `failure`, `always`, `cancelled`) appears anywhere:
    /// an `if:` without one gets an implicit `success() &&`.
    pub fn uses_status_function(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| {
            if let ExprKind::Call(name, _) = &e.kind
                && matches!(
                    name.as_str(),
                    "success" | "failure" | "always" | "cancelled"
                )
            {
                found = true;
            }
        });
        found
    }

    /// The context names the expression reads (`github`, `needs`, ...), in order of appearance.
    pub fn contexts(&self) -> Vec<(&str, Span)> {
        let mut out = Vec::new();
        self.walk_ref(&mut |e| {
            if let ExprKind::Context(name) = &e.kind {
                out.push((name.as_str(), e.span));
            }
        });
        out
    }

    /// Visits every node, parents before children.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        self.children().for_each(|c| c.walk(f));
    }

    fn walk_ref<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        for c in self.children() {
            c.walk_ref(f);
        }
    }

    fn children(&self) -> Box<dyn Iterator<Item = &Expr> + '_> {
        match &self.kind {
            ExprKind::Literal(_) | ExprKind::Context(_) => Box::new(std::iter::empty()),
            ExprKind::Property(e, _) | ExprKind::Filter(e) | ExprKind::Not(e) => {
                Box::new(std::iter::once(&**e))
            }
            ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => Box::new([&**a, &**b].into_iter()),
            ExprKind::Call(_, args) => Box::new(args.iter()),
        }
    }

    /// Shifts every span by `offset` (for an expression parsed out of a larger text).
    pub fn shift(&mut self, offset: usize) {
        self.span = self.span.offset(offset);
        match &mut self.kind {
            ExprKind::Literal(_) | ExprKind::Context(_) => {}
            ExprKind::Property(e, _) | ExprKind::Filter(e) | ExprKind::Not(e) => e.shift(offset),
            ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => {
                a.shift(offset);
                b.shift(offset);
            }
            ExprKind::Call(_, args) => args.iter_mut().for_each(|a| a.shift(offset)),
        }
    }
}

/// A part of a [`crate::Template`].
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// Literal text, with its span in the template.
    Text(String, Span),
    /// A `${{ }}` part: the expression, and the span of the whole `${{ ... }}`.
    Expr(Expr, Span),
}
