//! A real OpenID provider for the tests: npm's `oidc-provider` in
//! `tests/idp/`, started on a free loopback port, killed and restarted at
//! will.
//!
//! Needs Node.js and `npm ci` in `tests/idp`. Without them a test prints
//! what to install and skips, unless `WSGATE_TEST_REQUIRE_SERVERS=1` (CI),
//! which turns the absence into a failure.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
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
/// A client whose tokens the provider binds to its certificate.
pub const CHAT_DEVICE: (&str, &str, &str) =
    ("chat-device", "chat-device-secret-0123456789", "chat");
pub const NO_SCOPE: (&str, &str, &str) = ("no-scope", "no-scope-secret-0123456789", "");
/// wsgate's own credentials, for introspection.
pub const INTROSPECTOR: (&str, &str) = ("wsgate", "wsgate-introspection-secret-0123456789");

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/idp")
}

/// Whether the provider can run here; prints what is missing, and panics
/// instead when the servers are required.
pub fn available() -> bool {
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if node && installed() {
        return true;
    }
    crate::servers::missing(
        "the OpenID provider tests need Node.js 20 and npm (they run `npm ci` in tests/idp themselves)",
    )
}

/// Whether `oidc-provider` is installed in tests/idp, after installing it
/// from the lock file (`npm ci`) when npm is there and it is not yet: once
/// per test binary, whichever test asks first.
fn installed() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let present = || folder().join("node_modules/oidc-provider").is_dir();
    *INSTALLED.get_or_init(|| {
        if present() {
            return true;
        }
        let installing = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(folder())
            .status();
        match installing {
            Ok(status) if status.success() => present(),
            _ => false,
        }
    })
}

/// One running provider.
pub struct Idp {
    pub port: u16,
    pub issuer: String,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Idp {
    /// Starts a provider on a port the system picks; `None` when it cannot
    /// run here.
    pub async fn start() -> Option<Self> {
        if !available() {
            return None;
        }
        Some(Self::launch().await)
    }

    /// Starts a provider on a port the system picks (where [`available`]
    /// was already asked); its issuer is `http://127.0.0.1:PORT`.
    pub async fn launch() -> Self {
        let mut idp = Self {
            port: 0,
            issuer: String::new(),
            child: None,
            http: reqwest::Client::new(),
        };
        idp.spawn().await;
        idp
    }

    /// Starts the provider on `self.port` (0: the system's choice, so two
    /// providers started at once never meet on one port) and learns its
    /// port and issuer.
    async fn spawn(&mut self) {
        // A provider's start is CPU-bound (module load, two keys), and a
        // test binary starts a dozen at once on two cores: the deadline is
        // generous, and a failure says what the provider printed.
        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg("--port")
            .arg(self.port.to_string())
            .current_dir(folder())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let started = Instant::now();
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr_text.clone();
        let stderr_read = tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let listening = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(port) = line.strip_prefix("listening ") {
                    return port.trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await;
        if let Ok(Some(port)) = listening {
            // Keep reading its output, so it never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            self.child = Some(child);
            self.port = port;
            self.issuer = format!("http://127.0.0.1:{port}");
            return;
        }
        let _ = child.kill().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), stderr_read).await;
        panic!(
            "the OpenID provider (port {}) {} after {:?}; its stderr:\n{}",
            self.port,
            if listening.is_err() {
                "did not listen"
            } else {
                "ended before it listened"
            },
            started.elapsed(),
            stderr_text.lock().unwrap()
        );
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
        self.grant(client, resource, None).await.0
    }

    /// An access token bound to `key` (RFC 9449 §5): the client
    /// credentials grant with a DPoP proof for `POST <issuer>/token`. The
    /// token and the `token_type` the provider answered.
    pub async fn dpop_token(
        &self,
        client: (&str, &str, &str),
        resource: &str,
        key: &crate::dpop::ClientKey,
    ) -> (String, String) {
        self.grant(client, resource, Some(key)).await
    }

    /// An access token bound to the client certificate `pem` (RFC 8705):
    /// the client credentials grant with the certificate handed to the
    /// provider as a TLS-terminating proxy would (`X-SSL-Client-Cert`, URL-
    /// encoded PEM, which its `getCertificate` reads). The token and the
    /// `token_type` the provider answered.
    pub async fn certificate_token(
        &self,
        client: (&str, &str, &str),
        resource: &str,
        pem: &str,
    ) -> (String, String) {
        self.grant_with(client, resource, None, Some(pem)).await
    }

    /// The client credentials grant, with a proof of `key` where given:
    /// the token and its `token_type`.
    async fn grant(
        &self,
        client: (&str, &str, &str),
        resource: &str,
        key: Option<&crate::dpop::ClientKey>,
    ) -> (String, String) {
        self.grant_with(client, resource, key, None).await
    }

    async fn grant_with(
        &self,
        client: (&str, &str, &str),
        resource: &str,
        key: Option<&crate::dpop::ClientKey>,
        certificate: Option<&str>,
    ) -> (String, String) {
        let endpoint = self.url("/token");
        let mut form = vec![("grant_type", "client_credentials"), ("resource", resource)];
        if !client.2.is_empty() {
            form.push(("scope", client.2));
        }
        let mut request = self
            .http
            .post(&endpoint)
            .basic_auth(client.0, Some(client.1));
        if let Some(key) = key {
            let proof = key.proof_with(&endpoint, None, |claims| claims["htm"] = json!("POST"));
            request = request.header("dpop", proof);
        }
        if let Some(pem) = certificate {
            let encoded =
                percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC);
            request = request.header("x-ssl-client-cert", encoded.to_string());
        }
        let answer: Value = request
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
        let token_type = answer["token_type"].as_str().unwrap_or_default().to_owned();
        (crate::remember_secret(token), token_type)
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
