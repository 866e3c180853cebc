//! A Sigma `condition`: search identifiers joined by `and`, `or`, `not`
//! and parentheses, and `1 of` / `all of` a wildcard name or `them`.
//! `not` binds tightest, then `and`, then `or`.

/// A parsed condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// A search identifier.
    Name(String),
    /// `1 of PATTERN` (or `any of`), `them` for every identifier.
    OneOf(String),
    /// `all of PATTERN`.
    AllOf(String),
}

pub fn parse(text: &str) -> Result<Expr, String> {
    if text.contains('|') {
        return Err(
            "aggregations in the condition (`| count() …`) are not supported: write a Sigma correlation rule".into(),
        );
    }
    let tokens = tokenize(text);
    if tokens.is_empty() {
        return Err("the condition is empty".into());
    }
    let mut parser = Parser { tokens, at: 0 };
    let expr = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(expr),
        Some(token) => Err(format!("unexpected `{token}` in the condition")),
    }
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for char in text.chars() {
        match char {
            '(' | ')' => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
                tokens.push(char.to_string());
            }
            char if char.is_whitespace() => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            char => current.push(char),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek_keyword(&self, keyword: &str) -> bool {
        self.tokens
            .get(self.at)
            .is_some_and(|token| token.eq_ignore_ascii_case(keyword))
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut parts = vec![self.and()?];
        while self.peek_keyword("or") {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut parts = vec![self.not()?];
        while self.peek_keyword("and") {
            self.at += 1;
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.peek_keyword("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let Some(token) = self.tokens.get(self.at).cloned() else {
            return Err("the condition ends where a search identifier was expected".into());
        };
        self.at += 1;
        if token == "(" {
            let inner = self.or()?;
            if self.tokens.get(self.at).map(String::as_str) != Some(")") {
                return Err("a `(` in the condition is not closed".into());
            }
            self.at += 1;
            return Ok(inner);
        }
        if token == ")" {
            return Err("unexpected `)` in the condition".into());
        }
        let quantifier = token.to_ascii_lowercase();
        if matches!(quantifier.as_str(), "1" | "any" | "all") && self.peek_keyword("of") {
            self.at += 1;
            let Some(target) = self
                .tokens
                .get(self.at)
                .cloned()
                .filter(|target| target != "(" && target != ")")
            else {
                return Err(format!("`{token} of` needs a name pattern or `them`"));
            };
            self.at += 1;
            return Ok(if quantifier == "all" {
                Expr::AllOf(target)
            } else {
                Expr::OneOf(target)
            });
        }
        if ["and", "or", "of"].contains(&quantifier.as_str()) {
            return Err(format!("`{token}` where a search identifier was expected"));
        }
        if quantifier.parse::<u32>().is_ok() {
            return Err(format!("`{token} of` is not supported: use `1 of` or `all of`"));
        }
        Ok(Expr::Name(token))
    }
}

/// Whether a search identifier matches a `1 of` / `all of` pattern (`*` wildcards).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    if pattern == "them" {
        return !name.starts_with('_');
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Expr {
        Expr::Name(text.into())
    }

    #[test]
    fn not_binds_tighter_than_and_tighter_than_or() {
        assert_eq!(
            parse("a or b and not c").unwrap(),
            Expr::Or(vec![
                name("a"),
                Expr::And(vec![name("b"), Expr::Not(Box::new(name("c")))])
            ])
        );
        assert_eq!(
            parse("(a or b) and c").unwrap(),
            Expr::And(vec![Expr::Or(vec![name("a"), name("b")]), name("c")])
        );
    }

    #[test]
    fn quantifiers_over_patterns() {
        assert_eq!(
            parse("selection and not 1 of filter_main_*").unwrap(),
            Expr::And(vec![
                name("selection"),
                Expr::Not(Box::new(Expr::OneOf("filter_main_*".into())))
            ])
        );
        assert_eq!(parse("all of them").unwrap(), Expr::AllOf("them".into()));
        assert!(name_matches("selection_*", "selection_status_ok"));
        assert!(!name_matches("selection_*", "filter"));
        assert!(name_matches("sel*_a*z", "selection_abcz"));
    }

    #[test]
    fn bad_conditions_say_what_is_wrong() {
        assert!(parse("selection | count() > 5").unwrap_err().contains("correlation"));
        assert!(parse("(a or b").unwrap_err().contains("not closed"));
        assert!(parse("a and").is_err());
        assert!(parse("2 of sel*").unwrap_err().contains("not supported"));
        assert!(parse("a b").unwrap_err().contains("unexpected"));
    }
}
