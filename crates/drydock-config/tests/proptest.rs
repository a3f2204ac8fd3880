use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = drydock_config::parse(&s);
    }

    #[test]
    fn yaml_shaped_text_never_panics(
        lines in prop::collection::vec(
            prop::sample::select(vec![
                "jobs:", "  a:", "    steps:", "      - run: x", "      - build: app", "    needs: [b]", "  b:",
                "    if: ${{ github.ref == 'x' }}", "on:", "  push: { branches: ['[a-'] }", "images:", "  app: {}",
                "    tags: |", "      type=sha", "  schedule: [ { cron: '* * *' } ]", "    env: { A: ${{ x }} }",
                "\"", "- - -", "  ? x", "&a [1]", "*a", "---",
            ]),
            0..20,
        )
    ) {
        let text = lines.join("\n");
        if let Err(diags) = drydock_config::parse(&text) {
            for d in diags {
                prop_assert!(d.span.end <= text.len());
                let _ = drydock_diagnostics::render("x.yml", &text, &d);
            }
        }
    }

    #[test]
    fn cron_next_after_matches(m in 0u32..60, h in 0u32..24, t in 0i64..4_000_000_000) {
        let c = drydock_config::cron::Cron::parse(&format!("{m} {h} * * *")).unwrap();
        let tz = drydock_tags::time::TimeZone::UTC;
        let n = c.next_after(t, tz).unwrap();
        prop_assert!(n > t && n - t <= 86_400);
        prop_assert!(c.matches(n, tz));
        prop_assert_eq!(n % 60, 0);
    }
}
