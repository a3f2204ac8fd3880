//! Properties: parsing never panics, evaluation never panics, and the algebra of the operators
//! holds for every value.

use drydock_expr::{Env, Value, format_number, parse_expression, parse_number_str};
use proptest::prelude::*;

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        (-1000i64..1000).prop_map(|n| n.to_string()),
        (-1e6f64..1e6).prop_map(|f| format!("{f}")),
        "[a-zA-Z0-9 ]{0,6}".prop_map(|s| format!("'{s}'")),
        Just("ctx.arr".to_string()),
        Just("ctx.obj".to_string()),
        Just("ctx.s".to_string()),
        Just("ctx.missing".to_string()),
    ]
}

fn expr() -> impl Strategy<Value = String> {
    literal().prop_recursive(4, 32, 3, |inner| {
        let op = prop_oneof![
            Just("=="),
            Just("!="),
            Just("<"),
            Just("<="),
            Just(">"),
            Just(">="),
            Just("&&"),
            Just("||")
        ];
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, o, b)| format!("({a} {o} {b})")),
            inner.clone().prop_map(|a| format!("!{a}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("contains({a}, {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("startsWith({a}, {b})")),
            inner.clone().prop_map(|a| format!("toJSON({a})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("format('{{0}}-{{1}}', {a}, {b})")),
        ]
    })
}

fn ctx() -> Value {
    Value::parse_json(r#"{"ctx":{"arr":[1,"a",null],"obj":{"k":"v"},"s":"Hello"}}"#).unwrap()
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
        if let Ok(e) = parse_expression(&s) {
            let c = ctx();
            let _ = e.eval(&Env::new(&c));
        }
        let _ = drydock_expr::Template::parse(&s);
        let _ = drydock_expr::Condition::parse(&s);
    }

    #[test]
    fn operator_soup_never_panics(s in "[a-z0-9'()\\[\\]*.,!=<>&| ]{0,60}") {
        if let Ok(e) = parse_expression(&s) {
            let c = ctx();
            let _ = e.eval(&Env::new(&c));
        }
    }

    #[test]
    fn generated_expressions_parse_and_evaluate(src in expr()) {
        let e = parse_expression(&src).unwrap();
        let c = ctx();
        let _ = e.eval(&Env::new(&c));
    }

    #[test]
    fn not_equal_is_the_negation_of_equal(a in expr(), b in expr()) {
        let c = ctx();
        let env = Env::new(&c);
        let eq = parse_expression(&format!("({a}) == ({b})")).unwrap().eval(&env);
        let ne = parse_expression(&format!("({a}) != ({b})")).unwrap().eval(&env);
        if let (Ok(eq), Ok(ne)) = (eq, ne) {
            prop_assert_eq!(eq.truthy(), !ne.truthy());
        }
    }

    #[test]
    fn and_or_return_one_of_their_operands(a in literal(), b in literal()) {
        let c = ctx();
        let env = Env::new(&c);
        let va = parse_expression(&a).unwrap().eval(&env).unwrap();
        let vb = parse_expression(&b).unwrap().eval(&env).unwrap();
        let and = parse_expression(&format!("{a} && {b}")).unwrap().eval(&env).unwrap();
        let or = parse_expression(&format!("{a} || {b}")).unwrap().eval(&env).unwrap();
        prop_assert_eq!(&and, if va.truthy() { &vb } else { &va });
        prop_assert_eq!(&or, if va.truthy() { &va } else { &vb });
        // De Morgan on truthiness
        let nand = parse_expression(&format!("!({a} && {b})")).unwrap().eval(&env).unwrap();
        let nor_parts = parse_expression(&format!("!{a} || !{b}")).unwrap().eval(&env).unwrap();
        prop_assert_eq!(nand.truthy(), nor_parts.truthy());
    }

    #[test]
    fn comparisons_are_consistent(a in literal(), b in literal()) {
        let c = ctx();
        let env = Env::new(&c);
        let ev = |s: String| parse_expression(&s).unwrap().eval(&env).unwrap().truthy();
        let lt = ev(format!("{a} < {b}"));
        let gt = ev(format!("{b} > {a}"));
        prop_assert_eq!(lt, gt);
        let le = ev(format!("{a} <= {b}"));
        prop_assert!(!lt || le);
    }

    #[test]
    fn integers_format_and_parse_back(n in -999_999_999_999_999i64..999_999_999_999_999) {
        let s = format_number(n as f64);
        prop_assert_eq!(s.clone(), n.to_string());
        prop_assert_eq!(parse_number_str(&s), n as f64);
    }

    #[test]
    fn string_literals_round_trip(s in "\\PC{0,20}") {
        let lit = format!("'{}'", s.replace('\'', "''"));
        let c = ctx();
        let v = parse_expression(&lit).unwrap().eval(&Env::new(&c)).unwrap();
        prop_assert_eq!(v, Value::String(s));
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse_expression(&deep).is_err());
    let nots = format!("{}1", "!".repeat(10_000));
    assert!(parse_expression(&nots).is_err());
    let calls = format!("{}1{}", "toJSON(".repeat(5_000), ")".repeat(5_000));
    assert!(parse_expression(&calls).is_err());
    let long = "1 == 1 && ".repeat(3000) + "1";
    assert!(parse_expression(&long).is_err());
}
