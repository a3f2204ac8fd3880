use std::ops::Range;

/// A half-open byte range `[start, end)` into one source text.
///
/// Spans are byte offsets so that slicing the source is cheap; conversion to line and column
/// happens only when a diagnostic is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub const fn new(start: usize, end: usize) -> Self {
        // A reversed span is a caller bug, but diagnostics must never panic: normalise instead.
        if start <= end {
            Self { start, end }
        } else {
            Self {
                start: end,
                end: start,
            }
        }
    }

    /// An empty span at `offset`, for "expected something here" diagnostics.
    pub const fn point(offset: usize) -> Self {
        Self {
            start: offset,
            end: offset,
        }
    }

    pub const fn len(&self) -> usize {
        self.end - self.start
    }

    pub const fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The smallest span covering both.
    pub fn cover(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// Shift by `offset`, for spans computed inside a substring.
    pub const fn offset(self, offset: usize) -> Span {
        Span {
            start: self.start + offset,
            end: self.end + offset,
        }
    }

    pub fn range(self) -> Range<usize> {
        self.start..self.end
    }

    /// The text under the span, or `None` when it is out of bounds or not on char boundaries.
    pub fn slice(self, source: &str) -> Option<&str> {
        source.get(self.range())
    }
}

impl From<Range<usize>> for Span {
    fn from(r: Range<usize>) -> Self {
        Span::new(r.start, r.end)
    }
}
