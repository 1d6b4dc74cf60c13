//! Output escaping (issue 11, findings 8 and 9): names, certificate subjects, database names
//! and paths come from files a reviewer does not read byte by byte (an uploaded .pfx is binary,
//! the registry can be hand-edited). None of their control, bidi or format characters reaches
//! the terminal raw — plan text, status, error messages and watch logs show them as visible
//! `\u{..}` text — and none of their Markdown reaches a pull-request comment as markup.

use crate::common;

use crate::common::{assert_no_raw, Env, Run};

/// The CN of the hostile upload: clears the screen, prints a reassuring line, conceals what
/// follows, returns the cursor, and reverses the text direction.
const HOSTILE_CN: &str = "evil\u{1b}[2J\u{1b}[HNo changes.\u{1b}[8m\r\u{202e}x";

/// Writes trust/hostile.pem, a self-signed certificate whose CN is HOSTILE_CN (UTF-8).
fn hostile_upload(env: &Env) {
    common::self_signed(
        env.dir.path(),
        "trust/hostile.pem",
        "trust/hostile.key",
        HOSTILE_CN,
    );
}

fn hostile_config() -> String {
    format!(
        "{}\n[clients.partner]\nclearance = \"ClusterAdmin\"\nupload = \"trust/hostile.pem\"\n",
        common::SERVER
    )
}

