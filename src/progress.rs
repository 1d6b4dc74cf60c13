//! A progress bar for long applies, on a terminal only (never in logs, pipes or CI).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Below this many certificates an apply is quick enough to need no bar.
const WORTH_A_BAR: u64 = 8;

/// A bar of `len` steps titled `what`, drawn on stderr; hidden off a terminal or for a short
/// apply.
pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    if len < WORTH_A_BAR || !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta} left)") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}
