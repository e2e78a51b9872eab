//! A real Redis for the tests (Debian's `redis-server`), started on a free
//! loopback port without persistence, killed and restarted at will; and a
//! TCP proxy that can stall a link without closing it.
//!
//! Without `redis-server` a test prints what to install and skips, unless
//! `WSGATE_TEST_REQUIRE_SERVERS=1` (CI).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::process::{Child, Command};

use crate::servers::free_port;

pub fn available() -> bool {
    let found = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if found {
        return true;
    }
    crate::servers::missing("the Redis tests need redis-server (apt-get install -y redis-server)")
}

/// One Redis server.
pub struct RedisServer {
    pub port: u16,
    password: Option<String>,
    /// The folder of its certificate and key, when it serves TLS only.
    tls: Option<std::path::PathBuf>,
    /// The certificate (self-signed for `localhost`), PEM.
    pub certificate: Option<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port; `None` when none can run here.
    pub async fn start() -> Option<Self> {
        Self::start_with(None).await
    }

    /// A server that requires `password` (AUTH).
    pub async fn start_with(password: Option<&str>) -> Option<Self> {
        if !available() {
            return None;
        }
        let mut server = Self {
            port: free_port(),
            password: password.map(str::to_owned),
            tls: None,
            certificate: None,
            child: None,
        };
        server.spawn().await;
        Some(server)
    }

    /// A server that speaks TLS only, with a certificate for `localhost`
    /// signed by a CA made here (the CA's PEM in
    /// [`certificate`](Self::certificate)).
    pub async fn start_tls() -> Option<Self> {
        if !available() {
            return None;
        }
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "wsgate test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let certificate = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let server_key = rcgen::KeyPair::generate().unwrap();
        let mut server = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        server
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let server = server.signed_by(&server_key, &issuer).unwrap();
        let folder = std::env::temp_dir().join(format!("wsgate-redis-tls-{}", free_port()));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("cert.pem"), server.pem()).unwrap();
        std::fs::write(folder.join("key.pem"), server_key.serialize_pem()).unwrap();
        let mut server = Self {
            port: free_port(),
            password: None,
            tls: Some(folder),
            certificate: Some(certificate),
            child: None,
        };
        server.spawn().await;
        Some(server)
    }

    async fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        let port = self.port.to_string();
        match &self.tls {
            None => command.args(["--port", &port]),
            Some(folder) => command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(folder.join("cert.pem"))
                .arg("--tls-key-file")
                .arg(folder.join("key.pem")),
        };
        command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            // Bound to loopback only; protected mode would refuse the
            // proxy's links from 127.0.0.3.
            .args(["--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        self.child = Some(command.spawn().expect("redis-server starts"));
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not listen within 5 s");
    }

    pub fn url(&self) -> String {
        match (&self.password, &self.tls) {
            (_, Some(_)) => format!("rediss://localhost:{}/", self.port),
            (Some(password), None) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            (None, None) => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// Stops the server (its port stays free for a restart).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Starts it again on the same port: empty, with a new run id.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// A connection for the test's own commands.
    pub async fn connection(&self) -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// `CLIENT KILL`s every connection whose address is on `ip` (a
    /// process whose links come through a proxy bound there); returns how
    /// many.
    pub async fn kill_clients_from(&self, ip: &str) -> usize {
        let mut connection = self.connection().await;
        let list: String = ::redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut connection)
            .await
            .unwrap();
        let mut killed = 0;
        for line in list.lines() {
            let Some(addr) = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("addr="))
            else {
                continue;
            };
            if addr.starts_with(&format!("{ip}:")) {
                let _: ::redis::RedisResult<()> = ::redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg(addr)
                    .query_async(&mut connection)
                    .await;
                killed += 1;
            }
        }
        killed
    }
}

/// A TCP proxy in front of a server: what one process sees of Redis. Its
/// links to the server leave from `source` (a loopback address of the
/// test's choosing, so `CLIENT LIST` tells them apart), and it can stall:
/// stop forwarding in both directions while every socket stays open.
pub struct Proxy {
    pub addr: SocketAddr,
    stalled: Arc<AtomicBool>,
    lose_script_reply: Arc<AtomicBool>,
}

impl Proxy {
    pub async fn start(upstream: u16, source: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stalled = Arc::new(AtomicBool::new(false));
        let lose_script_reply = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        let lose = lose_script_reply.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let flag = flag.clone();
                let lose = lose.clone();
                tokio::spawn(async move {
                    let socket = TcpSocket::new_v4().unwrap();
                    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
                    let server = match socket
                        .connect(SocketAddr::from(([127, 0, 0, 1], upstream)))
                        .await
                    {
                        Ok(server) => server,
                        // The server is down: the client sees its link close.
                        Err(_) => return,
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    // Set by a script call on this link while a lost reply
                    // is asked for; the next reply is dropped.
                    let losing = Arc::new(AtomicBool::new(false));
                    let to_server = pump(
                        client_read,
                        server_write,
                        flag.clone(),
                        Loss::Arm(lose, losing.clone()),
                    );
                    let to_client = pump(server_read, client_write, flag, Loss::Drop(losing));
                    // Either end closing drops both sockets: the other end
                    // sees its link close, as with no proxy.
                    tokio::select! {
                        () = to_server => {}
                        () = to_client => {}
                    }
                });
            }
        });
        Self {
            addr,
            stalled,
            lose_script_reply,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Stops (or resumes) forwarding; the sockets stay open.
    pub fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }

    /// The next script call (`EVALSHA`) reaches Redis and runs, but its
    /// reply never comes back: a reply lost to a command timeout.
    pub fn lose_next_script_reply(&self) {
        self.lose_script_reply.store(true, Ordering::SeqCst);
    }
}

/// What a pump does about lost replies.
enum Loss {
    /// Client to server: a script call, while one is asked for, arms the
    /// link (the first flag is the proxy's, the second the link's).
    Arm(Arc<AtomicBool>, Arc<AtomicBool>),
    /// Server to client: the next reply, once armed, is dropped.
    Drop(Arc<AtomicBool>),
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
    loss: Loss,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
        }
        // While stalled, bytes are held, never forwarded: the link looks
        // alive to both ends and answers nothing.
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match &loss {
            Loss::Arm(asked, link) => {
                let call = buffer[..read].windows(7).any(|window| window == b"EVALSHA");
                if call && asked.swap(false, Ordering::SeqCst) {
                    link.store(true, Ordering::SeqCst);
                }
            }
            Loss::Drop(link) => {
                if link.swap(false, Ordering::SeqCst) {
                    continue;
                }
            }
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
