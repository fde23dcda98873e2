//! The search language: what people type into a search box, without reading a manual.
//!
//! ```text
//! timeout                        a word in the message (whole word, any case)
//! "connection refused"           a phrase in the message
//! level:error                    a field equals a value (any case); any top-level field works
//! service:(api OR worker)        one of several values
//! -host:db1   NOT host:db1       negation
//! status:>=500  duration_ms:>2000  level:>=warning   comparisons
//! user_id:*                      the field is present
//! a b   a AND b                  both (the default)
//! a OR b   (a OR b) c            either; OR binds looser than AND
//! ```
//!
//! Parsing produces an [`Expr`]; [`Expr::matches`] is the one definition of what a query
//! means for a line, and the index is only ever used to narrow down which lines to test.

use std::fmt;

use hubmon_model::{Level, LogEntry, normalize_category};

use crate::text;

/// A query that did not parse, with the character position (0-based) where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query error at position {position}: {message}")]
pub struct QueryError {
    pub position: usize,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    pub(crate) fn holds(self, left: f64, right: f64) -> bool {
        match self {
            CmpOp::Gt => left > right,
            CmpOp::Ge => left >= right,
            CmpOp::Lt => left < right,
            CmpOp::Le => left <= right,
        }
    }
}

/// One test on a line.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// A word or phrase in the message, lower-cased.
    Text(String),
    /// The field's text equals one of the values (any case).
    FieldIs {
        field: String,
        values: Vec<String>,
    },
    FieldExists(String),
    /// The field's number (or the level's rank) compares to the value.
    FieldCmp {
        field: String,
        op: CmpOp,
        value: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every line.
    All,
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Is(Predicate),
}

impl Expr {
    pub fn parse(input: &str) -> Result<Expr, QueryError> {
        let tokens = lex(input)?;
        let mut parser = Parser { tokens, at: 0, end: input.chars().count() };
        if parser.tokens.is_empty() {
            return Ok(Expr::All);
        }
        let expr = parser.or()?;
        if let Some(token) = parser.tokens.get(parser.at) {
            return Err(QueryError { position: token.position, message: "unexpected \")\"".into() });
        }
        Ok(expr)
    }

    /// Whether `entry` satisfies the query.
    pub fn matches(&self, entry: &LogEntry) -> bool {
        match self {
            Expr::All => true,
            Expr::And(parts) => parts.iter().all(|p| p.matches(entry)),
            Expr::Or(parts) => parts.iter().any(|p| p.matches(entry)),
            Expr::Not(inner) => !inner.matches(entry),
            Expr::Is(predicate) => predicate.matches(entry),
        }
    }

    /// Whether only the message decides the expression (words and phrases), so a line's
    /// message alone answers [`Expr::matches_message`].
    pub fn reads_only_message(&self) -> bool {
        match self {
            Expr::All | Expr::Is(Predicate::Text(_)) => true,
            Expr::And(parts) | Expr::Or(parts) => parts.iter().all(Expr::reads_only_message),
            Expr::Not(inner) => inner.reads_only_message(),
            Expr::Is(_) => false,
        }
    }

    /// [`Expr::matches`] of a line with this message, for an expression that
    /// [reads only the message](Expr::reads_only_message) (any other predicate is `false`).
    pub fn matches_message(&self, message: &str) -> bool {
        match self {
            Expr::All => true,
            Expr::And(parts) => parts.iter().all(|p| p.matches_message(message)),
            Expr::Or(parts) => parts.iter().any(|p| p.matches_message(message)),
            Expr::Not(inner) => !inner.matches_message(message),
            Expr::Is(Predicate::Text(term)) => text::contains_term(message, term),
            Expr::Is(_) => false,
        }
    }

    /// The words and phrases that count for highlighting (not those under a negation).
    pub fn highlight_terms(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_terms(&mut out);
        out
    }

    fn collect_terms(&self, out: &mut Vec<String>) {
        match self {
            Expr::And(parts) | Expr::Or(parts) => parts.iter().for_each(|p| p.collect_terms(out)),
            Expr::Is(Predicate::Text(term)) => out.push(term.clone()),
            _ => {}
        }
    }
}

