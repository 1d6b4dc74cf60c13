//! Outputs reviewed as text: insta snapshots with the values that change from run to run
//! (thumbprints, dates, days left, pinning hashes, the temp folder) replaced by placeholders.

use super::Env;

/// The placeholders of the plan snapshots: the temp folder, thumbprints, timestamps and pinning
/// hashes. (Their .snap files were written with exactly these.)
pub fn filters(env: &Env) -> Vec<(String, String)> {
    vec![
        (
            regex::escape(&env.dir.path().display().to_string()),
            "[TEMP]".into(),
        ),
        (r"[0-9A-F]{40}".into(), "[THUMBPRINT]".into()),
        (
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z".into(),
            "[DATE]".into(),
        ),
        (r"[A-Za-z0-9+/]{43}=".into(), "[PINNING_HASH]".into()),
    ]
}

/// [`filters`], plus the calendar days and days left of status tables.
pub fn status_filters(env: &Env) -> Vec<(String, String)> {
    let mut f = filters(env);
    f.push((r"\d{4}-\d{2}-\d{2}".into(), "[DAY]".into()));
    f.push((r"\(\d+ days? left\)".into(), "([N] days left)".into()));
    f
}

/// Compares `text` with tests/snapshots/NAME.snap, through `filters`.
#[track_caller]
pub fn assert_review(name: &str, text: &str, filters: &[(String, String)]) {
    let refs: Vec<(&str, &str)> = filters
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    insta::with_settings!({ filters => refs, snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, text);
    });
}
