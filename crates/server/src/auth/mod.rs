//! Who is calling, and what they may do: users with argon2id passwords, API tokens, browser
//! sessions, login rate limiting, and the first-start admin.
//!
//! This module owns the rules around identities (password length, "the last enabled admin
//! cannot be removed or demoted", token expiry); the state store only keeps the records.
//! Secrets never leave in the clear: passwords are argon2id hashes, tokens and session ids
//! are stored as SHA-256 hashes (they are long random strings, so a slow hash adds nothing),
//! and a new token's secret is returned exactly once.

mod password;
mod ratelimit;
mod secret;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hubmon_model::{PromDuration, Role, Timestamp};
use hubmon_state::{NewToken, NewUser, Session, StateStore, Token, User, UserUpdate};

pub use ratelimit::LoginLimiter;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// A person, through a browser session (with its CSRF token) or the login API.
    User { id: i64, username: String, role: Role, csrf_token: Option<String>, session_hash: Option<String> },
    /// A machine, through an API token.
    Token { id: i64, name: String, role: Role },
}

impl Principal {
    pub fn role(&self) -> Role {
        match self {
            Principal::User { role, .. } | Principal::Token { role, .. } => *role,
        }
    }

    /// How the caller appears in the audit log.
    pub fn actor(&self) -> String {
        match self {
            Principal::User { username, .. } => username.clone(),
            Principal::Token { name, id, .. } => format!("token:{name}#{id}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("authentication required: log in, or send an API token as `Authorization: Bearer <token>`")]
    Unauthenticated,
    #[error("invalid API token")]
    InvalidToken,
    #[error("this API token expired at {0}")]
    TokenExpired(Timestamp),
    #[error("this API token was revoked")]
    TokenRevoked,
    #[error("your session has expired; log in again")]
    SessionExpired,
    #[error("wrong username or password")]
    BadCredentials,
    #[error("too many login attempts; try again in {} s", .retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("{0}")]
    InvalidInput(String),
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error("no user with id {0}")]
    NoSuchUser(i64),
    #[error("no token with id {0}")]
    NoSuchToken(i64),
    #[error("this would leave no enabled admin; make another user admin first")]
    LastAdmin,
    #[error(transparent)]
    Store(#[from] hubmon_state::Error),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A successful login: the cookie secret to hand to the browser, and what goes with it.
#[derive(Debug, Clone)]
pub struct Login {
    pub session_secret: String,
    pub csrf_token: String,
    pub user: User,
    pub expires_at: Timestamp,
}

/// A token just created: `secret` is the full token, shown this once.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub secret: String,
    pub token: Token,
}

/// A change to a user through the API.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub password: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

const MIN_PASSWORD_LEN: usize = 8;
const MAX_PASSWORD_LEN: usize = 1024;

pub struct Auth {
    store: Arc<dyn StateStore>,
    session_ttl: Duration,
    limiter: LoginLimiter,
    /// Tokens recently read from the store, by prefix. Machines call with the same token many
    /// times a second, and a store round trip costs more than a small query; revoking through
    /// this process clears it, and anything else (another replica) shows within
    /// [`TOKEN_CACHE_TTL`].
    tokens: parking_lot::Mutex<HashMap<String, (Token, Instant)>>,
}

const TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);
const TOKEN_CACHE_ENTRIES: usize = 10_000;

impl Auth {
    pub fn new(store: Arc<dyn StateStore>, session_ttl: PromDuration, attempts_per_minute: u32) -> Self {
        Self {
            store,
            session_ttl: session_ttl.as_duration(),
            limiter: LoginLimiter::new(attempts_per_minute),
            tokens: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// On an empty user table, creates `admin` with `password`, or a random password that is
    /// returned so the caller can show it once. Returns `None` when users already exist.
    pub async fn bootstrap_admin(&self, password: Option<String>) -> Result<Option<String>> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let password = match password {
            Some(given) => {
                check_password(&given)?;
                given
            }
            None => secret::readable_password(),
        };
        let hash = password::hash(password.clone()).await?;
        let user = NewUser { username: "admin".into(), password_hash: hash, role: Role::Admin, at: Timestamp::now() };
        match self.store.create_user(user).await {
            Ok(_) => Ok(Some(password)),
            // Another replica created it first.
            Err(hubmon_state::Error::Conflict { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks a username and password and opens a session.
    pub async fn login(&self, username: &str, password: &str, client_addr: &str) -> Result<Login> {
        self.limiter.check(client_addr, username)?;
        let user = self.store.user_by_name(username).await?;
        // Verify against a fixed hash when the user is unknown, so timing does not reveal it.
        let hash = user.as_ref().map_or_else(|| password::DECOY_HASH.to_string(), |u| u.password_hash.clone());
        let matches = password::verify(password.to_string(), hash).await?;
        let mut user = match user {
            Some(user) if matches && !user.disabled => user,
            _ => return Err(Error::BadCredentials),
        };
        let now = Timestamp::now();
        let session_secret = secret::random_token(32);
        let csrf_token = secret::random_token(32);
        let expires_at = now.plus(self.session_ttl);
        self.store
            .create_session(Session {
                id_hash: secret::sha256_hex(&session_secret),
                user_id: user.id,
                csrf_token: csrf_token.clone(),
                client_addr: client_addr.to_string(),
                created_at: now,
                expires_at,
            })
            .await?;
        self.store.record_login(user.id, now).await?;
        user.last_login_at = Some(now);
        Ok(Login { session_secret, csrf_token, user, expires_at })
    }

    pub async fn logout(&self, session_hash: &str) -> Result<()> {
        Ok(self.store.delete_session(session_hash).await?)
    }

    /// Resolves a session cookie to its user.
    pub async fn authenticate_session(&self, cookie: &str) -> Result<Principal> {
        let id_hash = secret::sha256_hex(cookie);
        let session = self.store.session(&id_hash).await?.ok_or(Error::SessionExpired)?;
        if session.expires_at < Timestamp::now() {
            self.store.delete_session(&id_hash).await?;
            return Err(Error::SessionExpired);
        }
        let user = self.store.user(session.user_id).await?.ok_or(Error::SessionExpired)?;
        if user.disabled {
            return Err(Error::SessionExpired);
        }
        Ok(Principal::User {
            id: user.id,
            username: user.username,
            role: user.role,
            csrf_token: Some(session.csrf_token),
            session_hash: Some(id_hash),
        })
    }

    /// Resolves a bearer token.
    pub async fn authenticate_token(&self, presented: &str) -> Result<Principal> {
        let prefix = secret::token_prefix(presented).ok_or(Error::InvalidToken)?;
        let token = self.token_by_prefix(prefix).await?;
        if !secret::constant_time_eq(secret::sha256_hex(presented).as_bytes(), token.secret_hash.as_bytes()) {
            return Err(Error::InvalidToken);
        }
        if token.revoked_at.is_some() {
            return Err(Error::TokenRevoked);
        }
        let now = Timestamp::now();
        if let Some(expires_at) = token.expires_at.filter(|at| *at <= now) {
            return Err(Error::TokenExpired(expires_at));
        }
        // last_used_at is for people auditing tokens; minute precision spares a write per call.
        // A failed bookkeeping write (disk full, read-only replica) must not refuse the caller.
        if token.last_used_at.is_none_or(|at| now.0 - at.0 > 60_000) {
            match self.store.touch_token(token.id, now).await {
                Ok(()) => {
                    if let Some((cached, _)) = self.tokens.lock().get_mut(prefix) {
                        cached.last_used_at = Some(now);
                    }
                }
                Err(error) => tracing::warn!(%error, token = token.id, "could not record the token's last use"),
            }
        }
        Ok(Principal::Token { id: token.id, name: token.name, role: token.role })
    }

    async fn token_by_prefix(&self, prefix: &str) -> Result<Token> {
        if let Some((token, read_at)) = self.tokens.lock().get(prefix)
            && read_at.elapsed() < TOKEN_CACHE_TTL
        {
            return Ok(token.clone());
        }
        let token = self.store.token_by_prefix(prefix).await?.ok_or(Error::InvalidToken)?;
        let mut tokens = self.tokens.lock();
        if tokens.len() >= TOKEN_CACHE_ENTRIES {
            tokens.retain(|_, (_, read_at)| read_at.elapsed() < TOKEN_CACHE_TTL);
            if tokens.len() >= TOKEN_CACHE_ENTRIES {
                tokens.clear();
            }
        }
        tokens.insert(prefix.to_string(), (token.clone(), Instant::now()));
        Ok(token)
    }

    pub async fn create_token(
        &self,
        name: &str,
        role: Role,
        expires_in: Option<PromDuration>,
        created_by: &str,
    ) -> Result<IssuedToken> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(Error::InvalidInput("token name must be 1 to 200 characters".into()));
        }
        if expires_in.is_some_and(|d| d.as_duration().is_zero()) {
            return Err(Error::InvalidInput(
                "expires_in must be longer than 0s; leave it out for a token that does not expire".into(),
            ));
        }
        let (secret, prefix) = secret::new_api_token();
        let now = Timestamp::now();
        let token = self
            .store
            .create_token(NewToken {
                name: name.to_string(),
                prefix: prefix.to_string(),
                secret_hash: secret::sha256_hex(&secret),
                role,
                created_by: created_by.to_string(),
                created_at: now,
                expires_at: expires_in.map(|d| now.plus(d.as_duration())),
            })
            .await?;
        Ok(IssuedToken { secret, token })
    }

    pub async fn list_tokens(&self) -> Result<Vec<Token>> {
        Ok(self.store.list_tokens().await?)
    }

    pub async fn revoke_token(&self, id: i64) -> Result<()> {
        let revoked = self.store.revoke_token(id, Timestamp::now()).await?;
        self.tokens.lock().retain(|_, (token, _)| token.id != id);
        if revoked {
            return Ok(());
        }
        match self.store.list_tokens().await?.iter().any(|t| t.id == id) {
            true => Ok(()), // already revoked: revoking is idempotent
            false => Err(Error::NoSuchToken(id)),
        }
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        Ok(self.store.list_users().await?)
    }

    pub async fn user(&self, id: i64) -> Result<User> {
        self.store.user(id).await?.ok_or(Error::NoSuchUser(id))
    }

    pub async fn create_user(&self, username: &str, password: &str, role: Role) -> Result<User> {
        check_username(username)?;
        check_password(password)?;
        let hash = password::hash(password.to_string()).await?;
        let user = NewUser { username: username.to_string(), password_hash: hash, role, at: Timestamp::now() };
        self.store.create_user(user).await.map_err(|e| match e {
            hubmon_state::Error::Conflict { .. } => Error::UserExists(username.to_string()),
            other => other.into(),
        })
    }

    pub async fn update_user(&self, id: i64, change: UserChange) -> Result<User> {
        let current = self.user(id).await?;
        let loses_admin = current.role == Role::Admin
            && !current.disabled
            && (change.role.is_some_and(|r| r != Role::Admin) || change.disabled == Some(true));
        if loses_admin {
            self.ensure_another_admin(id).await?;
        }
        let password_hash = match change.password {
            Some(password) => {
                check_password(&password)?;
                Some(password::hash(password).await?)
            }
            None => None,
        };
        let logs_out = password_hash.is_some() || change.disabled == Some(true) || change.role.is_some();
        let update =
            UserUpdate { password_hash, role: change.role, disabled: change.disabled, at: Some(Timestamp::now()) };
        let user = self.store.update_user(id, update).await?.ok_or(Error::NoSuchUser(id))?;
        if logs_out {
            // A new password, a new role or a disabled account ends the sessions opened before.
            self.store.delete_user_sessions(id).await?;
        }
        Ok(user)
    }

    /// Changes the caller's own password after checking the current one.
    pub async fn change_own_password(&self, user_id: i64, current: &str, new: &str) -> Result<()> {
        let user = self.user(user_id).await?;
        if !password::verify(current.to_string(), user.password_hash).await? {
            return Err(Error::BadCredentials);
        }
        self.update_user(user_id, UserChange { password: Some(new.to_string()), ..Default::default() }).await?;
        Ok(())
    }

    pub async fn delete_user(&self, id: i64) -> Result<()> {
        let user = self.user(id).await?;
        if user.role == Role::Admin && !user.disabled {
            self.ensure_another_admin(id).await?;
        }
        self.store.delete_user(id).await?;
        Ok(())
    }

    async fn ensure_another_admin(&self, except: i64) -> Result<()> {
        let others = self.store.list_users().await?;
        match others.iter().any(|u| u.id != except && u.role == Role::Admin && !u.disabled) {
            true => Ok(()),
            false => Err(Error::LastAdmin),
        }
    }

    pub async fn purge_expired_sessions(&self) -> Result<u64> {
        Ok(self.store.delete_expired_sessions(Timestamp::now()).await?)
    }
}

fn check_username(username: &str) -> Result<()> {
    let valid =
        (1..=64).contains(&username.len()) && username.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    match valid {
        true => Ok(()),
        false => Err(Error::InvalidInput(
            "username must be 1 to 64 characters of letters, digits, '.', '_', '-' or '@'".into(),
        )),
    }
}

fn check_password(password: &str) -> Result<()> {
    match password.chars().count() {
        n if n < MIN_PASSWORD_LEN => {
            Err(Error::InvalidInput(format!("password must be at least {MIN_PASSWORD_LEN} characters")))
        }
        n if n > MAX_PASSWORD_LEN => {
            Err(Error::InvalidInput(format!("password must be at most {MAX_PASSWORD_LEN} characters")))
        }
        _ => Ok(()),
    }
}

/// Hashes of presented secrets, for callers that must find a session again (logout).
pub fn session_hash(cookie: &str) -> String {
    secret::sha256_hex(cookie)
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    secret::constant_time_eq(a.as_bytes(), b.as_bytes())
}
