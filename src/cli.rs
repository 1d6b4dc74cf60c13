//! Command-line definitions (clap). Parsing only: each command maps to one operation in `ops`.

// The doc comments here are the --help text, where `[store].path` names a certs.toml table, not
// a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::model::Period;

/// The command line: global options and one command.
#[derive(Debug, Parser)]
#[command(
    name = "ravencert",
    version,
    // `--version` names the commit (build.rs) so that an audit log can say which build applied a
    // change; `version` stays plain for the man page header.
    long_version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("RAVENCERT_GIT_COMMIT"),
        ")"
    ),
    about = "GitOps for RavenDB certificates: declare them in certs.toml, review the plan, apply it",
    after_help = "Exit codes: 0 success, 1 error; plan --detailed-exitcode: 0 no changes, 2 changes, 1 error."
)]
pub struct Cli {
    /// Path of certs.toml
    #[arg(
        short,
        long,
        global = true,
        default_value = "certs.toml",
        value_name = "PATH"
    )]
    pub config: PathBuf,

    /// Store directory (overrides [store].path)
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// When to color output
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// When to color the output: `auto` colors a terminal; a set NO_COLOR turns color off always.
// Doc comments on the variants would become --help text (a described list of possible values);
// their names say what they do.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// One ravencert command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter certs.toml (refuses to overwrite)
    Init,
    /// Check certs.toml and the files it references (and policy.toml); change nothing
    Validate {
        /// `--policy FILE`.
        #[command(flatten)]
        policy: PolicyArg,
    },
    /// Show what apply would do; change nothing
    Plan(PlanArgs),
    /// Carry out the plan
    Apply(ApplyArgs),
    /// Show the store as RavenDB's Certificates view does (and whether the cluster holds it)
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
        /// The status page as one HTML document (no script, no external asset)
        #[arg(long, conflicts_with = "json")]
        html: bool,
        /// Read only the store; do not ask the cluster
        #[arg(long)]
        offline: bool,
    },
    /// Write the server certificate(s) export now
    Export {
        /// Where to write it (default: [server].export)
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Print the settings.json fragment for a new node: [server] install's path and the admin thumbprint
    Settings,
    /// Keep the store converged: file watch (or git polling) plus a periodic re-check
    Watch(WatchArgs),
    /// Write a certs.toml that declares a running cluster's registrations as they are
    Adopt(AdoptArgs),
    /// Print the JSON schema of certs.toml (or, with --policy, of policy.toml)
    Schema {
        /// The schema of policy.toml instead
        #[arg(long)]
        policy: bool,
    },
    /// Print shell completions
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Write the RavenDB-style zip of a generated client (<key>.pfx, .crt, .key), mode 0600
    Bundle {
        /// The client's key in certs.toml
        key: String,
        /// Where to write it (default: <KEY>.zip in the current folder); never overwritten
        #[arg(long, value_name = "FILE.zip")]
        out: Option<PathBuf>,
    },
    /// Print the man page (install: ravencert man > ~/.local/share/man/man1/ravencert.1)
    Man,
}

/// The options of `adopt`.
#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// A node of the cluster, https://HOST[:PORT]
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// A .pfx (with its key) the cluster accepts as an admin
    #[arg(long, value_name = "PFX")]
    pub admin_certificate: PathBuf,
    /// The environment variable holding the .pfx password
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// How to verify the node: `system` (default), or a PEM file of its CA or certificate
    #[arg(long, value_name = "system|PEM")]
    pub ca: Option<String>,
}

/// `--policy FILE`, of the commands that plan (validate, plan, apply, watch).
#[derive(Debug, Clone, Args)]
pub struct PolicyArg {
    /// The policy every plan must keep (default: policy.toml beside certs.toml, when there)
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

/// The options of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Read certs.toml (and the certificate files it names) at this git revision
    #[arg(long, value_name = "REV", conflicts_with = "base")]
    pub rev: Option<String>,
    /// Review mode: plan the change from certs.toml at REV to the working tree's, assuming the
    /// store matches REV (reads no store)
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Machine-readable output (format_version 1)
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// The plan as Markdown, for a pull-request comment
    #[arg(long)]
    pub markdown: bool,
    /// Save the plan to FILE for `ravencert apply FILE` (holds no secret)
    // Not with --base or --rev: a review plan is not the store's plan that apply checks it
    // against, and the saved plan's fingerprints would read files a review does not read.
    #[arg(long, value_name = "PLANFILE", conflicts_with_all = ["base", "rev"])]
    pub out: Option<PathBuf>,
    /// Add a unified diff of the registry before and after
    #[arg(long)]
    pub diff: bool,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Re-issue this client (or `server`) even if nothing else asks for it
    #[arg(long, value_name = "KEY")]
    pub replace: Vec<String>,
    /// Plan even when every registered client certificate would be deleted
    #[arg(long)]
    pub allow_delete_all: bool,
    /// Leave the cluster out: plan and apply the store only ([cluster] is not contacted)
    #[arg(long)]
    pub offline: bool,
    /// `--policy FILE`.
    #[command(flatten)]
    pub policy: PolicyArg,
}

/// The options of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `plan --out`: carried out exactly, or refused when stale
    #[arg(value_name = "PLANFILE")]
    pub planfile: Option<PathBuf>,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
    /// Machine-readable report
    #[arg(long)]
    pub json: bool,
    /// Re-issue this client (or `server`) even if nothing else asks for it
    #[arg(long, value_name = "KEY")]
    pub replace: Vec<String>,
    /// How long to wait for another apply to finish, e.g. 30s, 2min (default 0s)
    #[arg(long, value_name = "DUR", default_value = "0s", value_parser = lock_timeout)]
    pub lock_timeout: Duration,
    /// Allow a plan that deletes every registered client certificate
    #[arg(long)]
    pub allow_delete_all: bool,
    /// Refuse when certs.toml has uncommitted changes (the applied revision must name it)
    #[arg(long)]
    pub require_clean: bool,
    /// Leave the cluster out: plan and apply the store only ([cluster] is not contacted)
    #[arg(long)]
    pub offline: bool,
    /// `--policy FILE`.
    #[command(flatten)]
    pub policy: PolicyArg,
}

