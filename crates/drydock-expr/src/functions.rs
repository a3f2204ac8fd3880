//! The built-in functions: their signatures (checked at parse time) and implementations.

use drydock_diagnostics::Span;
use drydock_diagnostics::suggest::{Case, closest};

use crate::error::ExprError;
use crate::eval::{Env, JobStatus};
use crate::value::{Value, eq_ignore_case};

pub(crate) struct Function {
    pub name: &'static str,
    pub min: usize,
    pub max: Option<usize>,
    pub usage: &'static str,
}

pub(crate) const FUNCTIONS: &[Function] = &[
    Function {
        name: "contains",
        min: 2,
        max: Some(2),
        usage: "contains(search, item)",
    },
    Function {
        name: "startsWith",
        min: 2,
        max: Some(2),
        usage: "startsWith(searchString, searchValue)",
    },
    Function {
        name: "endsWith",
        min: 2,
        max: Some(2),
        usage: "endsWith(searchString, searchValue)",
    },
    Function {
        name: "format",
        min: 1,
        max: None,
        usage: "format('{0} {1}', a, b)",
    },
    Function {
        name: "join",
        min: 1,
        max: Some(2),
        usage: "join(array, optionalSeparator)",
    },
    Function {
        name: "toJSON",
        min: 1,
        max: Some(1),
        usage: "toJSON(value)",
    },
    Function {
        name: "fromJSON",
        min: 1,
        max: Some(1),
        usage: "fromJSON(value)",
    },
    Function {
        name: "hashFiles",
        min: 1,
        max: None,
        usage: "hashFiles('**/package-lock.json', ...)",
    },
    Function {
        name: "success",
        min: 0,
        max: Some(0),
        usage: "success()",
    },
    Function {
        name: "failure",
        min: 0,
        max: Some(0),
        usage: "failure()",
    },
    Function {
        name: "always",
        min: 0,
        max: Some(0),
        usage: "always()",
    },
    Function {
        name: "cancelled",
        min: 0,
        max: Some(0),
        usage: "cancelled()",
    },
];

/// Calls function `name` (lower-cased) with evaluated arguments.
pub(crate) fn call(
    name: &str,
    args: &[(Value, Span)],
    span: Span,
    env: &Env<'_>,
) -> Result<Value, ExprError> {
    let arg = |i: usize| args.get(i).map(|(v, _)| v).unwrap_or(&Value::Null);
    Ok(match name {
        "contains" => Value::Bool(match arg(0) {
            Value::Array(items) => items.iter().any(|v| v.loose_eq(arg(1))),
            search => {
                contains_ignore_case(&search.to_display_string(), &arg(1).to_display_string())
            }
        }),
        "startswith" => {
            let (a, b) = (
                fold(&arg(0).to_display_string()),
                fold(&arg(1).to_display_string()),
            );
            Value::Bool(a.starts_with(&b))
        }
        "endswith" => {
            let (a, b) = (
                fold(&arg(0).to_display_string()),
                fold(&arg(1).to_display_string()),
            );
            Value::Bool(a.ends_with(&b))
        }
        "format" => {
            let (fmt, fmt_span) = args
                .first()
                .map(|(v, s)| (v.to_display_string(), *s))
                .unwrap_or_default();
            let rest: Vec<String> = args
                .iter()
                .skip(1)
                .map(|(v, _)| v.to_display_string())
                .collect();
            Value::String(format(&fmt, &rest).map_err(|m| ExprError::eval(m, fmt_span))?)
        }
        "join" => {
            let sep = if args.len() > 1 {
                arg(1).to_display_string()
            } else {
                ",".to_string()
            };
            match arg(0) {
                Value::Array(items) => Value::String(
                    items
                        .iter()
                        .map(Value::to_display_string)
                        .collect::<Vec<_>>()
                        .join(&sep),
                ),
                other => Value::String(other.to_display_string()),
            }
        }
        "tojson" => Value::String(arg(0).to_json_pretty()),
        "fromjson" => {
            let text = arg(0).to_display_string();
            let at = args.first().map_or(span, |(_, s)| *s);
            if text.trim().is_empty() {
                return Err(ExprError::eval("fromJSON: the input is empty", at));
            }
            Value::parse_json(&text)
                .map_err(|e| ExprError::eval(format!("fromJSON: invalid JSON: {e}"), at))?
        }
        "hashfiles" => {
            let patterns: Vec<String> = args.iter().map(|(v, _)| v.to_display_string()).collect();
            let Some(h) = env.hash_files else {
                return Err(ExprError::eval("hashFiles() is not available here", span));
            };
            Value::String(
                h(&patterns).map_err(|e| ExprError::eval(format!("hashFiles: {e}"), span))?,
            )
        }
        "success" => Value::Bool(env.status == JobStatus::Success),
        "failure" => Value::Bool(env.status == JobStatus::Failure),
        "cancelled" => Value::Bool(env.status == JobStatus::Cancelled),
        "always" => Value::Bool(true),
        _ => return Err(ExprError::eval(format!("unknown function '{name}'"), span)),
    })
}

fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_uppercase).collect()
}

fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    eq_ignore_case(hay, needle) || fold(hay).contains(&fold(needle))
}

/// `format('{0} and {1}', ...)`: `{N}` is replaced by argument N, `{{` and `}}` are literal
/// braces; any other brace is an error, as is an index past the arguments.
pub(crate) fn format(fmt: &str, args: &[String]) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = fmt.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|p| p.1) == Some('{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek().map(|p| p.1) == Some('}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut digits = String::new();
                let mut closed = false;
                for (_, d) in chars.by_ref() {
                    if d == '}' {
                        closed = true;
                        break;
                    }
                    digits.push(d);
                }
                let idx: Option<usize> =
                    if closed && !digits.is_empty() && digits.chars().all(|d| d.is_ascii_digit()) {
                        digits.parse().ok()
                    } else {
                        None
                    };
                match idx {
                    Some(n) if n < args.len() => out.push_str(&args[n]),
                    Some(n) => {
                        return Err(format!(
                            "format: '{{{n}}}' refers to argument {n}, but only {} argument(s) follow the format string",
                            args.len()
                        ));
                    }
                    None => {
                        return Err(format!(
                            "format: the format string is invalid at byte {i}: '{fmt}'"
                        ));
                    }
                }
            }
            '}' => {
                return Err(format!(
                    "format: unmatched '}}' at byte {i} in '{fmt}' (write '}}}}' for a brace)"
                ));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The closest name within a small edit distance, for "did you mean" hints.
pub(crate) fn suggest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    closest(
        name,
        candidates.iter().copied(),
        Case::IgnoreAscii,
        |d, c| d <= (c.len() / 3).max(1) + usize::from(c.len() > 6),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_escapes_and_errors() {
        let a = vec!["x".to_string(), "y".to_string()];
        assert_eq!(format("{0}-{1}-{0}", &a).unwrap(), "x-y-x");
        assert_eq!(format("{{0}} {0}", &a).unwrap(), "{0} x");
        assert!(format("{2}", &a).is_err());
        assert!(format("{a}", &a).is_err());
        assert!(format("{0", &a).is_err());
        assert!(format("a}b", &a).is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("startwith", &["startsWith", "endsWith"]),
            Some("startsWith")
        );
        assert_eq!(suggest("gihub", &["github", "env"]), Some("github"));
        assert_eq!(suggest("zzz", &["github", "env"]), None);
    }
}
