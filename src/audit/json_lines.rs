//! The JSON-lines audit sink: one object a line, written off the runtime.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::SystemTime;

use serde_json::json;

use crate::audit::{AuditEvent, AuditSink};

/// Events a [`JsonLinesAudit`] holds for its writer by default.
pub(crate) const DEFAULT_AUDIT_QUEUE: usize = 100_000;

enum Command {
    Line(String),
    Flush(mpsc::SyncSender<()>),
}

/// Appends each event as one JSON object a line to a file.
///
/// Writing happens on a thread of its own, so recording never blocks the
/// async runtime; the thread flushes whenever it has caught up. The file is
/// opened for appending and created if needed.
///
/// The events waiting for the writer are bounded (100 000 by default), so a
/// flood of refusals against a stalled disk cannot grow memory without end.
/// Should the queue ever be full, the events that did not fit are counted,
/// and once the writer catches up it writes one line saying how many were
/// lost (`{"event":"audit","outcome":"deny","reason":"audit queue full",
/// "dropped":N}`) and logs an error: a gap in the trail is never silent.
#[derive(Debug)]
pub struct JsonLinesAudit {
    commands: mpsc::SyncSender<Command>,
    dropped: Arc<AtomicU64>,
}

impl JsonLinesAudit {
    /// Opens (or creates) `path` for appending, holding at most 100 000
    /// events for the writer.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or the writer thread cannot start.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::open_with_queue(path, DEFAULT_AUDIT_QUEUE)
    }

    /// Opens `path` like [`open`](Self::open), holding at most `queue`
    /// events (at least one) for the writer.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or the writer thread cannot start.
    pub fn open_with_queue(path: impl AsRef<Path>, queue: usize) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (commands, receiver) = mpsc::sync_channel::<Command>(queue.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            out: BufWriter::new(file),
            dropped: dropped.clone(),
        };
        std::thread::Builder::new()
            .name("wsgate-audit".into())
            .spawn(move || writer.run(&receiver))?;
        Ok(Self { commands, dropped })
    }

    /// Blocks until every event recorded so far is written and flushed.
    /// (It waits for room in the queue: call it off the async runtime, or
    /// where a pause is fine, such as at shutdown.)
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.commands.send(Command::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

struct Writer {
    out: BufWriter<std::fs::File>,
    dropped: Arc<AtomicU64>,
}

impl Writer {
    fn line(&mut self, line: &str) {
        if writeln!(self.out, "{line}").is_err() {
            tracing::error!(target: "wsgate::audit", "cannot write the audit file");
        }
    }

    /// Says, in the file and the log, how many events found the queue full.
    fn report_dropped(&mut self) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped == 0 {
            return;
        }
        tracing::error!(target: "wsgate::audit", dropped, "the audit queue was full: events lost");
        let line = json!({
            "ts": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "event": "audit",
            "outcome": "deny",
            "reason": "audit queue full",
            "dropped": dropped,
        });
        self.line(&line.to_string());
    }

    fn run(mut self, commands: &mpsc::Receiver<Command>) {
        while let Ok(command) = commands.recv() {
            self.handle(command);
            // Drain what is queued, then flush once: a burst costs one write.
            while let Ok(next) = commands.try_recv() {
                self.handle(next);
            }
            self.report_dropped();
            let _ = self.out.flush();
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Line(line) => self.line(&line),
            Command::Flush(done) => {
                self.report_dropped();
                let _ = self.out.flush();
                let _ = done.send(());
            }
        }
    }
}

impl AuditSink for JsonLinesAudit {
    fn record(&self, event: &AuditEvent) {
        let line = Command::Line(event.to_json().to_string());
        if let Err(mpsc::TrySendError::Full(_)) = self.commands.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for JsonLinesAudit {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{EventKind, Outcome};

    #[test]
    fn writes_one_object_a_line() {
        let path = std::env::temp_dir().join(format!("wsgate-audit-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sink = JsonLinesAudit::open(&path).unwrap();
        for reason in ["token expired", "forbidden"] {
            sink.record(
                &AuditEvent::new(EventKind::Close, Outcome::Deny)
                    .with_reason(reason)
                    .with_code(4401),
            );
        }
        sink.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["reason"], "token expired");
        assert_eq!(lines[1]["reason"], "forbidden");
        let _ = std::fs::remove_file(&path);
    }

    /// A writer stuck on its file (here a pipe nobody reads yet) makes the
    /// queue overflow: what did not fit is counted, and the count reaches
    /// the file once the writer catches up.
    #[cfg(unix)]
    #[test]
    fn a_full_queue_loses_events_visibly_not_silently() {
        use std::io::Read as _;
        let dir = std::env::temp_dir();
        let fifo = dir.join(format!("wsgate-audit-fifo-{}", std::process::id()));
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (start_reading, go) = mpsc::channel::<()>();
        let reader_path = fifo.clone();
        let reader = std::thread::spawn(move || {
            let mut pipe = std::fs::File::open(reader_path).unwrap();
            go.recv().unwrap();
            let mut text = String::new();
            pipe.read_to_string(&mut text).unwrap();
            text
        });
        let sink = JsonLinesAudit::open_with_queue(&fifo, 4).unwrap();
        // 50 events of 10 KB: far more than the pipe's buffer, the
        // writer's buffer and a queue of 4 can hold.
        let recorded = 50;
        for _ in 0..recorded {
            sink.record(
                &AuditEvent::new(EventKind::Close, Outcome::Deny).with_sub("x".repeat(10_000)),
            );
        }
        start_reading.send(()).unwrap();
        drop(sink);
        let text = reader.join().unwrap();
        let _ = std::fs::remove_file(&fifo);

        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let written = lines.iter().filter(|line| line["event"] == "close").count();
        let dropped: u64 = lines
            .iter()
            .filter(|line| line["reason"] == "audit queue full")
            .map(|line| line["dropped"].as_u64().unwrap())
            .sum();
        assert!(dropped > 0, "nothing was dropped: {written} written");
        assert_eq!(
            written as u64 + dropped,
            recorded,
            "every event is written or counted"
        );
        assert!(written >= 4, "the queue's worth was kept");
    }
}
