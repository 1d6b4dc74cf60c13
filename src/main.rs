//! The ravencert binary: parses the command line, runs one operation of `ops`, prints its
//! output (and the apply confirmation) and exits with its code. All printing happens here.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use ravencert::cli::{ApplyArgs, Cli, ColorChoice, Command, PlanArgs, WatchArgs};
use ravencert::ops::{self, Context, Output};
use ravencert::plan::{ClusterView, Plan};
use ravencert::render::{self, escape_output, Style};
use ravencert::watch::{GitFollow, WatchOptions};

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(report_panic));
    // `test-hooks` builds (the tests'): a panic on request, to show its message is never printed.
    #[cfg(feature = "test-hooks")]
    if let Some(payload) = std::env::var_os("RAVENCERT_TEST_PANIC") {
        panic!("test panic: {}", payload.to_string_lossy());
    }
    // Usage errors exit 1 like every other error (docs/contract.md §3); --help and --version exit
    // 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout, and fail like any output that cannot be
            // written; a usage error goes to stderr and exits 1 whatever happens to it.
            let printed = e.print().and_then(|()| std::io::stdout().flush());
            if e.use_stderr() {
                return ExitCode::from(1);
            }
            return ExitCode::from(output_code(printed, 0));
        }
    };
    let color = use_color(cli.color);
    let code = match run(cli) {
        Ok(out) => output_code(emit(&out, color), out.code),
        Err(e) => {
            // Errors quote names, subjects, paths and file contents: escaped whole, never styled.
            say(&format!("error: {}", escape_output(&e.to_string(), false)));
            1
        }
    };
    ExitCode::from(code)
}

/// The exit code once stdout was written: the command's `code`, or 1 (said on stderr) when
/// stdout could not be written or flushed. A closed pipe (`ravencert plan | head`) is not an
/// error: the reader has what it wanted, and the command exits as it would have.
fn output_code(written: std::io::Result<()>, code: u8) -> u8 {
    match written {
        Ok(()) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            say(&format!("error: cannot write the output: {e}"));
            1
        }
    }
}

/// One line on stderr. A line that cannot be written (`2>/dev/full`) cannot be reported
/// either: it is dropped, never a panic (`eprintln!` panics).
fn say(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}

/// A panic is a bug: it says where it happened and asks for a report, never what it carried.
/// The default hook prints the payload, and a payload can hold a value the program was handling
/// (a password file's bytes, a certificate's contents), which must never reach a terminal or a
/// CI log.
fn report_panic(info: &std::panic::PanicHookInfo<'_>) {
    let at = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    // Never `eprintln!` here: a panic inside the hook aborts.
    say(&format!(
        "error: ravencert stopped on an internal error (a panic in thread '{}'{at}). This is a bug: please report it with the command you ran and this line. Its message is not shown: it may hold a value ravencert was handling (a password or a key).",
        escape_output(thread, false)
    ));
}

/// Prints a command's output: stdout written and flushed, or why not ([`output_code`] makes
/// that exit 1, rather than 0 with a truncated file). stderr's own failures cannot be
/// reported, and are ignored.
///
/// The output boundary: every control, format (bidi, zero width) and separator character is
/// shown escaped (`\u{1b}`), whatever produced it. Newlines stay, and with color so do ANSI
/// color sequences: colored text is made only from values that render escaped before styling.
/// stderr is never styled.
fn emit(out: &Output, color: bool) -> std::io::Result<()> {
    let written = {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(escape_output(&out.stdout, color).as_bytes())
            .and_then(|()| stdout.flush())
    };
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(escape_output(&out.stderr, false).as_bytes());
    let _ = stderr.flush();
    written
}

/// The log writer of `watch`: each event line escaped like [`emit`]'s output. tracing formats
/// an event whole and writes it at once, and escapes ESC in the fields it prints itself, so the
/// color sequences kept are its own.
///
/// A log line that cannot be written (a full disk, a closed pipe) has nowhere to be reported:
/// it is dropped and the daemon goes on applying (its state stays on `/healthz` and
/// `/metrics`), rather than stop or panic over its log.
struct LogWriter {
    color: bool,
}

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let _ = std::io::stderr().write_all(escape_output(&text, self.color).as_bytes());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

fn use_color(choice: ColorChoice) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    match choice {
        _ if no_color => false,
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stdout().is_terminal(),
    }
}

