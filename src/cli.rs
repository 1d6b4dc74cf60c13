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
    /// Check certs.toml and the files it references; change nothing
    Validate,
    /// Show what apply would do; change nothing
    Plan(PlanArgs),
    /// Carry out the plan
    Apply(ApplyArgs),
    /// Show the store as RavenDB's Certificates view does (and whether the cluster holds it)
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
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
    /// Print the JSON schema of certs.toml
    Schema,
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
    #[arg(long, value_name = "PLANFILE")]
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
