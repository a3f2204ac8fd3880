use drydock_diagnostics::{Diagnostic, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprErrorKind {
    /// The text is not a valid expression.
    Syntax,
    /// The expression is valid but evaluating it failed (a function's argument was wrong).
    Eval,
}

/// A parse or evaluation error, with a span into the text that was parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub kind: ExprErrorKind,
    pub message: String,
    pub span: Span,
    pub hints: Vec<String>,
}

impl ExprError {
    pub(crate) fn syntax(message: impl Into<String>, span: Span) -> Self {
        Self {
            kind: ExprErrorKind::Syntax,
            message: message.into(),
            span,
            hints: Vec::new(),
        }
    }

    pub(crate) fn eval(message: impl Into<String>, span: Span) -> Self {
        Self {
            kind: ExprErrorKind::Eval,
            message: message.into(),
            span,
            hints: Vec::new(),
        }
    }

    #[must_use]
    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Moves the span by `offset` (the error came from a sub-text).
    #[must_use]
    pub fn shifted(mut self, offset: usize) -> Self {
        self.span = self.span.offset(offset);
        self
    }

    /// A diagnostic with code `expression-syntax` or `expression-eval`, with `map` applied to
    /// the span (to turn a span in the expression text into one in the file).
    pub fn to_diagnostic(&self, map: impl Fn(Span) -> Span) -> Diagnostic {
        let code = match self.kind {
            ExprErrorKind::Syntax => "expression-syntax",
            ExprErrorKind::Eval => "expression-eval",
        };
        let mut d = Diagnostic::error(self.message.clone(), map(self.span)).with_code(code);
        for h in &self.hints {
            d = d.with_hint(h.clone());
        }
        d
    }
}
