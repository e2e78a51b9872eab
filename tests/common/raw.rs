//! A WebSocket client that writes frames byte by byte, so tests can send
//! what no well-behaved client library would: unmasked frames, reserved
//! opcodes and bits, continuations without a start, text that is not
//! UTF-8, oversized or fragmented control frames.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CONTINUATION: u8 = 0x0;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;

/// One frame as the client puts it on the wire.
#[derive(Debug, Clone)]
pub struct RawFrame {
    pub fin: bool,
    /// The three reserved bits, in the low bits.
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// A final, masked frame: what a client normally sends.
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            fin: true,
            rsv: 0,
            opcode,
            masked: true,
            payload: payload.into(),
        }
    }

    /// The same frame, not the last of its message.
    pub fn not_final(mut self) -> Self {
        self.fin = false;
        self
    }

    pub fn rsv(mut self, bits: u8) -> Self {
        self.rsv = bits;
        self
    }

    pub fn unmasked(mut self) -> Self {
        self.masked = false;
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![(u8::from(self.fin) << 7) | (self.rsv << 4) | self.opcode];
        let mask_bit = u8::from(self.masked) << 7;
        let len = self.payload.len();
        if len < 126 {
            out.push(mask_bit | len as u8);
        } else if len <= usize::from(u16::MAX) {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        if self.masked {
            out.extend_from_slice(&MASK);
            out.extend(
                self.payload
                    .iter()
                    .enumerate()
                    .map(|(index, byte)| byte ^ MASK[index % 4]),
            );
        } else {
            out.extend_from_slice(&self.payload);
        }
        out
    }
}

/// A connection after a successful upgrade, at the frame level.
pub struct RawSocket {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawSocket {
    /// Upgrades `path` with `headers`; panics unless the answer is 101.
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, String)]) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        Self::upgrade(stream, addr, path, headers).await
    }

    /// Upgrades like [`open`](Self::open) over a socket whose receive
    /// buffer is `receive_buffer` bytes: a client that stops reading fills
    /// it (and the server's send buffer) sooner.
    pub async fn open_with_receive_buffer(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, String)],
        receive_buffer: u32,
    ) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(receive_buffer).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        Self::upgrade(stream, addr, path, headers).await
    }

    async fn upgrade(
        mut stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, String)],
    ) -> Self {
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buffer = Vec::new();
        let end = loop {
            if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 1024];
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "the server hung up during the upgrade");
            buffer.extend_from_slice(&chunk[..read]);
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "upgrade refused: {}",
            head.lines().next().unwrap_or_default()
        );
        buffer.drain(..end);
        Self { stream, buffer }
    }

    /// The client's own address.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    /// Sends `frame` again and again, never reading, until one write has
    /// waited for `patience`: the server stopped reading because the
    /// client does not take what it sends (an echo of each frame). Returns
    /// how many frames went out whole.
    pub async fn flood_until_stalled(
        &mut self,
        frame: &RawFrame,
        patience: std::time::Duration,
    ) -> usize {
        let bytes = frame.encode();
        for sent in 0..100_000 {
            let write = tokio::time::timeout(patience, self.stream.write_all(&bytes));
            if write.await.is_err() {
                return sent;
            }
        }
        panic!("the server read 100 000 frames without stalling");
    }

    pub async fn send(&mut self, frame: &RawFrame) {
        // The server may already have hung up on an earlier frame; what it
        // said before that is what the test reads next.
        let _ = self.stream.write_all(&frame.encode()).await;
    }

    async fn fill(&mut self, wanted: usize) -> bool {
        while self.buffer.len() < wanted {
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
            }
        }
        true
    }

    /// The next frame from the server (opcode, payload), or `None` when the
    /// connection ended.
    pub async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        if !self.fill(2).await {
            return None;
        }
        let opcode = self.buffer[0] & 0x0f;
        let (len, header) = match self.buffer[1] & 0x7f {
            126 => {
                if !self.fill(4).await {
                    return None;
                }
                (
                    usize::from(u16::from_be_bytes([self.buffer[2], self.buffer[3]])),
                    4,
                )
            }
            127 => {
                if !self.fill(10).await {
                    return None;
                }
                let bytes: [u8; 8] = self.buffer[2..10].try_into().unwrap();
                (u64::from_be_bytes(bytes) as usize, 10)
            }
            short => (usize::from(short), 2),
        };
        if !self.fill(header + len).await {
            return None;
        }
        let payload = self.buffer[header..header + len].to_vec();
        self.buffer.drain(..header + len);
        Some((opcode, payload))
    }

    /// The next text message's payload, skipping control frames.
    pub async fn next_text(&mut self) -> Option<String> {
        loop {
            let (opcode, payload) = self.next_frame().await?;
            match opcode {
                TEXT => return Some(String::from_utf8(payload).unwrap()),
                CLOSE => return None,
                _ => {}
            }
        }
    }

    /// Reads until the server's close frame: its code and reason, or
    /// `None` when the connection ended without one.
    pub async fn close_frame(&mut self) -> Option<(u16, String)> {
        loop {
            let (opcode, payload) = self.next_frame().await?;
            if opcode == CLOSE {
                if payload.len() < 2 {
                    return Some((1005, String::new()));
                }
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                return Some((code, String::from_utf8_lossy(&payload[2..]).into_owned()));
            }
        }
    }
}

/// Whether the server's side of the TCP connection from `client` to
/// `server` is still open (established, or half-closed by the client),
/// read from the kernel's table of this machine's TCP sockets: what a
/// client that does not read cannot see for itself.
pub fn server_side_open(server: SocketAddr, client: SocketAddr) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("Linux's /proc/net/tcp");
    let port =
        |address: &str| u16::from_str_radix(address.rsplit(':').next().unwrap(), 16).unwrap();
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // local address, remote address, state: 01 established, 08 close-wait.
        port(fields[1]) == server.port()
            && port(fields[2]) == client.port()
            && matches!(fields[3], "01" | "08")
    })
}
