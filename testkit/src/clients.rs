//! Clients and the server they talk to: a router served on a free loopback
//! port, handshakes made with `tokio-tungstenite`, and what came of them.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A client's socket, plain or TLS.
pub type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Serves `router` on a free loopback port, with peer addresses.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// One handshake to make.
#[derive(Clone, Debug, Default)]
pub struct Handshake {
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Handshake {
    pub fn to(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// The same handshake to another path (with its query).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    pub fn origin(self, origin: &str) -> Self {
        self.header("origin", origin)
    }
}

/// What came of a handshake.
#[derive(Debug)]
pub enum Outcome {
    Accepted {
        welcome: Value,
        protocol: Option<String>,
    },
    Refused {
        status: u16,
        challenges: Vec<String>,
        retry_after: Option<String>,
        body: String,
    },
}

impl Outcome {
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Accepted { .. } => 101,
            Outcome::Refused { status, .. } => *status,
        }
    }

    /// The status, `Retry-After` and body of a refusal; panics, naming
    /// `what`, when the handshake was accepted.
    pub fn refusal(self, what: &str) -> (u16, Option<String>, String) {
        match self {
            Outcome::Refused {
                status,
                retry_after,
                body,
                ..
            } => (status, retry_after, body),
            accepted => panic!("{what} was accepted: {accepted:?}"),
        }
    }
}

pub async fn connect(addr: SocketAddr, handshake: &Handshake) -> Outcome {
    let request = handshake_request(&format!("ws://{addr}"), handshake);
    outcome(tokio_tungstenite::connect_async(request).await)
        .await
        .unwrap_or_else(|error| panic!("handshake failed below HTTP: {error}"))
}

/// `handshake` to `base` (a `ws://` or `wss://` origin), as a client request.
pub fn handshake_request(
    base: &str,
    handshake: &Handshake,
) -> tungstenite::handshake::client::Request {
    let mut request = format!("{base}{}", handshake.path)
        .into_client_request()
        .unwrap();
    for (name, value) in &handshake.headers {
        let value = http::HeaderValue::from_str(value).unwrap();
        // The client sets `Host` from the URL; a test's own replaces it.
        if *name == "host" {
            request.headers_mut().insert(*name, value);
        } else {
            request.headers_mut().append(*name, value);
        }
    }
    request
}

/// What came of a client's handshake: `Err` when it failed below HTTP (a
/// TLS handshake the server ended, a reset).
pub async fn outcome<S>(
    connected: Result<
        (
            tokio_tungstenite::WebSocketStream<S>,
            tungstenite::handshake::client::Response,
        ),
        tungstenite::Error,
    >,
) -> Result<Outcome, tungstenite::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match connected {
        Ok((mut stream, response)) => {
            let protocol = response
                .headers()
                .get(http::header::SEC_WEBSOCKET_PROTOCOL)
                .map(|value| value.to_str().unwrap().to_owned());
            let first = stream.next().await.unwrap().unwrap();
            let welcome = serde_json::from_str(first.to_text().unwrap()).unwrap();
            Ok(Outcome::Accepted { welcome, protocol })
        }
        Err(tungstenite::Error::Http(response)) => Ok(refusal(&response)),
        Err(error) => Err(error),
    }
}

/// What a refused upgrade answered.
pub fn refusal(response: &http::Response<Option<Vec<u8>>>) -> Outcome {
    Outcome::Refused {
        status: response.status().as_u16(),
        challenges: response
            .headers()
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect(),
        retry_after: response
            .headers()
            .get(http::header::RETRY_AFTER)
            .map(|value| value.to_str().unwrap().to_owned()),
        body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
    }
}

/// The close frame's code and reason, read within `within`: `(0, "")`
/// for a socket that ended without one, `(0, "still open")` when nothing
/// came in time.
pub async fn close_within(client: &mut Client, within: Duration) -> (u16, String) {
    let read = async {
        while let Some(message) = client.next().await {
            match message {
                Ok(tungstenite::Message::Close(Some(frame))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Ok(tungstenite::Message::Close(None)) | Err(_) => return (0, String::new()),
                Ok(_) => {}
            }
        }
        (0, String::new())
    };
    tokio::time::timeout(within, read)
        .await
        .unwrap_or((0, "still open".to_owned()))
}

/// Polls `poll` every 50 ms until it gives `Some`, and gives that back:
/// for what comes true in its own time (a cooldown passes, a process
/// hears from Redis), without sleeping longer than it takes.
///
/// # Panics
///
/// When `within` passes first, naming `what` was awaited.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut poll: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = poll().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
