//! Starting a real hubmon server for tests, on port 0 with a temp data dir, and talking to it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use hubmon::app::Server;
use hubmon::config::{Config, ListenAddr, Overrides, StateUrl};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};

pub mod process;

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// Which state store a test server uses.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub server: Option<Server>,
    pub base: String,
    pub client: Client,
    _dir: tempfile::TempDir,
    _database: Option<hubmon_testkit::PgDatabase>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = hubmon::config::load(None, &BTreeMap::new(), &Overrides::default()).unwrap();
        config.listen = ListenAddr("127.0.0.1:0".into());
        config.data_dir = dir.path().to_path_buf();
        // Host metrics would mix into what tests count; the tests that want them turn them on.
        config.host.enabled = false;
        // Nor the built-in health checks' series; the tests that want them turn them on.
        config.check.system = false;
        config.check.state_store = false;
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let database = hubmon_testkit::PgDatabase::create().await;
                config.state.url = StateUrl(database.url.clone());
                Some(database)
            }
        };
        adjust(&mut config);
        let server = hubmon::app::start(config, Some(ADMIN_PASSWORD.to_string())).await.unwrap();
        let base = format!("http://{}", server.addr);
        let client = Client::builder().cookie_store(true).build().unwrap();
        Self { server: Some(server), base, client, _dir: dir, _database: database }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request with a bearer token and no cookies.
    pub fn with_token(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        Client::new().request(method, self.url(path)).bearer_auth(token)
    }

    /// Logs in as admin on a cookie-less client and returns an admin API token.
    pub async fn admin_token(&self) -> String {
        self.token_for_role("admin").await
    }

    /// Creates a token of `role` using an admin session.
    pub async fn token_for_role(&self, role: &str) -> String {
        let admin = Client::builder().cookie_store(true).build().unwrap();
        let login: Value = admin
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let csrf = login["csrf_token"].as_str().unwrap().to_string();
        let created: Value = admin
            .post(self.url("/api/v1/tokens"))
            .header("x-csrf-token", csrf)
            .json(&json!({"name": format!("{role} token"), "role": role}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created["token"].as_str().unwrap_or_else(|| panic!("no token in {created}")).to_string()
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
            server.wait().await.unwrap();
        }
    }
}

pub async fn body(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Defines one test per backend for each listed async fn taking a `Backend`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name($crate::common::Backend::Sqlite).await; } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name($crate::common::Backend::Postgres).await; } )*
        }
    };
}