impl Predicate {
    pub fn matches(&self, entry: &LogEntry) -> bool {
        match self {
            Predicate::Text(term) => text::contains_term(&entry.message, term),
            Predicate::FieldIs { field, values } => match entry.field_text(field) {
                Some(actual) => {
                    let actual = text::lower(&actual);
                    values.contains(&actual)
                }
                None => false,
            },
            Predicate::FieldExists(field) => entry.field_text(field).is_some(),
            Predicate::FieldCmp { field, op, value } => {
                if field == "level" {
                    return op.holds(f64::from(entry.level.code()), *value);
                }
                let number = match (field.as_str(), entry.fields.get(field.as_str())) {
                    (_, Some(serde_json::Value::Number(n))) => n.as_f64(),
                    _ => entry.field_text(field).and_then(|t| t.trim().parse::<f64>().ok()),
                };
                number.is_some_and(|n| op.holds(n, *value))
            }
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Word(String),
    Phrase(String),
    Open,
    Close,
    Minus,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    position: usize,
    /// Whether whitespace follows (a `field:` word binds to the next token only when not).
    spaced: bool,
}

fn lex(input: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = if c.is_whitespace() {
            i += 1;
            if let Some(last) = tokens.last_mut() {
                let last: &mut Token = last;
                last.spaced = true;
            }
            continue;
        } else if c == '(' {
            i += 1;
            Kind::Open
        } else if c == ')' {
            i += 1;
            Kind::Close
        } else if c == '-' && chars.get(i + 1).is_some_and(|n| !n.is_whitespace()) && at_word_start(&tokens) {
            i += 1;
            Kind::Minus
        } else if c == '"' {
            let mut phrase = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(QueryError { position: start, message: "unclosed quote".into() });
                    }
                    Some('\\') if matches!(chars.get(i + 1), Some('"') | Some('\\')) => {
                        phrase.push(chars[i + 1]);
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        phrase.push(other);
                        i += 1;
                    }
                }
            }
            Kind::Phrase(phrase)
        } else {
            let mut word = String::new();
            while let Some(&n) = chars.get(i) {
                if n.is_whitespace() || n == '(' || n == ')' || n == '"' {
                    break;
                }
                word.push(n);
                i += 1;
            }
            Kind::Word(word)
        };
        tokens.push(Token { kind, position: start, spaced: false });
    }
    Ok(tokens)
}