/// The options of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Re-check this often even when nothing changes (renewals), with ±10% jitter: 1h, 30min,
    /// 90s (from 10s to 1y)
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = interval)]
    pub interval: Duration,
    /// Only log what would change; never apply
    #[arg(long)]
    pub plan_only: bool,
    /// Follow this git repository (URL or local path); -c names certs.toml inside it
    #[arg(long, value_name = "URL", requires = "branch")]
    pub git: Option<String>,
    /// The branch to follow with --git
    #[arg(long, value_name = "NAME", requires = "git")]
    pub branch: Option<String>,
    /// How often to fetch with --git (from 1s to 1y)
    #[arg(
        long,
        value_name = "DUR",
        default_value = "60s",
        requires = "git",
        value_parser = poll
    )]
    pub poll: Duration,
    /// With --git, allow `[server].export` to name this path (or a file under this folder) even
    /// though it is absolute or uses `..`; repeatable. The commit alone cannot.
    #[arg(long, value_name = "PATH", requires = "git")]
    pub allow_export_path: Vec<PathBuf>,
    /// How long an apply waits for another one holding the store's lock
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = lock_timeout)]
    pub lock_timeout: Duration,
    /// Leave the cluster out: plan and apply the store only ([cluster] is not contacted)
    #[arg(long)]
    pub offline: bool,
    /// Serve /metrics (Prometheus), /healthz and a status page over HTTP at this address, e.g.
    /// 127.0.0.1:9464, or a port alone (9464, :9464) for loopback (read-only, no
    /// authentication, no secret; port 0 picks a free port)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// `--policy FILE`.
    #[command(flatten)]
    pub policy: PolicyArg,
}

/// The man page (roff), generated from this clap definition so that it never disagrees with
/// `--help` or the completions: the main page (synopsis, global options), a section per
/// command (its synopsis, description and own options), then the exit codes and version.
pub fn man_page() -> String {
    let mut cli = <Cli as clap::CommandFactory>::command();
    // Built, each command knows its full name (`ravencert plan`) and the global options.
    cli.build();
    let globals: Vec<clap::Id> = cli
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().clone())
        .collect();
    let man = clap_mangen::Man::new(cli.clone());
    let mut page = Vec::new();
    // Writing into memory cannot fail.
    let _ = man.render_title(&mut page);
    let _ = man.render_name_section(&mut page);
    let _ = man.render_synopsis_section(&mut page);
    let _ = man.render_description_section(&mut page);
    let _ = man.render_options_section(&mut page);
    for command in cli.get_subcommands().filter(|c| c.get_name() != "help") {
        // The global options are described once, above.
        let command = globals.iter().fold(command.clone(), |c, id| {
            c.mut_arg(id.clone(), |a| a.hide(true))
        });
        page.extend_from_slice(command_section(command).as_bytes());
    }
    let _ = man.render_extra_section(&mut page);
    let _ = man.render_version_section(&mut page);
    let text = String::from_utf8_lossy(&page).into_owned();
    // Each render part repeats the page's preamble (a string definition): keep the first.
    let preamble: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with(".ie \\n(.g .ds Aq") && !l.starts_with(".el .ds Aq"))
        .map(|l| format!("{l}\n"))
        .collect();
    preamble + &body
}

/// A command's section of the man page: its synopsis, description and options as subsections.
fn command_section(command: clap::Command) -> String {
    let name = command.get_name().to_uppercase();
    let man = clap_mangen::Man::new(command);
    let mut part = Vec::new();
    let _ = man.render_synopsis_section(&mut part);
    let _ = man.render_description_section(&mut part);
    let _ = man.render_options_section(&mut part);
    let mut out = format!(".SH \"RAVENCERT {name}\"\n");
    for line in String::from_utf8_lossy(&part).lines() {
        match line.strip_prefix(".SH ") {
            Some(title) => out.push_str(&format!(".SS {title}\n")),
            None => out.push_str(&format!("{line}\n")),
        }
    }
    out
}

// Durations on the command line use certs.toml's grammar (model::Period): a whole number with
// s, min, h, d, w, mo or y. Each is bounded: nothing waits or repeats more than once a year, and
// the watch loop's periods have a floor so that a typo (`--interval 0s`) cannot make it spin.

/// The shortest `watch --interval`: a re-check reads the store and plans, and is meant for
/// renewals, which are days away.
pub(crate) const MIN_INTERVAL: Period = Period::seconds(10);
/// The shortest `watch --poll`: each poll is a git fetch.
pub(crate) const MIN_POLL: Period = Period::seconds(1);
/// The longest duration any option takes.
const MAX_DURATION: Period = Period::days(365);

fn bounded(text: &str, min: Period) -> Result<Duration, String> {
    Period::parse_within(text, min, MAX_DURATION).map(Period::as_std)
}

fn interval(text: &str) -> Result<Duration, String> {
    bounded(text, MIN_INTERVAL)
}

fn poll(text: &str) -> Result<Duration, String> {
    bounded(text, MIN_POLL)
}

fn lock_timeout(text: &str) -> Result<Duration, String> {
    bounded(text, Period::seconds(0))
}
