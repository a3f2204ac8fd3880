//! Property tests: word expansion laws, and the parser's "never panics, spans stay in bounds".

use std::collections::BTreeMap;

use drydock_dockerfile::expand::{Lexer, expand};
use proptest::prelude::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Text with no character the lexer treats specially.
fn plain() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ./:_,=+@%^&*()\\[\\]{}<>|;~-]{0,40}".prop_map(|s| s)
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,12}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn never_panics(word in "\\PC{0,80}", value in "\\PC{0,20}", esc in prop_oneof![Just('\\'), Just('`')]) {
        let e = env(&[("A", &value), ("B", "")]);
        let _ = expand(&word, esc, &e);
        let mut lx = Lexer::new(esc);
        lx.raw_quotes = true;
        lx.raw_escapes = true;
        let _ = lx.expand_words(&word, &e);
        lx.skip_unset_env = true;
        lx.skip_process_quotes = true;
        let _ = lx.expand(&word, &e);
    }

    #[test]
    fn plain_text_is_unchanged(s in plain()) {
        prop_assert_eq!(expand(&s, '\\', &env(&[])).unwrap().text, s);
    }

    #[test]
    fn variables_expand_to_their_value_verbatim(n in name(), v in "\\PC{0,30}", pre in plain(), post in "[ ./:-][a-z ]{0,5}") {
        let e = env(&[(&n, &v)]);
        prop_assert_eq!(expand(&format!("{pre}${{{n}}}{post}"), '\\', &e).unwrap().text, format!("{pre}{v}{post}"));
        prop_assert_eq!(expand(&format!("${n}{post}"), '\\', &e).unwrap().text, format!("{v}{post}"));
        prop_assert_eq!(expand(&format!("\"${n}\""), '\\', &e).unwrap().text, v.clone());
        let r = expand(&format!("${n}"), '\\', &e).unwrap();
        prop_assert!(r.matched.contains(&n) && r.unmatched.is_empty());
    }

    #[test]
    fn single_quotes_are_literal(s in "[^']{0,40}") {
        prop_assert_eq!(expand(&format!("'{s}'"), '\\', &env(&[("A", "x")])).unwrap().text, s);
    }

    #[test]
    fn escaping_every_char_gives_it_back(s in "[a-zA-Z0-9 $\"'{}]{1,30}") {
        let escaped: String = s.chars().flat_map(|c| ['\\', c]).collect();
        prop_assert_eq!(expand(&escaped, '\\', &env(&[("A", "x")])).unwrap().text, s);
    }

    #[test]
    fn defaults_and_alternatives(n in name(), v in "[a-z]{1,10}", w in "[a-z0-9]{0,10}") {
        let set = env(&[(&n, &v)]);
        let empty = env(&[(&n, "")]);
        let unset = env(&[]);
        let x = |word: String, e: &BTreeMap<String, String>| expand(&word, '\\', e).unwrap().text;
        prop_assert_eq!(x(format!("${{{n}:-{w}}}"), &set), v.clone());
        prop_assert_eq!(x(format!("${{{n}:-{w}}}"), &empty), w.clone());
        prop_assert_eq!(x(format!("${{{n}-{w}}}"), &empty), "");
        prop_assert_eq!(x(format!("${{{n}-{w}}}"), &unset), w.clone());
        prop_assert_eq!(x(format!("${{{n}:+{w}}}"), &set), w.clone());
        prop_assert_eq!(x(format!("${{{n}:+{w}}}"), &empty), "");
        prop_assert_eq!(x(format!("${{{n}+{w}}}"), &empty), w.clone());
        let must_set = format!("${{{n}:?}}");
        let must_exist = format!("${{{n}?}}");
        prop_assert!(expand(&must_set, '\\', &empty).is_err());
        prop_assert!(expand(&must_exist, '\\', &unset).is_err());
    }

    #[test]
    fn prefix_and_suffix_removal(prefix in "[a-z/.]{0,8}", rest in "[a-z/.]{0,8}") {
        let value = format!("{prefix}{rest}");
        let e = env(&[("V", &value)]);
        let x = |word: &str| expand(word, '\\', &e).unwrap().text;
        prop_assert_eq!(x(&format!("${{V#{prefix}}}")), rest.clone());
        prop_assert_eq!(x(&format!("${{V%{rest}}}")), prefix.clone());
        // `*` removes everything (longest) or nothing (shortest).
        prop_assert_eq!(x("${V##*}"), "");
        prop_assert_eq!(x("${V#*}"), value.clone());
        prop_assert_eq!(x("${V%%*}"), "");
    }

    #[test]
    fn replace_all_of_a_literal(a in "[a-c]{0,12}", from in "[a-c]{1,2}", to in "[x-z]{0,2}") {
        let e = env(&[("V", &a)]);
        let got = expand(&format!("${{V//{from}/{to}}}"), '\\', &e).unwrap().text;
        prop_assert_eq!(got, a.replace(&from, &to));
        let first = expand(&format!("${{V/{from}/{to}}}"), '\\', &e).unwrap().text;
        prop_assert_eq!(first, a.replacen(&from, &to, 1));
    }

    #[test]
    fn words_split_like_a_shell(words in proptest::collection::vec("[a-z0-9]{1,6}", 0..6)) {
        let lx = Lexer::new('\\');
        let joined = words.join("  ");
        prop_assert_eq!(lx.expand_words(&joined, &env(&[])).unwrap(), words);
    }

    #[test]
    fn parser_never_panics_and_spans_are_valid(src in "(\\PC|\n|\\\\\n|<<EOF\n|EOF\n|FROM a\n|RUN |COPY |--mount=|\"|'|\\[|\\]| ){0,60}") {
        let df = drydock_dockerfile::parse(&src);
        for d in &df.diagnostics {
            prop_assert!(d.span.end <= src.len());
        }
        for i in &df.instructions {
            prop_assert!(i.span.end <= src.len() && i.span.start <= i.span.end);
            prop_assert!(src.is_char_boundary(i.keyword_word.span.start));
            prop_assert_eq!(&src[i.keyword_word.span.range()], i.keyword_word.text.as_str());
            prop_assert!(i.start_line <= i.end_line);
        }
        let _ = drydock_dockerfile::lint::check(&df);
    }
}