/// A `-` negates only at the start of a term, not inside `a-b`.
fn at_word_start(tokens: &[Token]) -> bool {
    tokens.last().is_none_or(|t| t.spaced || matches!(t.kind, Kind::Open))
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn position(&self) -> usize {
        self.peek().map_or(self.end, |t| t.position)
    }

    fn error<T>(&self, position: usize, message: impl Into<String>) -> Result<T, QueryError> {
        Err(QueryError { position, message: message.into() })
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: Kind::Word(w), .. }) if w == keyword)
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut parts = vec![self.and()?];
        while self.is_keyword("OR") {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Expr::Or(parts) })
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut parts = Vec::new();
        loop {
            match self.peek() {
                None => break,
                Some(Token { kind: Kind::Close, .. }) => break,
                Some(Token { kind: Kind::Word(w), .. }) if w == "OR" => break,
                Some(Token { kind: Kind::Word(w), .. }) if w == "AND" => {
                    self.at += 1;
                    continue;
                }
                _ => parts.push(self.unary()?),
            }
        }
        match parts.len() {
            0 => self.error(self.position(), "expected a search term"),
            1 => Ok(parts.remove(0)),
            _ => Ok(Expr::And(parts)),
        }
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if matches!(self.peek(), Some(Token { kind: Kind::Minus, .. })) || self.is_keyword("NOT") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        let Some(token) = self.peek().cloned() else {
            return self.error(self.end, "expected a search term");
        };
        self.at += 1;
        match token.kind.clone() {
            Kind::Open => {
                let inner = self.or()?;
                match self.peek() {
                    Some(Token { kind: Kind::Close, .. }) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => self.error(token.position, "unclosed \"(\""),
                }
            }
            Kind::Close => self.error(token.position, "unexpected \")\""),
            Kind::Minus => self.error(token.position, "\"-\" needs a term after it"),
            Kind::Phrase(phrase) => Ok(text_term(&phrase)),
            Kind::Word(word) => match field_split(&word) {
                Some((field, rest)) => self.field(field, rest, &token),
                None => Ok(text_term(&word)),
            },
        }
    }

    /// `field:value`, `field:"a b"`, `field:(a OR b)`, `field:>=5`, `field:*`. An alias
    /// (`msg`, `lvl`, `severity`, …) means its model field or a free-form field of that very
    /// name: a line may carry both `message` and `msg`, or a `severity` of its own.
    fn field(&mut self, name: &str, rest: &str, token: &Token) -> Result<Expr, QueryError> {
        let canonical = canonical_field(name);
        if canonical == name {
            return self.field_as(canonical, rest, token);
        }
        let start = self.at;
        let model = self.field_as(canonical, rest, token);
        let model_end = self.at;
        self.at = start;
        let literal = self.field_as(name.to_string(), rest, token);
        match (model, literal) {
            (Ok(model), Ok(literal)) if self.at == model_end => Ok(Expr::Or(vec![model, literal])),
            (Err(_), Ok(literal)) => Ok(literal),
            (model, _) => {
                self.at = model_end;
                model
            }
        }
    }

    fn field_as(&mut self, field: String, rest: &str, token: &Token) -> Result<Expr, QueryError> {
        // Positions count from the name as typed, not from the field it stands for.
        let typed_name = token_field_name(token).map_or(field.chars().count(), |n| n.chars().count());
        let value_position = token.position + typed_name + 1;
        if field == "message" {
            return match (rest, self.peek()) {
                ("", Some(Token { kind: Kind::Phrase(p), .. })) if !token.spaced => {
                    let p = p.clone();
                    self.at += 1;
                    Ok(text_term(&p))
                }
                ("", _) => self.error(value_position, "message: needs a word or a \"phrase\""),
                (word, _) => Ok(text_term(word)),
            };
        }
        if !rest.is_empty() {
            if rest == "*" {
                return Ok(Expr::Is(Predicate::FieldExists(field)));
            }
            if let Some((op, number)) = comparison(rest) {
                return self.comparison(field, op, number, value_position);
            }
            return Ok(field_is(&field, vec![rest.to_string()]));
        }
        if token.spaced {
            return self.error(value_position, format!("{field}: needs a value right after the colon"));
        }
        match self.peek().cloned() {
            Some(Token { kind: Kind::Phrase(p), .. }) => {
                self.at += 1;
                Ok(field_is(&field, vec![p]))
            }
            Some(Token { kind: Kind::Open, position, .. }) => {
                self.at += 1;
                let mut values = Vec::new();
                loop {
                    match self.peek().cloned() {
                        Some(Token { kind: Kind::Close, .. }) => {
                            self.at += 1;
                            break;
                        }
                        Some(Token { kind: Kind::Word(w), .. }) if w == "OR" => self.at += 1,
                        Some(Token { kind: Kind::Word(w) | Kind::Phrase(w), .. }) => {
                            values.push(w);
                            self.at += 1;
                        }
                        Some(other) => return self.error(other.position, "expected a value or \")\""),
                        None => return self.error(position, "unclosed \"(\""),
                    }
                }
                if values.is_empty() {
                    return self.error(position, "empty list of values");
                }
                Ok(field_is(&field, values))
            }
            _ => self.error(value_position, format!("{field}: needs a value right after the colon")),
        }
    }

    fn comparison(&self, field: String, op: CmpOp, operand: &str, position: usize) -> Result<Expr, QueryError> {
        let value = if field == "level" {
            match Level::parse(operand) {
                Some(level) => f64::from(level.code()),
                None => return self.error(position, format!("unknown level {operand:?}")),
            }
        } else {
            match operand.parse::<f64>() {
                Ok(v) if v.is_finite() => v,
                _ => return self.error(position, format!("{field}:{op} needs a number, got {operand:?}")),
            }
        };
        Ok(Expr::Is(Predicate::FieldCmp { field, op, value }))
    }
}

fn comparison(rest: &str) -> Option<(CmpOp, &str)> {
    for (prefix, op) in [(">=", CmpOp::Ge), ("<=", CmpOp::Le), (">", CmpOp::Gt), ("<", CmpOp::Lt)] {
        if let Some(operand) = rest.strip_prefix(prefix) {
            return Some((op, operand));
        }
    }
    None
}

/// Splits `name:rest` when `name` looks like a field name; `http://x` and `12:30` stay words.
fn field_split(word: &str) -> Option<(&str, &str)> {
    let (name, rest) = word.split_once(':')?;
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_' || c == '@');
    let rest_ok = chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '@'));
    (first_ok && rest_ok && !rest.starts_with("//")).then_some((name, rest))
}

