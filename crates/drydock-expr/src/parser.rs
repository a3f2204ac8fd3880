//! Recursive-descent parser. Precedence, loosest first: `||`, `&&`, `== !=`, `< <= > >=`, `!`,
//! then postfix `.name`, `.*`, `[index]`, `[*]`.

use drydock_diagnostics::Span;

use crate::ast::{BinOp, Expr, ExprKind, Literal};
use crate::error::ExprError;
use crate::functions::{FUNCTIONS, suggest};
use crate::lexer::{Tok, lex};

/// Deepest nesting accepted (GitHub's limit is the same); keeps the evaluator's recursion bounded.
pub const MAX_DEPTH: usize = 50;
/// Longest expression accepted, in bytes (GitHub's limit is 21,000 characters).
pub const MAX_LEN: usize = 21_000;

/// What names an expression may use.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// Context names allowed at the top level (`github`, `env`, ...); `None` allows any name.
    pub contexts: Option<Vec<String>>,
}

impl ParseOptions {
    pub fn with_contexts(names: &[&str]) -> Self {
        Self {
            contexts: Some(names.iter().map(|s| s.to_string()).collect()),
        }
    }
}

/// Parses one expression, allowing any context name.
pub fn parse_expression(src: &str) -> Result<Expr, ExprError> {
    parse_expression_with(src, &ParseOptions::default())
}

/// Parses one expression; spans are byte offsets into `src`.
pub fn parse_expression_with(src: &str, opts: &ParseOptions) -> Result<Expr, ExprError> {
    if src.len() > MAX_LEN {
        return Err(ExprError::syntax(
            format!(
                "expression is too long ({} bytes, at most {MAX_LEN})",
                src.len()
            ),
            Span::new(0, src.len()),
        ));
    }
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        opts,
    };
    if matches!(p.peek(), Tok::Eof) {
        return Err(ExprError::syntax(
            "expected an expression",
            Span::new(0, src.len()),
        ));
    }
    let e = p.or()?;
    if !matches!(p.peek(), Tok::Eof) {
        let (t, span) = p.toks[p.pos].clone();
        return Err(ExprError::syntax(
            format!("unexpected {} after the expression", t.describe()),
            span,
        ));
    }
    Ok(e)
}

