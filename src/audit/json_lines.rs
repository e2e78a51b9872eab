//! The JSON-lines audit sink: one object a line, written off the runtime.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc;

use crate::audit::{AuditEvent, AuditSink};

enum Command {
    Line(String),
    Flush(mpsc::SyncSender<()>),
}

/// Appends each event as one JSON object a line to a file.
///
/// Writing happens on a thread of its own, so recording never blocks the
/// async runtime; the thread flushes whenever it has caught up. The file is
/// opened for appending and created if needed.
#[derive(Debug)]
pub struct JsonLinesAudit {
    commands: Mutex<mpsc::Sender<Command>>,
}

impl JsonLinesAudit {
    /// Opens (or creates) `path` for appending.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or the writer thread cannot start.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (commands, receiver) = mpsc::channel::<Command>();
        std::thread::Builder::new()
            .name("wsgate-audit".into())
            .spawn(move || write_lines(BufWriter::new(file), &receiver))?;
        Ok(Self {
            commands: Mutex::new(commands),
        })
    }

    /// Blocks until every event recorded so far is written and flushed.
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.send(Command::Flush(done)) {
            let _ = wait.recv();
        }
    }

    fn send(&self, command: Command) -> bool {
        self.commands
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .send(command)
            .is_ok()
    }
}

fn write_lines(mut out: BufWriter<std::fs::File>, commands: &mpsc::Receiver<Command>) {
    while let Ok(mut command) = commands.recv() {
        // Drain what is queued, then flush once: a burst costs one write.
        loop {
            match command {
                Command::Line(line) => {
                    if writeln!(out, "{line}").is_err() {
                        tracing::error!(target: "wsgate::audit", "cannot write the audit file");
                    }
                }
                Command::Flush(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            match commands.try_recv() {
                Ok(next) => command = next,
                Err(_) => break,
            }
        }
        let _ = out.flush();
    }
}

impl AuditSink for JsonLinesAudit {
    fn record(&self, event: &AuditEvent) {
        self.send(Command::Line(event.to_json().to_string()));
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
}
