//! A `redis-server` process of a test's own, on a free loopback port: started, stopped (as a
//! crash would), frozen (SIGSTOP: it accepts connections and answers nothing) and thawed, and
//! killed when dropped. Shared by the Redis test files (`#[path]`-included, so that tests
//! without the `redis` feature do not build it).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `tool` is installed; if not, says loudly that `test` is skipped (past the test
/// harness's capture), or fails it under `CI=true`.
pub(crate) fn installed(test: &str, tool: &str) -> bool {
    // Both print their version with this.
    let arg = if tool == "openssl" {
        "version"
    } else {
        "--version"
    };
    let found = Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: {tool} is not installed, and a skipped Redis test fails under CI=true"
        );
        let _ = writeln!(
            std::io::stderr(),
            "\n**** SKIPPED {test}: {tool} is not installed (apt-get install {tool}) ****\n"
        );
    }
    found
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` on a free loopback port, killed when dropped.
pub(crate) struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one, or says loudly why the test is skipped (`None`); under `CI=true` a missing
    /// `redis-server` fails the test.
    pub(crate) fn start(test: &str) -> Option<Self> {
        if !installed(test, "redis-server") {
            return None;
        }
        let port = free_port();
        let mut server = RedisServer { port, child: None };
        server.restart();
        Some(server)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the process (again, on the same port) and waits until it answers PING.
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pong() {
            assert!(Instant::now() < deadline, "redis-server answers PING");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn pong(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = [0; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut answer).is_ok()
            && &answer == b"+PONG\r\n"
    }

    /// Kills the process (as a crash would) and waits for it.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes (`true`) or thaws the process: a Redis that accepts connections but answers
    /// nothing.
    pub(crate) fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
    }

    pub(crate) async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A frozen server does not die of SIGKILL until thawed on every platform.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.stop();
    }
}