/// The field name a `name:rest` word token starts with.
fn token_field_name(token: &Token) -> Option<&str> {
    match &token.kind {
        Kind::Word(word) => field_split(word).map(|(name, _)| name),
        _ => None,
    }
}

fn canonical_field(name: &str) -> String {
    match name {
        "msg" | "message" => "message".into(),
        "lvl" | "severity" => "level".into(),
        "requestId" | "req_id" => "request_id".into(),
        "userId" => "user_id".into(),
        other => other.to_string(),
    }
}

fn text_term(raw: &str) -> Expr {
    Expr::Is(Predicate::Text(text::lower(raw)))
}

fn field_is(field: &str, values: Vec<String>) -> Expr {
    let values = values
        .into_iter()
        .map(|v| match field {
            "level" => Level::parse(&v).map_or_else(|| text::lower(&v), |l| l.as_str().to_string()),
            "category" => normalize_category(&v),
            _ => text::lower(&v),
        })
        .collect();
    Expr::Is(Predicate::FieldIs { field: field.to_string(), values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubmon_model::Timestamp;

    fn entry() -> LogEntry {
        let mut e = LogEntry::new(Timestamp(0), Level::Error, "Upstream timeout after 2500ms: connection refused");
        e.category = "api".into();
        e.service = Some("Checkout".into());
        e.request_id = Some("req-1".into());
        e.fields.insert("status".into(), serde_json::json!(503));
        e.fields.insert("duration_ms".into(), serde_json::json!("2500"));
        e
    }

    fn matches(query: &str) -> bool {
        Expr::parse(query).unwrap().matches(&entry())
    }

    #[test]
    fn the_issue_examples_mean_what_they_say() {
        assert!(matches("timeout"));
        assert!(matches("\"connection refused\""));
        assert!(!matches("\"refused connection\""));
        assert!(matches("level:error"));
        assert!(matches("level:ERR"));
        assert!(matches("service:(api OR checkout)"));
        assert!(!matches("-service:checkout"));
        assert!(matches("status:>=500"));
        assert!(matches("duration_ms:>2000"));
        assert!(!matches("duration_ms:>3000"));
        assert!(matches("level:>=warning"));
        assert!(matches("request_id:req-1 category:http"));
        assert!(matches("nothing OR timeout"));
        assert!(!matches("nothing OR (timeout -level:error)"));
        assert!(matches("user_id:* OR status:*"));
        assert!(matches("msg:\"after 2500ms\""));
        assert!(matches(""));
    }

    #[test]
    fn bad_queries_say_where() {
        for (query, position) in [
            ("\"open", 0),
            ("status:>=abc", 7),
            ("level:(a OR", 6),
            ("a )", 2),
            ("(a b", 0),
            ("level: error", 6),
            // counted from the alias as typed, not from the field it stands for
            ("msg: x", 4),
            ("lvl:(a OR", 4),
        ] {
            let error = Expr::parse(query).unwrap_err();
            assert_eq!(error.position, position, "{query}: {error}");
        }
    }

    /// An alias means its model field or a free-form field of that very name.
    #[test]
    fn aliases_also_find_free_form_fields_of_their_own_name() {
        let mut both = entry();
        both.fields.insert("msg".into(), serde_json::json!("second text"));
        both.fields.insert("severity".into(), serde_json::json!("high"));
        let hits = |query: &str| Expr::parse(query).unwrap().matches(&both);
        assert!(hits("msg:\"second text\""));
        assert!(hits("msg:\"after 2500ms\""));
        assert!(!hits("msg:\"third text\""));
        assert!(hits("severity:high"));
        assert!(hits("severity:error"));
        assert!(!hits("severity:low"));
        assert!(!hits("-msg:\"second text\""));
        // A comparison only the free-form field can mean is not an error.
        both.fields.insert("severity".into(), serde_json::json!(7));
        assert!(Expr::parse("severity:>=5").unwrap().matches(&both));
    }

    #[test]
    fn urls_and_times_are_words() {
        assert_eq!(Expr::parse("http://x/y").unwrap(), text_term("http://x/y"));
        assert_eq!(Expr::parse("12:30").unwrap(), text_term("12:30"));
        assert_eq!(Expr::parse("a-b").unwrap(), text_term("a-b"));
    }
}
