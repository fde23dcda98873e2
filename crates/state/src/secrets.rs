//! Secrets at rest: DSNs with passwords, webhook URLs that carry tokens, signing secrets and
//! SMTP passwords are stored sealed with XChaCha20-Poly1305 (DESIGN §7).
//!
//! The key is 32 bytes, from `HUBMON_SECRET_KEY` (base64 or hex) when set, otherwise from the
//! file `secret.key` in the data dir, created with mode 0600 on first start. Losing the key
//! loses the sealed values, so replicas sharing one PostgreSQL must share the variable.
//!
//! A sealed value reads `v1:<base64 of nonce ‖ ciphertext>`; the random 24-byte nonce makes
//! two seals of the same text differ, and the version prefix leaves room to rotate the cipher.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use thiserror::Error;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;
pub const KEY_FILE: &str = "secret.key";

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("HUBMON_SECRET_KEY must be 32 bytes written as base64 (44 characters) or hex (64 characters)")]
    BadKey,
    #[error("cannot read or create the secret key file {path}: {source}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret key file {path} does not hold 32 bytes in base64")]
    BadKeyFile { path: String },
    #[error("a sealed secret cannot be opened: {0} (was HUBMON_SECRET_KEY or secret.key changed?)")]
    Open(&'static str),
}

/// Seals and opens secrets with the instance's key. Cheap to clone.
#[derive(Clone)]
pub struct Secrets {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// The key from `env_key` (the value of `HUBMON_SECRET_KEY`) if given, otherwise from
    /// `data_dir/secret.key`, generating that file on first use.
    pub fn load(env_key: Option<&str>, data_dir: &Path) -> Result<Self, SecretError> {
        let key = match env_key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(text) => decode_key(text).ok_or(SecretError::BadKey)?,
            None => key_from_file(&data_dir.join(KEY_FILE))?,
        };
        Ok(Self::from_key(key))
    }

    pub fn from_key(key: [u8; 32]) -> Self {
        Self { cipher: XChaCha20Poly1305::new(&key.into()) }
    }

    /// A fresh random key, for tests.
    pub fn generate() -> Self {
        Self { cipher: XChaCha20Poly1305::new(&XChaCha20Poly1305::generate_key(&mut OsRng)) }
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a valid key and nonce cannot fail for in-memory buffers of any size
        // we store; an empty ciphertext would be caught by `open` as a forgery.
        let ciphertext = self.cipher.encrypt(&nonce, plaintext.as_bytes()).unwrap_or_default();
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", BASE64.encode(sealed))
    }

    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(SecretError::Open("unknown format"))?;
        let bytes = BASE64.decode(body).map_err(|_| SecretError::Open("not base64"))?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Open("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| SecretError::Open("authentication failed"))?;
        String::from_utf8(plaintext).map_err(|_| SecretError::Open("not UTF-8"))
    }

    /// Whether `value` looks sealed (so a caller never seals twice).
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }
}

/// What the API shows instead of a secret: its first characters are enough to tell two apart
/// without revealing either.
pub fn mask(secret: &str) -> String {
    if secret.is_empty() {
        return String::new();
    }
    let shown: String = secret.chars().take(4).collect();
    if secret.chars().count() <= 8 { "••••••".to_string() } else { format!("{shown}••••••") }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()?
    } else {
        BASE64.decode(text).ok()?
    };
    bytes.try_into().ok()
}

fn key_from_file(path: &Path) -> Result<[u8; 32], SecretError> {
    let io_error = |source| SecretError::KeyFile { path: path.display().to_string(), source };
    match std::fs::read_to_string(path) {
        Ok(text) => decode_key(text.trim()).ok_or_else(|| SecretError::BadKeyFile { path: path.display().to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = XChaCha20Poly1305::generate_key(&mut OsRng).into();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(io_error)?;
            writeln!(file, "{}", BASE64.encode(key)).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            Ok(key)
        }
        Err(e) => Err(io_error(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_differs_each_time() {
        let secrets = Secrets::generate();
        let a = secrets.seal("postgres://u:pw@db/x");
        let b = secrets.seal("postgres://u:pw@db/x");
        assert_ne!(a, b);
        assert!(Secrets::is_sealed(&a));
        assert_eq!(secrets.open(&a).unwrap(), "postgres://u:pw@db/x");
    }

    #[test]
    fn another_key_or_a_tampered_value_is_refused() {
        let sealed = Secrets::generate().seal("token");
        assert!(matches!(Secrets::generate().open(&sealed), Err(SecretError::Open("authentication failed"))));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(Secrets::generate().open(&tampered).is_err());
        assert!(Secrets::generate().open("plain").is_err());
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Secrets::load(None, dir.path()).unwrap();
        let sealed = first.seal("x");
        let again = Secrets::load(None, dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn env_key_wins_and_must_be_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let hex_key = "11".repeat(32);
        let a = Secrets::load(Some(&hex_key), dir.path()).unwrap();
        let b = Secrets::load(Some(&BASE64.encode([0x11u8; 32])), dir.path()).unwrap();
        assert_eq!(b.open(&a.seal("same key")).unwrap(), "same key");
        assert!(!dir.path().join(KEY_FILE).exists());
        assert!(matches!(Secrets::load(Some("short"), dir.path()), Err(SecretError::BadKey)));
    }

    #[test]
    fn mask_shows_little() {
        assert_eq!(mask(""), "");
        assert_eq!(mask("abc"), "••••••");
        assert_eq!(mask("https://hooks.example/T000/secret"), "http••••••");
    }
}
