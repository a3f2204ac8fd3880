use drydock_diagnostics::{Diagnostic, Span};

/// An error in the `tags` or `flavor` input, with a span into that input's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TagsError {
    pub message: String,
    pub span: Span,
    pub hints: Vec<String>,
}

impl TagsError {
    pub(crate) fn new(message: impl Into<String>, span: Span) -> Self {
        Self {
            message: message.into(),
            span,
            hints: Vec::new(),
        }
    }

    #[must_use]
    pub(crate) fn hint(mut self, h: impl Into<String>) -> Self {
        self.hints.push(h.into());
        self
    }

    /// A diagnostic (code `tags`), with `map` turning the span into one in the enclosing file.
    pub fn to_diagnostic(&self, map: impl Fn(Span) -> Span) -> Diagnostic {
        let mut d = Diagnostic::error(self.message.clone(), map(self.span)).with_code("tags");
        for h in &self.hints {
            d = d.with_hint(h.clone());
        }
        d
    }
}
