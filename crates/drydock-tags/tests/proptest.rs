use drydock_tags::{Flavor, TagEvent, TagsSpec, compute, sanitize_tag, time};
use proptest::prelude::*;

proptest! {
    #[test]
    fn sanitised_tags_are_valid_docker_tags(s in "\\PC{0,300}") {
        let t = sanitize_tag(&s);
        prop_assert!(t.len() <= 128);
        prop_assert!(t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
        prop_assert!(!t.starts_with('.') && !t.starts_with('-'));
    }

    #[test]
    fn arbitrary_inputs_never_panic(tags in "\\PC{0,120}", flavor in "\\PC{0,40}", git_ref in "refs/(heads|tags|pull)/\\PC{0,20}") {
        let ev = TagEvent { event_name: "push".into(), git_ref, sha: "abc".into(), now: Some(0), ..TagEvent::default() };
        if let (Ok(s), Ok(f)) = (TagsSpec::parse(&tags), Flavor::parse(&flavor))
            && let Ok(out) = compute(&s, &f, &ev, &["r".to_string()], &[]) {
                for t in &out.tags {
                    prop_assert!(!t.is_empty() && t.len() <= 128);
                }
            }
    }

    #[test]
    fn structured_inputs_never_panic(
        kind in prop::sample::select(vec!["schedule", "semver", "pep440", "match", "edge", "ref", "raw", "sha", "describe"]),
        attr in prop::sample::select(vec!["pattern={{version}}", "pattern={{major}}", "pattern=v(.*)", "event=tag", "event=pr", "value={{branch}}", "format=long", "group=1", "prefix={{sha}}-"]),
        git_ref in prop::sample::select(vec!["refs/tags/v1.2.3", "refs/tags/v1.0.0-rc.1", "refs/heads/main", "refs/pull/3/merge", "refs/tags/1.0rc1"]),
    ) {
        let ev = TagEvent { event_name: "push".into(), git_ref: git_ref.into(), sha: "0123456789".into(), now: Some(0), ..TagEvent::default() };
        if let Ok(s) = TagsSpec::parse(&format!("type={kind},{attr}")) {
            let _ = compute(&s, &Flavor::default(), &ev, &["r".to_string()], &[]);
        }
    }

    #[test]
    fn civil_time_round_trips(t in -100_000_000_000i64..100_000_000_000) {
        prop_assert_eq!(time::from_civil(&time::to_civil(t)), t);
    }
}
