//! Serving an axum [`Router`] with hyper directly (feature `serve`): what
//! `axum::serve` leaves out for a gated WebSocket service.
//!
//! - A deadline for request headers (and for the TLS handshake): a client
//!   that sends its headers a byte at a time (slowloris) is cut off,
//!   where `axum::serve` waits for ever.
//! - Each request carries what the handshake layer reads: the peer
//!   ([`ConnectInfo<SocketAddr>`]), [`SecureTransport`] on TLS
//!   connections, and the verified [`ClientCertificate`] of a mutual-TLS
//!   connection (feature `tls`, [`ServerTls`]).
//!
//! # Example
//!
//! ```no_run
//! # async fn run(router: axum::Router) -> std::io::Result<()> {
//! use wsgate::serve::Serving;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! Serving::new()
//!     .serve(listener, router, async { tokio::signal::ctrl_c().await.ok(); })
//!     .await
//! # }
//! ```
//!
//! [`ClientCertificate`]: crate::certificate::ClientCertificate

#[cfg(feature = "tls")]
mod tls;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

#[cfg(feature = "tls")]
use crate::certificate::ClientCertificate;
use crate::handshake::SecureTransport;

#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use self::tls::{ServerTls, ServerTlsBuilder};

/// How long a client may take to send its request headers (and to finish
/// a TLS handshake) by default: 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves a [`Router`]: see the [module docs](self).
#[derive(Clone)]
#[must_use]
pub struct Serving {
    header_read_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<ServerTls>,
}

impl Serving {
    /// Plain HTTP, headers within [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub fn new() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// How long a client may take to send its request headers, and to
    /// finish its TLS handshake.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Serves TLS 1.3 (and, with
    /// [`ServerTlsBuilder::client_certificates`], asks for client
    /// certificates).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Accepts connections on `listener` and serves `router` on each,
    /// until `shutdown` completes; then stops accepting (connections being
    /// served go on to their end).
    ///
    /// # Errors
    ///
    /// None yet: a failed `accept` (out of file descriptors, say) is
    /// logged and retried after 100 ms rather than ending the server. The
    /// `Result` leaves room for failures that must end it.
    pub async fn serve<F>(
        self,
        listener: TcpListener,
        router: Router,
        shutdown: F,
    ) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(target: "wsgate::serve", %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let router = router.clone();
            let timeout = self.header_read_timeout;
            #[cfg(feature = "tls")]
            if let Some(tls) = self.tls.clone() {
                tokio::spawn(async move {
                    if let Some((stream, connection)) = tls.accept(stream, peer, timeout).await {
                        serve_connection(stream, router, connection, timeout).await;
                    }
                });
                continue;
            }
            let connection = Connection {
                peer,
                secure: false,
                #[cfg(feature = "tls")]
                certificate: None,
            };
            tokio::spawn(serve_connection(stream, router, connection, timeout));
        }
    }
}

impl Default for Serving {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Serving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Serving");
        debug.field("header_read_timeout", &self.header_read_timeout);
        #[cfg(feature = "tls")]
        debug.field("tls", &self.tls);
        debug.finish()
    }
}

/// What every request of one connection carries.
#[derive(Clone)]
struct Connection {
    peer: SocketAddr,
    secure: bool,
    #[cfg(feature = "tls")]
    certificate: Option<ClientCertificate>,
}

/// Serves one connection: HTTP/1.1 with upgrades (and HTTP/2), the
/// connection's facts put into each request.
async fn serve_connection<I>(io: I, router: Router, connection: Connection, timeout: Duration)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = connection.peer;
    let service = router.map_request(move |mut request: Request<hyper::body::Incoming>| {
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(connection.peer));
        if connection.secure {
            extensions.insert(SecureTransport);
        }
        #[cfg(feature = "tls")]
        if let Some(certificate) = &connection.certificate {
            extensions.insert(certificate.clone());
        }
        request
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout);
    let served =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    if let Err(error) = served.await {
        tracing::debug!(target: "wsgate::serve", %peer, %error, "connection ended with an error");
    }
}
