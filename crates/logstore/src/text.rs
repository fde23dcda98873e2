//! Text rules shared by the index and the matcher, so that what the index finds is exactly
//! what a scan would find:
//!
//! - a *word character* is a Unicode letter or digit or `_` (grep's `-w` definition);
//! - message tokens are maximal runs of word characters, lower-cased;
//! - a text term matches a message when it occurs in it case-insensitively with no word
//!   character directly before or after it (what `grep -iw` does).
//!
//! Every token of a text term is then a whole token of any message it matches, which is what
//! lets the index answer text terms by intersecting postings.

/// Tokens longer than this are not indexed (they are ids or blobs); a term containing one is
/// answered by scanning.
pub const MAX_TOKEN_CHARS: usize = 64;

/// Field values longer than this (in bytes) are not indexed; a query for such a value scans.
pub const MAX_INDEXED_VALUE_BYTES: usize = 256;

pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Lower-cases character by character, the way [`find_term`] sees a message (so a query
/// term and a message agree even where `str::to_lowercase` would look at context).
pub fn lower(text: &str) -> String {
    if text.is_ascii() { text.to_ascii_lowercase() } else { text.chars().flat_map(char::to_lowercase).collect() }
}

/// The lower-cased tokens of `text`, in order, duplicates included.
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !is_word_char(c)).filter(|t| !t.is_empty()).map(lower)
}

/// Index key of a message token.
pub fn token_key(token: &str) -> String {
    format!("m\u{0}{token}")
}

/// Index key of a field value (case-insensitive).
pub fn field_key(field: &str, value: &str) -> String {
    format!("f\u{0}{field}\u{0}{}", lower(value))
}

/// Index key recording that a line has a field at all (for `field:*` and label listings).
pub fn field_presence_key(field: &str) -> String {
    format!("p\u{0}{field}")
}

/// Whether `needle` (already lower-cased) occurs in `haystack` with word boundaries on both
/// sides, case-insensitively. Returns the byte ranges of the matches in `haystack` when asked.
pub fn find_term(haystack: &str, needle_lower: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    if needle_lower.is_empty() {
        return found;
    }
    let lowered = lower_with_map(haystack);
    let lower = &lowered;
    let starts_word = needle_lower.chars().next().is_some_and(is_word_char);
    let ends_word = needle_lower.chars().next_back().is_some_and(is_word_char);
    let mut from = 0;
    while let Some(pos) = lower.text[from..].find(needle_lower) {
        let start = from + pos;
        let end = start + needle_lower.len();
        let before_ok = !starts_word || !lower.text[..start].chars().next_back().is_some_and(is_word_char);
        let after_ok = !ends_word || !lower.text[end..].chars().next().is_some_and(is_word_char);
        if before_ok && after_ok {
            found.push((lower.original_offset(start), lower.original_offset(end)));
        }
        // Step one character, so overlapping candidates are all tried.
        from = start + lower.text[start..].chars().next().map_or(1, char::len_utf8);
    }
    found
}

pub fn contains_term(haystack: &str, needle_lower: &str) -> bool {
    !find_term(haystack, needle_lower).is_empty()
}

/// A lower-cased copy of a text that remembers where each of its bytes came from, because
/// lower-casing can change a character's length.
struct Lowered {
    text: String,
    /// For each char boundary of `text` (by byte), the byte offset in the original; `None`
    /// when lower-casing kept every offset (ASCII).
    map: Option<Vec<(usize, usize)>>,
}

impl Lowered {
    fn original_offset(&self, lowered: usize) -> usize {
        let Some(map) = &self.map else { return lowered };
        match map.binary_search_by_key(&lowered, |&(l, _)| l) {
            Ok(i) => map[i].1,
            Err(i) => map.get(i.saturating_sub(1)).map_or(0, |&(_, o)| o),
        }
    }
}

fn lower_with_map(text: &str) -> Lowered {
    if text.is_ascii() {
        return Lowered { text: text.to_ascii_lowercase(), map: None };
    }
    let mut out = String::with_capacity(text.len());
    let mut map = Vec::with_capacity(text.len() + 1);
    for (offset, c) in text.char_indices() {
        map.push((out.len(), offset));
        out.extend(c.to_lowercase());
    }
    map.push((out.len(), text.len()));
    Lowered { text: out, map: Some(map) }
}

/// The message with numbers, hex ids, UUIDs and quoted values replaced by placeholders, so
/// `user 42 logged in` and `user 7 logged in` count as one message in the statistics.
pub fn template(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(256));
    template_into(message, &mut out);
    out
}

/// [`template`] written into `out` (cleared first), so a caller that folds every line can
/// reuse one buffer.
pub fn template_into(message: &str, out: &mut String) {
    out.clear();
    for (i, piece) in message.split_inclusive(|c: char| c.is_whitespace()).enumerate() {
        if i >= 40 || out.len() > 200 {
            out.push('…');
            break;
        }
        let word = piece.trim_end_matches(|c: char| c.is_whitespace());
        let tail = &piece[word.len()..];
        let core = word.trim_matches(|c: char| matches!(c, ',' | ';' | ':' | '(' | ')' | '[' | ']' | '.' | '"' | '\''));
        if is_variable(core) {
            let start = word.find(core).unwrap_or(0);
            out.push_str(&word[..start]);
            out.push_str(if core.starts_with(['"', '\'']) { "\"<*>\"" } else { "<*>" });
            out.push_str(&word[start + core.len()..]);
        } else {
            out.push_str(word);
        }
        if !tail.is_empty() {
            out.push(' ');
        }
    }
    let len = out.trim_end().len();
    out.truncate(len);
}

fn is_variable(word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    let digits = word.chars().filter(char::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    // Numbers, durations (12ms), ids with digits (req-8f3a2c), IPs, UUIDs, hex hashes.
    let has_sep = word.contains(['-', '_', '.', ':', '/', '=']);
    let hexish = word.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, '-' | '_' | '.' | ':'));
    digits * 3 >= word.chars().count() || hexish || (has_sep && digits > 0) || word.len() >= 12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_lowercased_word_runs() {
        let got: Vec<String> = tokens("GET /api/v1/Users?id=42 -> 200 (OK) naïve_x").collect();
        assert_eq!(got, ["get", "api", "v1", "users", "id", "42", "200", "ok", "naïve_x"]);
    }

    #[test]
    fn terms_match_whole_words_case_insensitively() {
        assert!(contains_term("Connection Refused by peer", "connection refused"));
        assert!(!contains_term("reconnection refused", "connection refused"));
        assert!(!contains_term("timeouts", "timeout"));
        assert!(contains_term("a timeout.", "timeout"));
        assert!(contains_term("ip 10.0.0.1 down", "10.0.0.1"));
        assert!(!contains_term("ip 110.0.0.1 down", "10.0.0.1"));
        assert_eq!(find_term("x ÉCOLE école", "école"), vec![(2, 8), (9, 15)]);
    }

    #[test]
    fn templates_fold_variable_parts() {
        assert_eq!(template("user 42 logged in from 10.0.0.7"), "user <*> logged in from <*>");
        assert_eq!(template("user 7 logged in from 10.9.0.1"), "user <*> logged in from <*>");
        assert_eq!(template("request req-8f3a2c took 12ms"), "request <*> took <*>");
        assert_eq!(template("plain text stays"), "plain text stays");
    }
}
