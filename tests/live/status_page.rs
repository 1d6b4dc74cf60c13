//! The status page (docs/contract.md §9, issue 15) in a real browser: `status --html` for a store
//! with several clients, one of them named `<script>alert(1)</script>`, loaded by headless Chromium
//! (Debian's `chromium`, installed by .ci/run), from the file and as `watch --listen` serves it
//! at `/`. The rendered DOM has a row per certificate and the hostile name as text; screenshots
//! at 1280 and 390 px wide are kept under target/status-page/ as a CI artifact. Without a
//! working Chromium the test fails, saying why.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::daemon::{http_get, wait_until};
use crate::common::{Env, SERVER};

const HOSTILE: &str = "<script>alert(1)</script>";

/// target/status-page/, beside the tests' own temp folder (target/tmp).
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("status-page");
    std::fs::create_dir_all(&dir).expect("create target/status-page");
    dir
}

/// Runs Chromium headless on `page` (a file:// or http:// URL) with `args`, in a fresh
/// profile, killed after 90 s.
fn chromium(page: &str, args: &[String]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(page)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot start chromium ({e}): install Debian's `chromium` package (.ci/run does)")
    });
    let start = Instant::now();
    while child.try_wait().expect("wait for chromium").is_none() {
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("chromium output");
            panic!(
                "chromium {args:?} did not finish in 90 s; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("chromium output");
    assert!(
        out.status.success(),
        "chromium {args:?} failed ({}); stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the DOM is UTF-8")
}

/// A screenshot `width` px wide, tall enough for the whole page (cards stack on a phone).
fn screenshot(page: &str, png: &Path, width: u32, height: u32) {
    chromium(
        page,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={width},{height}"),
        ],
    );
    let size = std::fs::metadata(png)
        .unwrap_or_else(|e| panic!("no screenshot {} ({e})", png.display()))
        .len();
    assert!(size > 10_000, "{} is {size} bytes: blank?", png.display());
    let head = std::fs::read(png).expect("read the screenshot");
    assert!(
        head.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        png.display()
    );
}

/// A store with the server and four clients; `status --html` 35 days later, when `ops` (40 days
/// of validity) is inside its 30-day renewal window.
fn page(env: &Env) -> String {
    four_clients(env);
    env.run(&["apply", "--yes"]).success();
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(35))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format a time");
    let run = env
        .run_with(&["status", "--html"], &[("RAVENCERT_TEST_NOW", &later)])
        .success();
    assert!(run.stderr.is_empty(), "{}", run.shown());
    run.stdout
}

/// certs.toml: the server and four clients, one with the hostile name.
fn four_clients(env: &Env) {
    env.config(&format!(
        r#"{SERVER}
[clients.admin]
clearance = "ClusterAdmin"

[clients.app]
name = "{HOSTILE}"
clearance = "ValidUser"
databases = {{ Orders = "ReadWrite", Invoices = "Read" }}

[clients.ops]
clearance = "Operator"
validity = "40d"
renew_before = "30d"

[clients.reports]
clearance = "ValidUser"
databases = {{ Reports = "Read" }}
"#
    ));
}

/// The checks every rendering of the four-client store passes: a row per certificate, the
/// hostile name as text and no script element, one timeline mark per certificate.
#[track_caller]
fn assert_rows_and_text(dom: &str) {
    // The server row and one per client.
    assert_eq!(dom.matches("<tr class=\"cert").count(), 5, "{dom}");
    for name in ["cluster.example.com", "admin", "ops", "reports"] {
        assert!(
            dom.contains(&format!("class=\"name\">{name}</td>")),
            "{name}: {dom}"
        );
    }
    // The hostile name is text: serialized escaped, and no script element exists at all.
    assert!(
        dom.contains("class=\"name\">&lt;script&gt;alert(1)&lt;/script&gt;</td>"),
        "{dom}"
    );
    assert!(!dom.to_ascii_lowercase().contains("<script"), "{dom}");
    assert!(
        dom.contains("Orders: <span class=\"access\">ReadWrite</span>"),
        "{dom}"
    );
    // The timeline: one mark per certificate.
    assert_eq!(dom.matches("class=\"mark ").count(), 5, "{dom}");
}

