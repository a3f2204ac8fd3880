//! "Did you mean …?" hints: the edit distance between two words, and the closest of some
//! candidates to a word that matched none of them. Each parser keeps its own threshold (how far
//! a candidate may be and still be offered) and passes it to [`closest`].

/// The optimal string alignment distance between `a` and `b`, over chars: inserting, deleting or
/// substituting a char costs 1, and so does swapping two adjacent chars ("psuh" for "push").
/// Case-sensitive.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, v) in d[0].iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// Whether [`closest`] compares the word and the candidates as they are or ASCII-lowercased.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Sensitive,
    IgnoreAscii,
}

/// The candidate nearest to `word` by [`edit_distance`] among those for which
/// `accept(distance, candidate)` holds; on a tie, the earliest. The candidate is returned as
/// given, whatever `case` says.
pub fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    case: Case,
    accept: impl Fn(usize, &str) -> bool,
) -> Option<&'a str> {
    let fold = |s: &str| match case {
        Case::Sensitive => s.to_string(),
        Case::IgnoreAscii => s.to_ascii_lowercase(),
    };
    let word = fold(word);
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let d = edit_distance(&word, &fold(c));
        if accept(d, c) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits_and_adjacent_swaps() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("push", "push"), 0);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("psuh", "push"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
        // Optimal string alignment, not full Damerau: no edit inside a swapped pair.
        assert_eq!(edit_distance("ca", "abc"), 3);
        assert_eq!(edit_distance("Push", "push"), 1);
        // Chars, not bytes.
        assert_eq!(edit_distance("héllo", "hello"), 1);
    }

    #[test]
    fn closest_keeps_the_nearest_accepted_candidate_and_the_first_on_a_tie() {
        let any = |_: usize, _: &str| true;
        assert_eq!(
            closest("pusj", ["pull", "push"], Case::Sensitive, any),
            Some("push")
        );
        assert_eq!(
            closest("pux", ["pul", "pus"], Case::Sensitive, any),
            Some("pul")
        );
        assert_eq!(
            closest("pux", ["pus", "pul"], Case::Sensitive, any),
            Some("pus")
        );
        assert_eq!(closest("x", [], Case::Sensitive, any), None);
    }

    #[test]
    fn closest_applies_the_callers_threshold() {
        let within_one = |d: usize, _: &str| d <= 1;
        assert_eq!(closest("zzz", ["push"], Case::Sensitive, within_one), None);
        let not_equal = |d: usize, _: &str| d > 0 && d <= 1;
        assert_eq!(closest("push", ["push"], Case::Sensitive, not_equal), None);
        assert_eq!(
            closest("push", ["push", "puss"], Case::Sensitive, not_equal),
            Some("puss")
        );
        let by_length = |d: usize, c: &str| d <= c.len() / 3;
        assert_eq!(
            closest(
                "workflow_dispach",
                ["push", "workflow_dispatch"],
                Case::Sensitive,
                by_length
            ),
            Some("workflow_dispatch")
        );
    }

    #[test]
    fn closest_can_ignore_ascii_case_and_returns_the_candidate_as_given() {
        let within_one = |d: usize, _: &str| d <= 1;
        assert_eq!(
            closest("STARTSWITH", ["startsWith"], Case::IgnoreAscii, within_one),
            Some("startsWith")
        );
        assert_eq!(
            closest("STARTSWITH", ["startsWith"], Case::Sensitive, within_one),
            None
        );
    }
}
