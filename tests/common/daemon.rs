//! A `ravencert` left running (usually `watch`), its stderr in a log file in the test folder.
//!
//! Robust on a loaded machine: nothing asserts on timing; every wait polls a condition with a
//! generous deadline and fails with the daemon's log. A daemon dropped while still running (a
//! test panicked) is killed with SIGKILL.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// How long any wait polls before it fails.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// How often it polls.
pub const STEP: Duration = Duration::from_millis(50);

/// Polls `cond` every STEP until it holds; after DEADLINE panics with `what` and `context()`.
#[track_caller]
pub fn wait_until(what: &str, context: impl Fn() -> String, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() > DEADLINE {
            panic!(
                "timed out after {DEADLINE:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(STEP);
    }
}

pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn new(child: Child, log: PathBuf) -> Daemon {
        Daemon { child, log }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log, for a failure message.
    pub fn context(&self) -> String {
        format!("--- log {} ---\n{}", self.log.display(), self.log())
    }

    /// Lines of the log containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until the log has more than `before` lines containing `needle`.
    #[track_caller]
    pub fn wait_log_count(&self, needle: &str, before: usize) {
        wait_until(
            &format!("log line #{} containing {needle:?}", before + 1),
            || self.context(),
            || self.count(needle) > before,
        );
    }

    #[track_caller]
    pub fn wait_log(&self, needle: &str) {
        self.wait_log_count(needle, 0);
    }

    /// Saves with `save` until `cond` holds, saving again (the same way, the same text) every
    /// 2 s. ravencert installs its file watch only after the start attempt, so the first save
    /// after the daemon starts may go unseen; once one change has been applied through an
    /// event, the watch is in place and later saves need no repeat.
    #[track_caller]
    pub fn save_until(&self, what: &str, save: impl Fn(), mut cond: impl FnMut() -> bool) {
        save();
        let mut saved = Instant::now();
        wait_until(
            what,
            || self.context(),
            || {
                if cond() {
                    return true;
                }
                if saved.elapsed() > Duration::from_secs(2) {
                    save();
                    saved = Instant::now();
                }
                false
            },
        );
    }

    /// `watch --listen`: waits for the bound address in the log.
    #[track_caller]
    pub fn listening(&self) -> SocketAddr {
        self.wait_log("listening on http://");
        self.log()
            .lines()
            .find_map(|l| l.split("listening on http://").nth(1))
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no bound address\n{}", self.context()))
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit by itself.
    #[track_caller]
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut status = None;
        let child = &mut self.child;
        let log = self.log.clone();
        wait_until(
            "ravencert to exit",
            || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                format!("--- log {} ---\n{text}", log.display())
            },
            || {
                status = child.try_wait().expect("try_wait");
                status.is_some()
            },
        );
        status.expect("exited")
    }

    /// Sends SIGTERM (with the `kill` command) and waits for the exit.
    #[track_caller]
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let st = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("the kill command");
        assert!(st.success(), "kill -TERM {pid} failed");
        self.wait_exit()
    }

    /// SIGKILL, then reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// GET `path` from a listener: the status code and the body, or None when the connection fails.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}