#[test]
fn plan_text_shows_a_hostile_subject_escaped() {
    let env = Env::new();
    hostile_upload(&env);
    env.config(&hostile_config());
    let r = env.run(&["plan"]).success();
    assert_no_raw("plan", &r.stdout);
    assert!(
        r.stdout
            .contains("CN=evil\\u{1b}[2J\\u{1b}[HNo changes.\\u{1b}[8m\\u{d}\\u{202e}x"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("clearance: ClusterAdmin"), "{}", r.stdout);
    assert!(r.stdout.contains("[ESCALATION]"), "{}", r.stdout);

    // With color, ravencert's own color sequences are the only escape sequences.
    let r = env.run(&["plan", "--color", "always"]).success();
    let mut rest = r.stdout.as_str();
    while let Some(i) = rest.find('\u{1b}') {
        rest = &rest[i..];
        let end = rest.find('m').expect("an SGR sequence");
        let seq = &rest[..=end];
        assert!(
            seq[2..seq.len() - 1]
                .chars()
                .all(|c| c.is_ascii_digit() || c == ';')
                && !["\u{1b}[8m", "\u{1b}[2J"].contains(&seq),
            "foreign escape sequence {seq:?} in\n{}",
            r.stdout.escape_debug()
        );
        rest = &rest[end..];
    }
    assert!(
        r.stdout.contains("\\u{1b}[2J"),
        "{}",
        r.stdout.escape_debug()
    );
    assert!(!r.stdout.contains('\r') && !r.stdout.contains('\u{202e}'));
}

#[test]
fn status_shows_a_hand_edited_registry_name_escaped() {
    let env = Env::new();
    hostile_upload(&env);
    env.config(&hostile_config());
    env.run(&["apply", "--yes"]).success();
    let registry = env.store().join("registry.toml");
    let text = std::fs::read_to_string(&registry).unwrap();
    let edited = text.replacen(
        "name = \"partner\"",
        "name = \"part\\u001B[2J\\rner\\u202E\"",
        1,
    );
    assert_ne!(text, edited);
    std::fs::write(&registry, edited).unwrap();

    let r = env.run(&["status"]).success();
    assert_no_raw("status", &r.stdout);
    assert!(
        r.stdout.contains("part\\u{1b}[2J\\u{d}ner\\u{202e}"),
        "{}",
        r.stdout
    );
    // The subject of the upload, in plan and in the drift line naming the edit.
    let r = env.run(&["plan"]).success();
    assert_no_raw("plan", &r.stdout);
    assert!(r.stdout.contains("part\\u{1b}[2J\\u{d}ner\\u{202e}"));
}

#[test]
fn error_messages_show_control_and_bidi_characters_escaped() {
    let env = Env::new();
    env.config(&format!(
        "{}\n[clients.u]\nclearance = \"ValidUser\"\ndatabases = {{ \"Or\\u001B[2Jders\\r\\u202E\" = \"Read\" }}\n",
        common::SERVER
    ));
    let r = env.run(&["plan"]).failure();
    assert_no_raw("the error", &r.stderr);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(
        r.stderr.contains("Or\\u{1b}[2Jders\\u{d}\\u{202e}"),
        "{}",
        r.stderr
    );
}

#[test]
fn watch_logs_show_control_and_bidi_characters_escaped() {
    let env = Env::new();
    // tracing escapes ESC in log fields by itself; CR and the bidi override it lets through.
    env.config(&format!(
        "{}\n[clients.u]\nclearance = \"ValidUser\"\ndatabases = {{ \"Orders\\r\\u202E\\u001B[8m\" = \"Read\" }}\n",
        common::SERVER
    ));
    let mut d = env
        .cmd(&["watch", "--plan-only", "--interval", "1h"])
        .spawn("watch");
    d.wait_log("certs.toml is invalid");
    d.terminate();
    let text = d.log();
    assert_no_raw("the watch log", &text);
    assert!(text.contains("Orders\\u{d}\\u{202e}"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Markdown (finding 9), checked with a real GFM renderer.

/// Client names (64 characters at most) that try every Markdown trick; certs.toml lets all of
/// them through `name`, which only refuses control characters.
const MD_NAMES: &[&str] = &[
    "x` <img src=x onerror=alert(1)> `",
    "a \\| clearance: Operator | b",
    "[docs](https://evil.example/) ![i](https://evil.example/i.png)",
    "<a href=\"https://evil.example\">ok</a>",
    "www.evil.example or https://evil.example or me@evil.example",
    "**bold** _it_ ~~gone~~ # h &lt;b&gt; <!-- hide",
    "\\`` ``` [^1] [x]: https://evil.example",
];

#[test]
fn plan_markdown_escapes_hostile_names_and_subjects() {
    let env = Env::new();
    hostile_upload(&env);
    let mut config = hostile_config();
    for (i, name) in MD_NAMES.iter().enumerate() {
        let toml_name = toml::Value::String(name.to_string()).to_string();
        config.push_str(&format!(
            "\n[clients.c{i}]\nclearance = \"ClusterAdmin\"\nname = {toml_name}\n"
        ));
    }
    env.config(&config);
    let r = env.run(&["plan", "--markdown"]).success();
    assert_no_raw("plan --markdown", &r.stdout);
    let html = common::gfm(&r.stdout);
    let shown = format!("markdown:\n{}\nhtml:\n{html}", r.stdout);

    // No HTML from values: the only tags are those of the layout.
    for tag in [
        "<img",
        "<a ",
        "<a>",
        "<!--",
        "<del",
        "<strong>bold",
        "<em>it",
        "<h1",
    ] {
        assert!(!html.contains(tag), "{tag} in the rendered plan\n{shown}");
    }
    // Code spans are ravencert's action symbols only.
    for code in html.split("<code>").skip(1) {
        let inner = code.split("</code>").next().unwrap();
        assert!(
            ["+", "~", "-/+", "-", "&gt;"].contains(&inner),
            "a code span from a value: {inner:?}\n{shown}"
        );
    }
    assert!(!html.contains("<sup"), "a footnote\n{shown}");
    // Every row of the table has its six cells.
    let rows: Vec<&str> = html.split("<tr>").skip(1).collect();
    // The header, the server, its export, the upload and the named clients.
    assert_eq!(rows.len(), 4 + MD_NAMES.len(), "{shown}");
    for row in &rows {
        let cells = row.matches("<td").count() + row.matches("<th").count();
        assert_eq!(cells, 6, "a row with {cells} cells: {row}\n{shown}");
    }
    // What the reviewer must see is there, and reads as written.
    assert!(html.contains("clearance: ClusterAdmin"), "{shown}");
    for name in MD_NAMES {
        let as_html = name
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;");
        assert!(
            html.contains(&as_html),
            "{name:?} is not shown as written\n{shown}"
        );
    }
    assert!(
        html.contains("CN=evil\\u{1b}[2J\\u{1b}[HNo changes.\\u{1b}[8m\\u{d}\\u{202e}x"),
        "{shown}"
    );
}

/// The pipes of a Markdown table row that split cells under GitHub's table rule (cmark-gfm's
/// `scan_table_cell`: a backslash escapes the next character, so in `\\|` the pipe is real).
fn cell_breaks(line: &str) -> usize {
    let mut breaks = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '|' => breaks += 1,
            _ => {}
        }
    }
    breaks
}

/// `\|` in a value used to become `\\|`: a real cell break on GitHub that moves
/// `clearance: ClusterAdmin` out of the Changes column.
#[test]
fn a_backslash_pipe_cannot_hide_the_clearance() {
    let env = Env::new();
    env.config(&format!(
        "{}\n[clients.app]\nclearance = \"ClusterAdmin\"\nname = 'x\\| hidden \\|'\n",
        common::SERVER
    ));
    let r: Run = env.run(&["plan", "--markdown"]).success();
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with('|') && l.contains("hidden"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert_eq!(cell_breaks(line), 7, "{line}");
    // And as comrak renders it.
    let html = common::gfm(&r.stdout);
    let row = html
        .split("<tr>")
        .find(|r| r.contains("hidden"))
        .unwrap_or_else(|| panic!("{html}"));
    assert_eq!(row.matches("<td").count(), 6, "{row}\n{html}");
    assert!(row.contains("x\\| hidden \\|"), "{row}");
    assert!(row.contains("clearance: ClusterAdmin"), "{row}");
}
