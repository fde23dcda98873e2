//! Random secrets and their hashes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};

/// API tokens read `hm_<12 hex>_<43 base64url>`; the part before the second `_` is the
/// visible prefix under which the token is stored and listed.
const TOKEN_TAG: &str = "hm_";

pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::thread_rng().fill(buffer.as_mut_slice());
    URL_SAFE_NO_PAD.encode(buffer)
}

/// A new API token and its prefix.
pub fn new_api_token() -> (String, String) {
    let id: [u8; 6] = rand::thread_rng().r#gen();
    let prefix = format!("{TOKEN_TAG}{}", hex::encode(id));
    let token = format!("{prefix}_{}", random_token(32));
    (token, prefix)
}

/// The prefix of a presented token, or `None` if it is not shaped like one of ours.
pub fn token_prefix(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_TAG)?;
    let (id, secret) = rest.split_once('_')?;
    let well_formed = id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) && secret.len() >= 32;
    well_formed.then(|| &token[..TOKEN_TAG.len() + id.len()])
}

/// A password that is easy to copy from a terminal: 24 letters and digits (~142 bits).
pub fn readable_password() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect()
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_their_prefix() {
        let (token, prefix) = new_api_token();
        assert!(token.starts_with(&format!("{prefix}_")));
        assert_eq!(token_prefix(&token), Some(prefix.as_str()));
        assert_ne!(new_api_token().0, token);
    }

    #[test]
    fn malformed_tokens_have_no_prefix() {
        for bad in [
            "",
            "hm_",
            "hm_abc_def",
            "xx_0123456789ab_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "hm_0123456789zz_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(token_prefix(bad), None, "{bad}");
        }
    }

    #[test]
    fn constant_time_comparison_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