struct Parser<'o> {
    toks: Vec<(Tok, Span)>,
    pos: usize,
    depth: usize,
    opts: &'o ParseOptions,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].0
    }

    fn span(&self) -> Span {
        self.toks[self.pos.min(self.toks.len() - 1)].1
    }

    fn bump(&mut self) -> (Tok, Span) {
        let t = self.toks[self.pos.min(self.toks.len() - 1)].clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ExprError::syntax(
                format!("expression nests deeper than {MAX_DEPTH} levels"),
                self.span(),
            ));
        }
        Ok(())
    }

    fn binary(
        &mut self,
        ops: &[(Tok, BinOp)],
        next: fn(&mut Self) -> Result<Expr, ExprError>,
    ) -> Result<Expr, ExprError> {
        let mut lhs = next(self)?;
        let mut count = 0;
        while let Some(op) = ops
            .iter()
            .find(|(t, _)| t == self.peek())
            .map(|(_, op)| *op)
        {
            self.bump();
            count += 1;
            if count > MAX_DEPTH * 4 {
                return Err(ExprError::syntax(
                    "too many operators in one expression",
                    self.span(),
                ));
            }
            let rhs = next(self)?;
            let span = lhs.span.cover(rhs.span);
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
        Ok(lhs)
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        self.enter()?;
        let r = self.binary(&[(Tok::Or, BinOp::Or)], Self::and);
        self.depth -= 1;
        r
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        self.binary(&[(Tok::And, BinOp::And)], Self::equality)
    }

    fn equality(&mut self) -> Result<Expr, ExprError> {
        self.binary(
            &[(Tok::Eq, BinOp::Eq), (Tok::Ne, BinOp::Ne)],
            Self::comparison,
        )
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        self.binary(
            &[
                (Tok::Lt, BinOp::Lt),
                (Tok::Le, BinOp::Le),
                (Tok::Gt, BinOp::Gt),
                (Tok::Ge, BinOp::Ge),
            ],
            Self::unary,
        )
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if matches!(self.peek(), Tok::Not) {
            let (_, start) = self.bump();
            self.enter()?;
            let inner = self.unary();
            self.depth -= 1;
            let inner = inner?;
            let span = start.cover(inner.span);
            return Ok(Expr {
                kind: ExprKind::Not(Box::new(inner)),
                span,
            });
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.primary()?;
        let mut count = 0;
        loop {
            count += 1;
            if count > 256 {
                return Err(ExprError::syntax(
                    "too many property accesses in one expression",
                    self.span(),
                ));
            }
            match self.peek() {
                Tok::Dot => {
                    self.bump();
                    let (t, span) = self.bump();
                    let whole = e.span.cover(span);
                    e = match t {
                        Tok::Ident(name) => Expr {
                            kind: ExprKind::Property(Box::new(e), name),
                            span: whole,
                        },
                        Tok::Star => Expr {
                            kind: ExprKind::Filter(Box::new(e)),
                            span: whole,
                        },
                        other => {
                            return Err(ExprError::syntax(
                                format!(
                                    "expected a property name after '.', found {}",
                                    other.describe()
                                ),
                                span,
                            ));
                        }
                    };
                }
                Tok::LBracket => {
                    self.bump();
                    if matches!(self.peek(), Tok::Star) {
                        self.bump();
                        let end = self.expect(Tok::RBracket, "']' after '[*'")?;
                        let span = e.span.cover(end);
                        e = Expr {
                            kind: ExprKind::Filter(Box::new(e)),
                            span,
                        };
                    } else {
                        let idx = self.or()?;
                        let end = self.expect(Tok::RBracket, "']' to close the index")?;
                        let span = e.span.cover(end);
                        e = Expr {
                            kind: ExprKind::Index(Box::new(e), Box::new(idx)),
                            span,
                        };
                    }
                }
                _ => return Ok(e),
            }
        }
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<Span, ExprError> {
        if *self.peek() == tok {
            return Ok(self.bump().1);
        }
        let (t, span) = (self.peek().clone(), self.span());
        Err(ExprError::syntax(
            format!("expected {what}, found {}", t.describe()),
            span,
        ))
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let (t, span) = self.bump();
        let lit = |l| {
            Ok(Expr {
                kind: ExprKind::Literal(l),
                span,
            })
        };
        match t {
            Tok::Number(n) => lit(Literal::Number(n)),
            Tok::Str(s) => lit(Literal::String(s)),
            Tok::LParen => {
                let inner = self.or()?;
                let end = self.expect(Tok::RParen, "')'")?;
                Ok(Expr {
                    kind: inner.kind,
                    span: span.cover(end),
                })
            }
            Tok::Ident(name) => match name.as_str() {
                "true" => lit(Literal::Bool(true)),
                "false" => lit(Literal::Bool(false)),
                "null" => lit(Literal::Null),
                _ if matches!(self.peek(), Tok::LParen) => self.call(name, span),
                _ => {
                    if let Some(allowed) = &self.opts.contexts
                        && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&name))
                    {
                        {
                            let mut err = ExprError::syntax(
                                format!("unrecognized named-value '{name}'"),
                                span,
                            );
                            let names: Vec<&str> = allowed.iter().map(String::as_str).collect();
                            if let Some(s) = suggest(&name, &names) {
                                err = err.with_hint(format!("did you mean '{s}'?"));
                            }
                            err = err.with_hint(format!("available here: {}", names.join(", ")));
                            return Err(err);
                        }
                    }
                    Ok(Expr {
                        kind: ExprKind::Context(name),
                        span,
                    })
                }
            },
            Tok::Eof => Err(ExprError::syntax("unexpected end of expression", span)),
            other => Err(ExprError::syntax(
                format!("unexpected {}", other.describe()),
                span,
            )),
        }
    }

    fn call(&mut self, name: String, name_span: Span) -> Result<Expr, ExprError> {
        let lower = name.to_ascii_lowercase();
        let Some(f) = FUNCTIONS
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(&lower))
        else {
            let mut err = ExprError::syntax(format!("unrecognized function '{name}'"), name_span);
            let names: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
            if let Some(s) = suggest(&name, &names) {
                err = err.with_hint(format!("did you mean '{s}'?"));
            }
            return Err(err);
        };
        self.bump(); // (
        self.enter()?;
        let mut args = Vec::new();
        if !matches!(self.peek(), Tok::RParen) {
            loop {
                args.push(self.or()?);
                if matches!(self.peek(), Tok::Comma) {
                    self.bump();
                    continue;
                }
                break;
            }
        }
        self.depth -= 1;
        let end = self.expect(Tok::RParen, "',' or ')' in the argument list")?;
        let span = name_span.cover(end);
        if args.len() < f.min || f.max.is_some_and(|m| args.len() > m) {
            let expected = match f.max {
                Some(m) if m == f.min => format!("{m}"),
                Some(m) => format!("{} to {m}", f.min),
                None => format!("at least {}", f.min),
            };
            return Err(ExprError::syntax(
                format!(
                    "{}() takes {expected} argument(s), got {}",
                    f.name,
                    args.len()
                ),
                span,
            )
            .with_hint(format!("usage: {}", f.usage)));
        }
        Ok(Expr {
            kind: ExprKind::Call(f.name.to_ascii_lowercase(), args),
            span,
        })
    }
}