#[test]
fn the_status_page_renders_in_chromium_with_every_certificate_and_the_hostile_name_as_text() {
    let env = Env::new();
    let html = page(&env);
    let dir = artifacts();
    let file = dir.join("status.html");
    std::fs::write(&file, &html).expect("write the page");

    let url = format!("file://{}", file.display());
    let dom = chromium(&url, &["--dump-dom".to_string()]);
    std::fs::write(dir.join("status.dom.html"), &dom).expect("write the DOM");
    assert_rows_and_text(&dom);
    assert!(dom.contains("renew due"), "{dom}");

    screenshot(&url, &dir.join("status-1280.png"), 1280, 1100);
    screenshot(&url, &dir.join("status-390.png"), 390, 3000);
}

#[test]
fn the_daemon_serves_the_page_with_its_last_apply_to_chromium() {
    let env = Env::new();
    four_clients(&env);
    let d = env
        .cmd(&["watch", "--listen", "127.0.0.1:0", "--interval", "10s"])
        .spawn("watch");
    let addr = d.listening();
    wait_until(
        "the page shows the first apply",
        || d.context(),
        || {
            http_get(addr, "/")
                .is_some_and(|(code, body)| code == 200 && body.contains("succeeded"))
        },
    );
    let url = format!("http://{addr}/");
    let dom = chromium(&url, &["--dump-dom".to_string()]);
    let dir = artifacts();
    std::fs::write(dir.join("daemon.dom.html"), &dom).expect("write the DOM");
    assert_rows_and_text(&dom);
    // The daemon's last apply: when, succeeded, and the revision (none: not a git work tree).
    assert!(dom.contains("<h2>Last apply</h2>"), "{dom}");
    assert!(dom.contains("badge ok\">succeeded"), "{dom}");

    screenshot(&url, &dir.join("daemon-1280.png"), 1280, 1100);
    screenshot(&url, &dir.join("daemon-390.png"), 390, 3000);
}

#[test]
fn html_conflicts_with_json() {
    let env = Env::new();
    env.config(SERVER);
    let r = env.run(&["status", "--html", "--json"]).failure();
    assert!(r.stderr.contains("cannot be used with"), "{}", r.shown());
}

/// The page's banner, None when it has none.
fn banner(page: &str) -> Option<&str> {
    let start = page.find("<section class=\"banner\"")?;
    let end = page[start..]
        .find("</section>")
        .map_or(page.len(), |e| start + e);
    Some(&page[start..end])
}

#[test]
fn status_html_shows_a_banner_while_certs_toml_or_what_it_names_cannot_be_used() {
    let pw = "partner-pfx-4b2d";
    let env = Env::new().env("PARTNER_PFX_PASSWORD", pw);
    common::openssl::partner_upload(&env.path("trust"), pw);
    let config = format!(
        "{SERVER}\n[clients.partner]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\nupload = \"trust/partner.pfx\"\npassword_env = \"PARTNER_PFX_PASSWORD\"\n"
    );
    env.config(&config);
    env.run(&["apply", "--yes"]).success();
    let page = || env.run(&["status", "--html"]).success().stdout;
    assert_eq!(banner(&page()), None);

    // A variable certs.toml names is not set: named, without reading any secret.
    env.config(&config.replace("\"PARTNER_PFX_PASSWORD\"", "\"PARTNER_PFX_PASSWORD_TYPO\""));
    let shown = page();
    let b = banner(&shown).unwrap_or_else(|| panic!("no banner: {shown}"));
    assert!(
        b.contains("environment variable PARTNER_PFX_PASSWORD_TYPO is not set"),
        "{b}"
    );
    // The upload is gone.
    env.config(&config);
    std::fs::remove_file(env.path("trust/partner.pfx")).expect("remove the upload");
    let shown = page();
    let b = banner(&shown).unwrap_or_else(|| panic!("no banner: {shown}"));
    assert!(b.contains("trust/partner.pfx does not exist"), "{b}");
    // certs.toml does not parse: the store is still shown, under the banner.
    env.config("version = 1\n[clients.x\n");
    let shown = page();
    let b = banner(&shown).unwrap_or_else(|| panic!("no banner: {shown}"));
    assert!(b.contains("certs.toml:2:"), "{b}");
    assert!(shown.contains("class=\"name\">partner</td>"), "{shown}");
}
