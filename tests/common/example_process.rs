//! What the tests that run the `customer_service` example as processes share (`#[path]`-
//! included by tests/chaos.rs and tests/queue_process.rs, beside `redis_server.rs`): the
//! example's executable built once, and an instance (a fixed port, the process serving it,
//! started, signalled, waited for, its stderr read).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `signal` (`-KILL`, `-TERM`, `-STOP`, `-CONT`) to `pid`.
pub(crate) fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

/// Builds `customer_service` with every feature this test needs (the features the test
/// itself was built with, so the library is not built again) and answers its executable.
pub(crate) fn executable() -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    // What cargo sets for this test process describes this package to it; passed on, it
    // would look like a changed environment to build scripts that watch it.
    for (var, _) in std::env::vars_os() {
        let var = var.to_string_lossy();
        if var.starts_with("CARGO_PKG_")
            || var.starts_with("CARGO_BIN_")
            || var.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*var,
                "OUT_DIR"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
            )
        {
            cargo.env_remove(&*var);
        }
    }
    cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--message-format=json-render-diagnostics"])
        .args(["-p", "wechat-push", "--no-default-features", "--features"])
        .arg("axum,tracing,tokio,client,redis")
        .args(["--example", "customer_service"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    let out = cargo.output().expect("cargo build runs");
    assert!(out.status.success(), "cargo build: {}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "customer_service")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo built customer_service")
}

/// One instance: its port, and the process serving it, if any.
pub(crate) struct Instance {
    pub(crate) port: u16,
    pub(crate) child: Option<Child>,
    /// Everything each process of this instance wrote to stderr, in order.
    pub(crate) stderr: Vec<JoinHandle<String>>,
}

impl Instance {
    /// Starts a process on the instance's port and waits for its `listening on` line.
    pub(crate) fn start(&mut self, exe: &PathBuf, env: &[(&str, String)]) {
        assert!(self.child.is_none(), "already running");
        let mut child = Command::new(exe)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("BIND", format!("127.0.0.1:{}", self.port))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("customer_service starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        self.stderr.push(std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        }));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        self.child = Some(child);
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(Ok(line))) if line.starts_with("listening on http://127.0.0.1:") => {}
            other => panic!("port {}: no `listening on` line: {other:?}", self.port),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits (at most `limit`) for the process to exit after a signal.
    pub(crate) async fn exited(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "port {}: still running {limit:?} after the signal",
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn stderr(&mut self) -> String {
        self.stderr
            .drain(..)
            .map(|t| t.join().unwrap_or_default())
            .collect()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