fn run(cli: Cli) -> ops::Result<Output> {
    let ctx = Context {
        config: cli.config.clone(),
        store_override: cli.store.clone(),
        style: Style {
            color: use_color(cli.color),
        },
        now: now(),
        export_base: None,
        allowed_exports: Vec::new(),
        cluster_usage: false,
        policy: match &cli.command {
            Command::Validate { policy }
            | Command::Plan(PlanArgs { policy, .. })
            | Command::Apply(ApplyArgs { policy, .. })
            | Command::Watch(WatchArgs { policy, .. }) => policy.policy.clone(),
            _ => None,
        },
        prefetch: match &cli.command {
            Command::Plan(_) | Command::Apply(_) => ops::StorePrefetch::on(),
            _ => ops::StorePrefetch::default(),
        },
    };
    match cli.command {
        Command::Init => ops::init(&ctx),
        Command::Validate { .. } => ops::validate(&ctx),
        Command::Plan(a) => ops::plan(&ctx, &plan_request(a)),
        Command::Apply(a) => {
            let json = a.json;
            ops::apply(&ctx, &apply_request(a), &mut |plan, cluster| {
                confirm(plan, cluster, ctx.style, json)
            })
        }
        Command::Watch(a) => {
            let color = ctx.style.color;
            tracing_subscriber::fmt()
                .with_writer(move || LogWriter { color })
                .with_ansi(color)
                .with_target(false)
                // Its own report of a failed write is an `eprintln!`, which panics when stderr
                // fails too; LogWriter drops what it cannot write.
                .log_internal_errors(false)
                .init();
            ops::watch(&ctx, &watch_request(a))
        }
        Command::Status {
            json,
            html,
            offline,
        } => {
            let format = match (json, html) {
                (true, _) => ops::StatusFormat::Json,
                (_, true) => ops::StatusFormat::Html,
                _ => ops::StatusFormat::Text,
            };
            ops::status(&ctx, format, offline)
        }
        Command::Export { out } => ops::export(&ctx, out),
        Command::Adopt(a) => ops::adopt(
            &ctx,
            &ops::AdoptRequest {
                url: a.url,
                admin_certificate: a.admin_certificate,
                password_env: a.password_env,
                ca: a.ca,
            },
        ),
        Command::Settings => ops::settings(&ctx),
        Command::Schema { policy } => Ok(ops::schema(policy)),
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ravencert", &mut buf);
            Ok(Output::ok(String::from_utf8_lossy(&buf).into_owned()))
        }
        Command::Bundle { key, out } => ops::bundle(&ctx, &ops::BundleRequest { key, out }),
        Command::Man => Ok(Output::ok(ravencert::cli::man_page())),
    }
}

fn plan_request(a: PlanArgs) -> ops::PlanRequest {
    ops::PlanRequest {
        rev: a.rev,
        base: a.base,
        markdown: a.markdown,
        out: a.out,
        diff: a.diff,
        detailed_exitcode: a.detailed_exitcode,
        flags: ops::PlanFlags {
            replace: a.replace,
            allow_delete_all: a.allow_delete_all,
            offline: a.offline,
            json: a.json,
        },
    }
}

fn apply_request(a: ApplyArgs) -> ops::ApplyRequest {
    ops::ApplyRequest {
        require_clean: a.require_clean,
        planfile: a.planfile,
        yes: a.yes,
        lock_timeout: a.lock_timeout,
        flags: ops::PlanFlags {
            replace: a.replace,
            allow_delete_all: a.allow_delete_all,
            offline: a.offline,
            json: a.json,
        },
    }
}

fn watch_request(a: WatchArgs) -> ops::WatchRequest {
    let git = match (a.git, a.branch) {
        (Some(url), Some(branch)) => Some(GitFollow {
            url,
            branch,
            poll: a.poll,
        }),
        _ => None,
    };
    ops::WatchRequest {
        options: WatchOptions {
            interval: a.interval,
            plan_only: a.plan_only,
            git,
            lock_timeout: a.lock_timeout,
        },
        allow_export_path: a.allow_export_path,
        offline: a.offline,
        listen: a.listen,
        clock: now,
    }
}

/// The apply confirmation, asked on the terminal: only `yes` goes ahead. With `--json`, stdout
/// holds only the JSON document: the plan shown for confirmation and the question go to
/// stderr, which is the terminal a person reads.
fn confirm(plan: &Plan, cluster: &ClusterView, style: Style, json: bool) -> ops::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(ops::Error::NoTerminal);
    }
    let shown = format!(
        "{}\nDo you want to perform these actions? Only 'yes' will be accepted to approve.\n  Enter a value: ",
        render::plan_text(plan, style) + &render::cluster_text(cluster, style)
    );
    let shown = escape_output(&shown, style.color);
    if json {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(shown.as_bytes());
        let _ = err.flush();
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(shown.as_bytes());
        let _ = out.flush();
    }
    // An unreadable answer is no answer: the apply is cancelled.
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    Ok(answer.trim() == "yes")
}

/// The clock. `test-hooks` builds (the ones `cargo test` runs) honour RAVENCERT_TEST_NOW
/// (RFC 3339) so that tests can walk a certificate through its life; other builds never read it.
fn now() -> time::OffsetDateTime {
    // Whole seconds, as X.509 and the registry keep times.
    let t = clock();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn clock() -> time::OffsetDateTime {
    #[cfg(feature = "test-hooks")]
    if let Ok(t) = std::env::var("RAVENCERT_TEST_NOW") {
        if let Ok(t) =
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
        {
            return t;
        }
    }
    time::OffsetDateTime::now_utc()
}
