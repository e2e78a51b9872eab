//! A real PostgreSQL for the tests: `initdb` in a temporary folder, a
//! server on a free loopback port, stopped and started at will. As root
//! (CI) the server runs as the `postgres` user, since PostgreSQL refuses
//! root.
//!
//! Without the server binaries a test prints what to install and skips,
//! unless `WSGATE_TEST_REQUIRE_SERVERS=1` (CI).

use std::path::PathBuf;
use std::process::Command;

use crate::servers::free_port;

fn binary(name: &str) -> Option<PathBuf> {
    let on_path = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    on_path.or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|version| version.path().join("bin").join(name))
            .filter(|path| path.exists())
            .collect();
        found.sort();
        found.pop()
    })
}

pub fn available() -> bool {
    if binary("initdb").is_some() && binary("pg_ctl").is_some() {
        return true;
    }
    crate::servers::missing("the PostgreSQL tests need the server (apt-get install -y postgresql)")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// Runs a server binary, as `postgres` when we are root.
fn run(binary_name: &str, args: &[&str]) -> std::process::Output {
    let path = binary(binary_name).expect("checked by available()");
    let mut command = if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    };
    command.args(args).output().expect("the server binary runs")
}

/// One PostgreSQL cluster.
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
}

impl Postgres {
    /// A new cluster, started; `None` when none can run here.
    pub fn start() -> Option<Self> {
        if !available() {
            return None;
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("wsgate-pg-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = dir.join("data");
        let output = run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "wsgate",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            output.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let server = Self { port, dir };
        server.resume();
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.join("data").to_str().unwrap().to_owned()
    }

    pub fn url(&self) -> String {
        format!("postgres://wsgate@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server, immediately.
    pub fn stop(&self) {
        let output = run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        assert!(
            output.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts it (again).
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.to_str().unwrap()
        );
        let log = self.dir.join("log");
        let output = run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        assert!(
            output.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
