//! A real OpenID provider for the tests: npm's `oidc-provider` in
//! `tests/idp/`, started on a free loopback port, killed and restarted at
//! will.
//!
//! Needs Node.js and `npm ci` in `tests/idp`. Without them a test prints
//! what to install and skips, unless `WSGATE_TEST_REQUIRE_SERVERS=1` (CI),
//! which turns the absence into a failure.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Resource indicators: the provider's choice of token format.
pub const ES256: &str = "urn:wsgate:es256";
pub const RS256: &str = "urn:wsgate:rs256";
pub const OPAQUE: &str = "urn:wsgate:opaque";
pub const AUDIENCE: &str = "wsgate-chat";

/// The provider's clients: (client id, secret, scopes).
pub const CHAT_USER: (&str, &str, &str) = ("chat-user", "chat-user-secret-0123456789", "chat");
pub const CHAT_ADMIN: (&str, &str, &str) = (
    "chat-admin",
    "chat-admin-secret-0123456789",
    "chat chat:admin",
);
pub const NO_SCOPE: (&str, &str, &str) = ("no-scope", "no-scope-secret-0123456789", "");
/// wsgate's own credentials, for introspection.
pub const INTROSPECTOR: (&str, &str) = ("wsgate", "wsgate-introspection-secret-0123456789");

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

/// Whether the provider can run here; prints what is missing, and panics
/// instead when the servers are required.
pub fn available() -> bool {
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    let installed = folder().join("node_modules/oidc-provider").is_dir();
    if node && installed {
        return true;
    }
    let missing = "the OpenID provider tests need Node.js 20 and `npm ci` in tests/idp";
    if std::env::var("WSGATE_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") {
        panic!("{missing} (WSGATE_TEST_REQUIRE_SERVERS=1)");
    }
    eprintln!("skipping: {missing}");
    false
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One running provider.
pub struct Idp {
    pub port: u16,
    pub issuer: String,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Idp {
    /// Starts a provider on a free port; `None` when it cannot run here.
    pub async fn start() -> Option<Self> {
        if !available() {
            return None;
        }
        Some(Self::start_on(free_port()).await)
    }

    /// Starts a provider on `port` (its issuer is `http://127.0.0.1:port`).
    pub async fn start_on(port: u16) -> Self {
        let mut idp = Self {
            port,
            issuer: format!("http://127.0.0.1:{port}"),
            child: None,
            http: reqwest::Client::new(),
        };
        idp.spawn().await;
        idp
    }

    async fn spawn(&mut self) {
        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg("--port")
            .arg(self.port.to_string())
            .current_dir(folder())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.starts_with("listening") {
                    return;
                }
            }
            panic!("the provider ended before it listened");
        });
        ready.await.expect("the provider listens within 20 s");
        // Keep reading its output, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// Stops the provider (its port stays free for a restart).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Starts it again on the same port, with new keys.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// An access token by the client credentials grant, for `resource`
    /// (which picks JWT ES256, JWT RS256 or opaque).
    pub async fn token(&self, client: (&str, &str, &str), resource: &str) -> String {
        let mut form = vec![("grant_type", "client_credentials"), ("resource", resource)];
        if !client.2.is_empty() {
            form.push(("scope", client.2));
        }
        let answer: Value = self
            .http
            .post(self.url("/token"))
            .basic_auth(client.0, Some(client.1))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {answer}"))
            .to_owned();
        super::remember_secret(token)
    }

    /// Revokes `token` at the provider (RFC 7009), as its client.
    pub async fn revoke(&self, client: (&str, &str, &str), token: &str) {
        let status = self
            .http
            .post(self.url("/token/revocation"))
            .basic_auth(client.0, Some(client.1))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }

    /// A control request (`/control/...`): changes what the provider
    /// serves.
    pub async fn control(&self, path_and_query: &str) -> Value {
        self.http
            .post(self.url(path_and_query))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Publishes `jwk` (public) in the provider's key set.
    pub async fn publish(&self, jwk: &Value) {
        let status = self
            .http
            .post(self.url("/control/publish"))
            .body(jwk.to_string())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }

    /// How many requests of each kind wsgate made: `discovery`, `jwks`,
    /// `introspection`.
    pub async fn stats(&self) -> Value {
        self.control("/control/stats").await
    }

    /// The `kid`s the provider signs with now: `[ec, rsa]`.
    pub async fn kids(&self) -> Vec<String> {
        let answer = self.control("/control/kids").await;
        answer["kids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kid| kid.as_str().unwrap().to_owned())
            .collect()
    }
}
