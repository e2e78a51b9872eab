//! The clients: connections from one or many loopback sources.

use super::*;

pub(crate) async fn connect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
) -> Result<Client, String> {
    open(socket_from(None)?, addr, path, headers).await
}

/// The clients' WebSocket settings: a 4 KiB read buffer instead of
/// tungstenite's 128 KiB, which it zeroes before every read. The client is
/// not what is measured; the less it costs, the more surely the server is
/// what limits a round.
pub(crate) fn client_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4 * 1024)
}

/// A socket bound to `source` when one is given.
fn socket_from(source: Option<std::net::IpAddr>) -> Result<tokio::net::TcpSocket, String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|error| error.to_string())?;
    if let Some(source) = source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|error| error.to_string())?;
    }
    Ok(socket)
}

/// How many loopback source addresses the connect-and-drop clients take
/// turns on: 127.0.0.2 and up.
const DROPPING_SOURCES: u32 = 64;

/// Connects for a client that will drop the connection at once (the
/// handshake parts): each from the next of [`DROPPING_SOURCES`] loopback
/// addresses, with `SO_LINGER` 0. At thousands of handshakes a second, a
/// single source address's 28 000 ports would sit in `TIME_WAIT` within
/// seconds, and the client's `connect` (not the server) would set the
/// rate.
pub(crate) async fn connect_to_drop(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
) -> Result<Client, String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let turn = NEXT.fetch_add(1, Ordering::Relaxed) % u64::from(DROPPING_SOURCES);
    let source =
        std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(127, 0, 0, 2)) + turn as u32);
    connect_lingerless(Some(source.into()), addr, path, headers).await
}

/// Connects from `source` (or wherever `connect` picks) with `SO_LINGER`
/// 0, so that dropping the client resets the connection and leaves no
/// port in `TIME_WAIT`.
pub(crate) async fn connect_lingerless(
    source: Option<std::net::IpAddr>,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
) -> Result<Client, String> {
    let socket = socket_from(source)?;
    socket
        .set_zero_linger()
        .map_err(|error| error.to_string())?;
    open(socket, addr, path, headers).await
}

/// The loopback source address of the `index`th of many clients held
/// open at once: 20 000 a source address, from 127.0.0.2 up (one address
/// has only about 28 000 ports).
pub(crate) fn source_of(index: usize) -> std::net::IpAddr {
    std::net::Ipv4Addr::new(127, 0, 0, 2 + (index / 20_000) as u8).into()
}

/// The WebSocket handshake over `socket`, connected to `addr`.
async fn open(
    socket: tokio::net::TcpSocket,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
) -> Result<Client, String> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|error| error.to_string())?;
    let _ = stream.set_nodelay(true);
    tokio_tungstenite::client_async_with_config(
        request,
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
        Some(client_config()),
    )
    .await
    .map(|(client, _)| client)
    .map_err(|error| error.to_string())
}

/// Opens `count` connections, 64 handshakes at a time.
pub(crate) async fn connect_many(
    count: usize,
    addr: SocketAddr,
    path: &str,
    headers: &[(&'static str, String)],
) -> Vec<Client> {
    connect_many_with(count, addr, path, |_| headers.to_vec()).await
}

/// Opens `count` connections, 64 handshakes at a time, the `index`th with
/// the headers `headers_of(index)`.
pub(crate) async fn connect_many_with(
    count: usize,
    addr: SocketAddr,
    path: &str,
    headers_of: impl Fn(usize) -> Vec<(&'static str, String)>,
) -> Vec<Client> {
    futures_util::stream::iter(0..count)
        .map(|index| {
            let (path, headers) = (path.to_owned(), headers_of(index));
            // Lingerless: the run's next part finds the ports free.
            async move {
                connect_lingerless(Some(source_of(index)), addr, &path, &headers)
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await
}

pub(crate) fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}
