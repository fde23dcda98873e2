//! logfmt (`key=value key2="quoted \"value\"" flag`), read the same way wherever a line is:
//! by ingest, which must tell a logfmt line from prose, and by LogQL's `| logfmt`, which takes
//! whatever pairs a line has, as Loki does.

/// A `key=value` pair; a bare `flag` has no value.
pub type Pair = (String, Option<String>);

/// The pairs of `text`, or `None` if it is not well-formed logfmt: a quote in a key, a value
/// opened with `"` and not closed, a closing quote not followed by a space, a `=` with no key.
pub fn strict(text: &str) -> Option<Vec<Pair>> {
    let mut pairs = Vec::new();
    let complete = read(text, &mut pairs);
    complete.then_some(pairs)
}

/// The pairs `text` has, up to where it stops being logfmt.
pub fn lenient(text: &str) -> Vec<Pair> {
    let mut pairs = Vec::new();
    read(text, &mut pairs);
    pairs
}

/// Reads pairs into `pairs`; `false` where the text stops being logfmt.
fn read(text: &str, pairs: &mut Vec<Pair>) -> bool {
    let mut chars = text.trim().chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return true;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            if c == '"' {
                return false;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            return false;
        }
        if chars.peek() != Some(&'=') {
            pairs.push((key, None));
            continue;
        }
        chars.next();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some('t') => value.push('\t'),
                        Some(other) => value.push(other),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    other => value.push(other),
                }
            }
            if !closed {
                pairs.push((key, Some(value)));
                return false;
            }
            pairs.push((key, Some(value)));
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return false;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
            pairs.push((key, Some(value)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(key: &str, value: &str) -> Pair {
        (key.into(), Some(value.into()))
    }

    #[test]
    fn pairs_quotes_escapes_and_flags() {
        let pairs = strict(r#"a=1 msg="two words" q="say \"hi\"\n" flag empty="#).unwrap();
        let expected = vec![
            some("a", "1"),
            some("msg", "two words"),
            some("q", "say \"hi\"\n"),
            ("flag".into(), None),
            some("empty", ""),
        ];
        assert_eq!(pairs, expected);
    }

    #[test]
    fn malformed_text_is_not_logfmt_but_its_leading_pairs_are_read() {
        for bad in [r#"a=1 b="open"#, r#"a="x"y"#, r#"a"b=1"#, "=1 a=2"] {
            assert_eq!(strict(bad), None, "{bad}");
        }
        assert_eq!(lenient(r#"a=1 b="open"#), vec![some("a", "1"), some("b", "open")]);
        assert_eq!(lenient("=1 a=2"), Vec::<Pair>::new());
    }
}
