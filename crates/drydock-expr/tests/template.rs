use drydock_expr::{Condition, Env, JobStatus, Template, Value};

fn ctx() -> Value {
    Value::parse_json(r#"{"github":{"ref":"refs/heads/main","event_name":"push","n":3},"images":{"app":{"digest":"sha256:ab"}}}"#)
        .unwrap()
}

#[test]
fn single_expression_keeps_its_type() {
    let c = ctx();
    let env = Env::new(&c);
    let t = Template::parse("${{ github.event_name != 'pull_request' }}").unwrap();
    assert_eq!(t.eval(&env).unwrap(), Value::Bool(true));
    let t = Template::parse("  ${{ github.n }} ").unwrap();
    assert_eq!(t.eval(&env).unwrap(), Value::Number(3.0));
}

#[test]
fn interpolation_makes_strings() {
    let c = ctx();
    let env = Env::new(&c);
    let t =
        Template::parse(r#"./deploy.sh "${{ images.app.digest }}" ${{ github.n }}${{ null }}x"#)
            .unwrap();
    assert_eq!(
        t.eval(&env).unwrap(),
        Value::from(r#"./deploy.sh "sha256:ab" 3x"#)
    );
    let t = Template::parse("no expressions").unwrap();
    assert!(t.is_literal());
    assert_eq!(t.eval(&env).unwrap(), Value::from("no expressions"));
    let t = Template::parse("${{ format('}}{0}', 'a') }}!").unwrap();
    assert_eq!(t.eval_string(&env).unwrap(), "}a!");
}

#[test]
fn template_errors_point_into_the_text() {
    let text = "echo ${{ github.ref == }}";
    let e = Template::parse(text).unwrap_err();
    assert_eq!(&text[e.span.start..], "}}");
    let text = "echo ${{ github.ref";
    let e = Template::parse(text).unwrap_err();
    assert_eq!(e.span.start, 5);
    let e = Template::parse("a ${{ }} b").unwrap_err();
    assert!(e.message.contains("empty"), "{}", e.message);
    let text = "x ${{ 'a' == \"b\" }}";
    let e = Template::parse(text).unwrap_err();
    assert_eq!(&text[e.span.start..e.span.end], "\"");
}

#[test]
fn conditions_with_and_without_braces() {
    let c = ctx();
    let ok = Env::new(&c);
    let failed = Env::new(&c).with_status(JobStatus::Failure);
    let a = Condition::parse("github.ref == 'refs/heads/main'").unwrap();
    let b = Condition::parse("${{ github.ref == 'refs/heads/main' }}").unwrap();
    assert_eq!(a.explicit_status, b.explicit_status);
    assert_eq!(b.expr.span.start, 4, "spans point into the text as written");
    assert!(a.eval(&ok).unwrap());
    // implicit success(): a failed job stops the step
    assert!(!a.eval(&failed).unwrap());
    let c2 = Condition::parse("always() && github.ref == 'refs/heads/main'").unwrap();
    assert!(c2.eval(&failed).unwrap());
    let f = Condition::parse("failure()").unwrap();
    assert!(f.eval(&failed).unwrap());
    assert!(!f.eval(&ok).unwrap());
    let e = Condition::parse("${{ true }} && false").unwrap_err();
    assert!(e.message.contains("always true"));
}

#[test]
fn parse_errors_become_diagnostics() {
    let e = drydock_expr::parse_expression("github.ref = 'x'").unwrap_err();
    let d = e.to_diagnostic(|s| s.offset(10));
    assert_eq!(d.code.as_deref(), Some("expression-syntax"));
    assert_eq!(d.span.start, 21);
}
