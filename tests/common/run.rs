//! One way to launch the `ravencert` binary: a builder over the test folder
//! (`env.cmd(&["plan"]).env("K", "v").umask(0o000).timeout(30).run()`), whose runs can be
//! expected to succeed, to be refused with the folder left as it was, or to keep running as a
//! daemon.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::daemon::Daemon;
use super::folder::{self, Snapshot};
use super::Env;

/// The outcome of one finished run.
#[derive(Debug)]
pub struct Run {
    /// What ran, for failure messages: `ravencert plan --json`.
    pub label: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(label: String, out: &Output) -> Run {
        Run {
            label,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The run as a failure message shows it.
    pub fn shown(&self) -> String {
        format!(
            "{}\nexit {}\nstdout:\n{}\nstderr:\n{}",
            self.label, self.code, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(self.code, 0, "expected success\n{}", self.shown());
        self
    }

    #[track_caller]
    pub fn failure(self) -> Run {
        assert_eq!(self.code, 1, "expected exit 1\n{}", self.shown());
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    /// None of `secrets` is on stdout or stderr.
    #[track_caller]
    pub fn hides(&self, secrets: &[&str]) -> &Run {
        for secret in secrets {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "the secret {secret:?} was printed\n{}",
                self.shown()
            );
        }
        self
    }
}

/// A `ravencert` command line about to run in a test folder.
pub struct Cmd<'a> {
    env: &'a Env,
    args: Vec<OsString>,
    envs: Vec<(String, String)>,
    umask: Option<u32>,
    timeout_secs: Option<u32>,
    memory_kib: Option<u64>,
    stdin: Option<Vec<u8>>,
    terminal: bool,
}

impl<'a> Cmd<'a> {
    pub fn new(env: &'a Env, args: &[&str]) -> Cmd<'a> {
        Cmd {
            env,
            args: args.iter().map(OsString::from).collect(),
            envs: Vec::new(),
            umask: None,
            timeout_secs: None,
            memory_kib: None,
            stdin: None,
            terminal: false,
        }
    }

    /// Sets a variable for this run only (after the Env's own).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    pub fn envs(mut self, vars: &[(&str, &str)]) -> Self {
        for (k, v) in vars {
            self.envs.push(((*k).into(), (*v).into()));
        }
        self
    }

    /// Runs under this umask (the binary inherits it; `sh` sets it).
    pub fn umask(mut self, mask: u32) -> Self {
        self.umask = Some(mask);
        self
    }

    /// Stops a hang after `secs` seconds (exit 124), so that a run expected to be refused
    /// cannot block the suite.
    pub fn timeout(mut self, secs: u32) -> Self {
        self.timeout_secs = Some(secs);
        self
    }

    /// Caps the address space (KiB): an unbounded read fails instead of eating the machine.
    pub fn memory_kib(mut self, kib: u64) -> Self {
        self.memory_kib = Some(kib);
        self
    }

    /// Feeds these bytes on stdin (without it, stdin is /dev/null).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Gives the binary a terminal on stdin (through `script`), stdout and stderr staying
    /// plain files, as when someone types `ravencert apply --json > out`.
    pub fn stdin_terminal(mut self) -> Self {
        self.terminal = true;
        self
    }

    fn label(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        format!("ravencert {}", args.join(" "))
    }

    /// The command line as one shell line, for the wrappers that need a shell.
    fn shell_line(&self) -> String {
        let mut line = String::new();
        if let Some(kib) = self.memory_kib {
            line.push_str(&format!("ulimit -v {kib} && "));
        }
        if let Some(mask) = self.umask {
            line.push_str(&format!("umask {mask:03o} && "));
        }
        line.push_str("exec ");
        if let Some(secs) = self.timeout_secs {
            line.push_str(&format!("timeout -k 5 {secs} "));
        }
        line.push_str(&quote(env!("CARGO_BIN_EXE_ravencert")));
        for a in &self.args {
            line.push(' ');
            line.push_str(&quote(&a.to_string_lossy()));
        }
        line
    }

    /// The process to start: the binary itself, or a shell (or `script`) around it.
    fn command(&self) -> Command {
        let wrapped =
            self.umask.is_some() || self.timeout_secs.is_some() || self.memory_kib.is_some();
        let mut cmd = if self.terminal {
            let mut c = Command::new("script");
            c.arg("-qec")
                .arg(format!("{} >tty.out 2>tty.err", self.shell_line()))
                .arg("/dev/null");
            c
        } else if wrapped {
            let mut c = Command::new("sh");
            c.arg("-c").arg(self.shell_line());
            c
        } else {
            let mut c = Command::new(env!("CARGO_BIN_EXE_ravencert"));
            c.args(&self.args);
            c
        };
        cmd.current_dir(self.env.dir.path())
            .env_remove("NO_COLOR")
            .env_remove("RAVENCERT_TEST_NOW");
        for (k, v) in self.env.envs.iter().chain(&self.envs) {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs to the end; stdout and stderr as bytes.
    pub fn output(self) -> Output {
        let mut cmd = self.command();
        let stdin = match (&self.stdin, self.terminal) {
            (None, false) => Stdio::null(),
            _ => Stdio::piped(),
        };
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ravencert");
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(self.stdin.as_deref().unwrap_or_default())
                .expect("write stdin");
        }
        let mut out = child.wait_with_output().expect("run ravencert");
        if self.terminal {
            // What the binary wrote went to the files; the terminal only echoed.
            out.stdout = std::fs::read(self.env.path("tty.out")).unwrap_or_default();
            out.stderr = std::fs::read(self.env.path("tty.err")).unwrap_or_default();
        }
        out
    }

    /// Runs to the end.
    pub fn run(self) -> Run {
        let label = self.label();
        Run::new(label, &self.output())
    }

    /// Runs, and checks that the whole test folder (store, export, config, referenced files) is
    /// byte for byte as before, but for the paths `may_change` allows (given the snapshots
    /// before and after). Any exit code.
    #[track_caller]
    pub fn unchanged_except(self, may_change: impl Fn(&Path, &Snapshot, &Snapshot) -> bool) -> Run {
        let root = self.env.dir.path().to_path_buf();
        let before = folder::snapshot(&root);
        let run = self.run();
        let after = folder::snapshot(&root);
        let changed: Vec<String> = folder::changed_paths(&before, &after)
            .into_iter()
            .filter(|p| !may_change(Path::new(p), &before, &after))
            .collect();
        assert_eq!(
            changed,
            Vec::<String>::new(),
            "files changed\n{}",
            run.shown()
        );
        run
    }

    /// Runs a command that must be refused: exit 1, an `error: ` message holding each of
    /// `says`, no panic, and the test folder byte for byte as before.
    #[track_caller]
    pub fn refused(self, says: &[&str]) -> Run {
        self.refused_except(says, |_, _, _| false)
    }

    /// [`Cmd::refused`], allowing the paths `may_change` allows to change.
    #[track_caller]
    pub fn refused_except(
        self,
        says: &[&str],
        may_change: impl Fn(&Path, &Snapshot, &Snapshot) -> bool,
    ) -> Run {
        let run = self.unchanged_except(may_change);
        assert_eq!(run.code, 1, "expected exit 1\n{}", run.shown());
        assert!(!run.stderr.contains("panicked"), "panic\n{}", run.shown());
        assert!(
            run.stderr.starts_with("error: "),
            "no error message\n{}",
            run.shown()
        );
        for text in says {
            assert!(
                run.stderr.contains(text),
                "the error does not say {text:?}\n{}",
                run.shown()
            );
        }
        run
    }

    /// Starts the command and leaves it running: stdout to `NAME.out`, stderr to `NAME.log` in
    /// the test folder.
    pub fn spawn(self, name: &str) -> Daemon {
        let log = self.env.path(&format!("{name}.log"));
        let out = std::fs::File::create(self.env.path(&format!("{name}.out"))).expect("out file");
        let err = std::fs::File::create(&log).expect("log file");
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn ravencert");
        Daemon::new(child, log)
    }
}

/// `text` as one word for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
