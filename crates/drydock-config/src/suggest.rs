//! "Did you mean" suggestions by edit distance.

use drydock_diagnostics::suggest::{Case, closest};

/// The closest candidate within an edit distance of about a third of its length (not the word
/// itself), compared ignoring ASCII case.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    closest(
        word,
        candidates.iter().copied(),
        Case::IgnoreAscii,
        |d, c| d > 0 && d <= (c.len() / 3).max(1) + usize::from(c.len() > 7),
    )
}
