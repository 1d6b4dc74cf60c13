//! `watch --listen` (docs/contract.md §9): `/metrics` scraped and parsed as Prometheus text, one
//! expiry series per registered certificate; `/healthz` and `ravencert_last_apply_success` through
//! a failing apply and its recovery; `ravencert_config_valid` and the page's banner while
//! certs.toml, or a file or secret it names, cannot be used; and hostile clients (idle
//! connections, a huge request, a slow-loris) that neither stop an apply nor grow the daemon's
//! memory.

use crate::common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::daemon::{http_get as get, wait_until, Daemon};
use crate::common::{save_by_rename, Env, SERVER};
use prometheus_parse::{Scrape, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// certs.toml: the server, an admin and an app, and `extra`.
fn config(extra: &str) -> String {
    format!(
        "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\n\n[clients.app]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\n{extra}"
    )
}

/// `watch --listen 127.0.0.1:0` and the address it logs.
fn start(env: &Env) -> (Daemon, SocketAddr) {
    let d = env
        .cmd(&["watch", "--listen", "127.0.0.1:0", "--interval", "10s"])
        .spawn("watch");
    let addr = d.listening();
    (d, addr)
}

/// `/metrics`, parsed.
fn scrape(addr: SocketAddr) -> Option<Scrape> {
    let (code, body) = get(addr, "/metrics")?;
    assert_eq!(code, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).ok()
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => *x,
        other => panic!("not a number: {other:?}"),
    }
}

/// The value of the unlabelled series `name`, if it is there.
fn single(s: &Scrape, name: &str) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name)
        .map(|x| number(&x.value))
}

fn unix(rfc3339: &serde_json::Value) -> f64 {
    let t = OffsetDateTime::parse(rfc3339.as_str().expect("a date"), &Rfc3339).expect("RFC 3339");
    t.unix_timestamp() as f64
}

/// Waits until `/metrics` shows `series` at `value` (and `/healthz` answers `code`).
#[track_caller]
fn wait_for(d: &Daemon, addr: SocketAddr, series: &str, value: f64, code: u16) {
    wait_until(
        &format!("{series} = {value} and /healthz {code}"),
        || d.context(),
        || {
            scrape(addr).is_some_and(|s| single(&s, series) == Some(value))
                && get(addr, "/healthz").is_some_and(|(c, _)| c == code)
        },
    );
}

#[test]
fn metrics_show_one_expiry_series_per_registered_certificate() {
    let env = Env::new();
    env.config(&config(""));
    let (d, addr) = start(&env);
    wait_for(&d, addr, "ravencert_last_apply_success", 1.0, 200);

    let status = env.status();
    let scrape = scrape(addr).expect("a scrape");
    let not_after: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "ravencert_certificate_not_after_seconds")
        .collect();
    let mut registered = vec![("server", &status["server"][0])];
    for c in status["certificates"].as_array().expect("certificates") {
        registered.push((c["key"].as_str().expect("key"), c));
    }
    assert_eq!(not_after.len(), registered.len(), "{not_after:#?}");
    for (key, entry) in registered {
        let thumbprint = entry["thumbprint"].as_str().expect("thumbprint");
        let series: Vec<_> = not_after
            .iter()
            .filter(|s| s.labels.get("thumbprint") == Some(thumbprint))
            .collect();
        assert_eq!(series.len(), 1, "{key}: {not_after:#?}");
        assert_eq!(series[0].labels.get("key"), Some(key));
        assert_eq!(number(&series[0].value), unix(&entry["not_after"]), "{key}");
    }
    for name in [
        "ravencert_last_check_timestamp_seconds",
        "ravencert_last_apply_timestamp_seconds",
    ] {
        assert!(single(&scrape, name).is_some(), "{name} missing");
    }
    let (code, page) = get(addr, "/").expect("the page");
    assert_eq!(code, 200);
    // The status page: a row per certificate and the last apply.
    assert_eq!(page.matches("<tr class=\"cert").count(), 3, "{page}");
    assert!(page.contains("class=\"name\">app</td>"), "{page}");
    assert!(page.contains("badge ok\">succeeded"), "{page}");
    assert_eq!(get(addr, "/nothing").map(|(c, _)| c), Some(404));
}

#[test]
fn a_failing_apply_turns_health_red_until_it_recovers() {
    let env = Env::new();
    env.config(&config(""));
    let (d, addr) = start(&env);
    wait_for(&d, addr, "ravencert_last_apply_success", 1.0, 200);

    // Nothing listens on port 1: the cluster cannot be read, so the apply fails whole.
    let unreachable = "\n[cluster]\nurls = [\"https://127.0.0.1:1\"]\nadmin = \"admin\"\n";
    let path = env.path("certs.toml");
    d.save_until(
        "the failing apply to show in /metrics",
        || save_by_rename(&path, &config(unreachable)),
        || scrape(addr).is_some_and(|s| single(&s, "ravencert_last_apply_success") == Some(0.0)),
    );
    let (code, reason) = get(addr, "/healthz").expect("healthz");
    assert_eq!(code, 503, "{reason}");
    assert!(reason.contains("the last apply failed"), "{reason}");
    assert!(reason.contains("127.0.0.1:1"), "{reason}");
    assert_eq!(reason.trim_end().lines().count(), 1, "{reason}");
    let failures = scrape(addr)
        .expect("a scrape")
        .samples
        .into_iter()
        .find(|s| {
            s.metric == "ravencert_applies_total" && s.labels.get("result") == Some("failure")
        })
        .map(|s| number(&s.value));
    assert!(failures.is_some_and(|n| n >= 1.0), "{failures:?}");
    // The page says so too, with the reason.
    let (_, page) = get(addr, "/").expect("the page");
    assert!(page.contains("badge bad\">failed"), "{page}");
    assert!(page.contains("127.0.0.1:1"), "{page}");

    save_by_rename(&path, &config(""));
    wait_for(&d, addr, "ravencert_last_apply_success", 1.0, 200);
    let (_, page) = get(addr, "/").expect("the page");
    assert!(page.contains("badge ok\">succeeded"), "{page}");
}

/// The uploaded partner's .pfx password, in the daemon's environment as PARTNER_PFX_PASSWORD.
const PARTNER_PW: &str = "partner-pfx-6c1e";

/// certs.toml with `partner`, uploaded from trust/partner.pfx whose password is in `variable`.
fn upload_config(variable: &str) -> String {
    config(&format!(
        "\n[clients.partner]\nclearance = \"ValidUser\"\ndatabases = {{ Orders = \"Read\" }}\nupload = \"trust/partner.pfx\"\npassword_env = \"{variable}\"\n"
    ))
}

/// The page's banner (None when it has none), fetched with a plain GET.
fn banner(addr: SocketAddr) -> Option<String> {
    let (code, page) = get(addr, "/").expect("the page");
    assert_eq!(code, 200, "{page}");
    let start = page.find("<section class=\"banner\"")?;
    let end = page[start..]
        .find("</section>")
        .map_or(page.len(), |e| start + e);
    Some(page[start..end].to_string())
}

/// Waits for `ravencert_config_valid` at `valid` (and `/healthz` 200 or 503 with it).
#[track_caller]
fn wait_config(d: &Daemon, addr: SocketAddr, valid: bool) {
    let (value, code) = if valid { (1.0, 200) } else { (0.0, 503) };
    wait_for(d, addr, "ravencert_config_valid", value, code);
}

#[test]
fn config_valid_and_the_page_banner_say_what_cannot_be_used_until_it_is_fixed() {
    let env = Env::new().env("PARTNER_PFX_PASSWORD", PARTNER_PW);
    common::openssl::partner_upload(&env.path("trust"), PARTNER_PW);
    let good = upload_config("PARTNER_PFX_PASSWORD");
    env.config(&good);
    let (d, addr) = start(&env);
    wait_config(&d, addr, true);
    wait_for(&d, addr, "ravencert_last_apply_success", 1.0, 200);
    assert_eq!(banner(addr), None);
    let path = env.path("certs.toml");
    let (pfx, away) = (env.path("trust/partner.pfx"), env.path("partner.pfx.away"));

    // (a) The upload file is gone.
    d.save_until(
        "config_valid 0 for the missing upload",
        || {
            if pfx.exists() {
                std::fs::rename(&pfx, &away).expect("move the upload away");
            }
        },
        || scrape(addr).is_some_and(|s| single(&s, "ravencert_config_valid") == Some(0.0)),
    );
    let (code, reason) = get(addr, "/healthz").expect("healthz");
    assert_eq!(code, 503, "{reason}");
    assert!(
        reason.contains("trust/partner.pfx does not exist"),
        "{reason}"
    );
    assert!(!reason.contains("certs.toml is invalid"), "{reason}");
    let shown = banner(addr).unwrap_or_else(|| panic!("no banner\n{}", d.context()));
    assert!(
        shown.contains("trust/partner.pfx does not exist"),
        "{shown}"
    );
    assert!(shown.contains("clients.partner.upload"), "{shown}");
    std::fs::rename(&away, &pfx).expect("put the upload back");
    wait_config(&d, addr, true);
    assert_eq!(banner(addr), None);

    // (b) The variable holding the upload's password is not set (a typo in certs.toml): the
    // upload cannot be read, so nothing can be planned.
    save_by_rename(&path, &upload_config("PARTNER_PFX_PASSWORD_TYPO"));
    wait_config(&d, addr, false);
    let (_, reason) = get(addr, "/healthz").expect("healthz");
    let named = "environment variable PARTNER_PFX_PASSWORD_TYPO is not set";
    assert!(reason.contains(named), "{reason}");
    assert!(!reason.contains("certs.toml is invalid"), "{reason}");
    let shown = banner(addr).unwrap_or_else(|| panic!("no banner\n{}", d.context()));
    assert!(shown.contains(named), "{shown}");
    assert!(!shown.contains(PARTNER_PW), "{shown}");
    save_by_rename(&path, &good);
    wait_config(&d, addr, true);
    assert_eq!(banner(addr), None);

    // (c) certs.toml does not parse: the banner says where (escaping: render::html's tests).
    save_by_rename(&path, "version = 1\n[clients.x\n");
    wait_config(&d, addr, false);
    let (_, reason) = get(addr, "/healthz").expect("healthz");
    assert!(reason.contains("certs.toml is invalid"), "{reason}");
    let shown = banner(addr).unwrap_or_else(|| panic!("no banner\n{}", d.context()));
    assert!(shown.contains("certs.toml:2:"), "{shown}");
    save_by_rename(&path, &good);
    wait_config(&d, addr, true);
    assert_eq!(banner(addr), None);
    // Nothing of this was an apply that failed.
    let s = scrape(addr).expect("a scrape");
    assert_eq!(single(&s, "ravencert_last_apply_success"), Some(1.0));
}

#[test]
fn a_daemon_started_with_a_missing_secret_says_config_valid_0_from_its_first_check() {
    let env = Env::new();
    common::openssl::partner_upload(&env.path("trust"), PARTNER_PW);
    env.config(&upload_config("PARTNER_PFX_PASSWORD"));
    let (d, addr) = start(&env);
    wait_config(&d, addr, false);
    let (_, reason) = get(addr, "/healthz").expect("healthz");
    assert!(
        reason.contains("environment variable PARTNER_PFX_PASSWORD is not set"),
        "{reason}"
    );
    // No apply ran: its series stays out rather than claim one.
    let s = scrape(addr).expect("a scrape");
    assert_eq!(single(&s, "ravencert_last_apply_success"), None);
}

/// The daemon's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn hostile_clients_neither_stop_an_apply_nor_grow_memory() {
    let env = Env::new();
    env.config(&config(""));
    let (d, addr) = start(&env);
    wait_for(&d, addr, "ravencert_last_apply_success", 1.0, 200);
    let rss_before = rss_kib(d.id());

    // The slow-loris and the huge request connect first, so that they, not idle connections,
    // hold slots.
    let mut loris = TcpStream::connect(addr).expect("connect the slow-loris");
    let mut huge = TcpStream::connect(addr).expect("connect the huge request");
    // A slow-loris: a byte a second, for longer than any request may take. Returns how long
    // the daemon let it go on and what it answered.
    let loris = std::thread::spawn(move || -> (Duration, String) {
        let started = Instant::now();
        let mut answer = Vec::new();
        for b in b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if started.elapsed() > Duration::from_secs(40) || loris.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            // The daemon's 408 shows as readable data.
            loris.set_nonblocking(true).expect("nonblocking");
            let mut buf = [0u8; 256];
            let read = std::io::Read::read(&mut loris, &mut buf);
            loris.set_nonblocking(false).expect("blocking");
            if let Ok(n) = read {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
        }
        (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    });
    // A 10 MB request head: cut off long before it is all sent.
    let huge = std::thread::spawn(move || -> usize {
        huge.set_write_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut sent = 0;
        if huge.write_all(b"GET /").is_ok() {
            for chunk in vec![b'a'; 10 << 20].chunks(64 * 1024) {
                if huge.write_all(chunk).is_err() {
                    break;
                }
                sent += chunk.len();
            }
        }
        sent
    });
    // 100 idle connections, held open to the end.
    let idle: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert_eq!(idle.len(), 100);

    // An edit is applied while they hang on.
    let applied = d.count("change: applied");
    let path = env.path("certs.toml");
    d.save_until(
        "the edit to be applied",
        || {
            save_by_rename(
                &path,
                &config("\n[clients.new]\nclearance = \"Operator\"\n"),
            )
        },
        || d.count("change: applied") > applied,
    );

    // With the idle connections still open, the listener answers again once their slots time
    // out (5 s without a byte; the head's deadline is 10 s).
    let waited = Instant::now();
    wait_until(
        "/healthz to answer while the idle connections are held",
        || d.context(),
        || get(addr, "/healthz").is_some_and(|(c, _)| c == 200),
    );
    assert!(
        waited.elapsed() < Duration::from_secs(16),
        "{:?}",
        waited.elapsed()
    );
    let (loris_lasted, loris_answer) = loris.join().expect("the loris thread");
    assert!(
        loris_lasted < Duration::from_secs(16),
        "the slow-loris went on for {loris_lasted:?}"
    );
    assert!(
        loris_answer.starts_with("HTTP/1.1 408"),
        "the slow-loris got {loris_answer:?}"
    );
    let huge_sent = huge.join().expect("the huge-request thread");
    assert!(huge_sent < 10 << 20, "all 10 MB were taken");
    assert!(
        scrape(addr).is_some_and(|s| s.samples.iter().any(|x| x.labels.get("key") == Some("new"))),
        "the new client is not in /metrics"
    );
    let rss_after = rss_kib(d.id());
    assert!(
        rss_after < rss_before + 16 * 1024,
        "VmRSS {rss_before} -> {rss_after} KiB\n{}",
        d.context()
    );
    drop(idle);
}

#[test]
fn renewal_due_follows_status_marks_with_plan_only() {
    let env = Env::new();
    env.config(&config(""));
    env.run(&["apply", "--yes"]).success();
    let status = env.status();
    // A day before the server certificate expires: inside its renewal window, the clients not.
    let not_after = OffsetDateTime::parse(
        status["server"][0]["not_after"].as_str().expect("a date"),
        &Rfc3339,
    )
    .expect("RFC 3339");
    let now = (not_after - time::Duration::days(1))
        .format(&Rfc3339)
        .expect("formats");
    let d = env
        .cmd(&[
            "watch",
            "--plan-only",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "10s",
        ])
        .env("RAVENCERT_TEST_NOW", &now)
        .spawn("watch");
    let addr = d.listening();
    wait_until(
        "the plan-only check in /metrics",
        || d.context(),
        || {
            scrape(addr)
                .is_some_and(|s| single(&s, "ravencert_last_check_timestamp_seconds").is_some())
        },
    );
    let scrape = scrape(addr).expect("a scrape");
    let due = |key: &str| {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "ravencert_certificate_renewal_due" && s.labels.get("key") == Some(key)
            })
            .map(|s| number(&s.value))
    };
    assert_eq!(due("server"), Some(1.0), "{:#?}", scrape.samples);
    assert_eq!(due("admin"), Some(0.0), "{:#?}", scrape.samples);
    // Plan only: nothing applied, nothing failed.
    assert_eq!(single(&scrape, "ravencert_last_apply_success"), None);
    assert_eq!(get(addr, "/healthz").map(|(c, _)| c), Some(200));
    let (_, page) = get(addr, "/").expect("the page");
    assert!(page.contains(">renew due<"), "{page}");

    // An invalid edit: unhealthy, but the renewal marks stay those of the last valid certs.toml
    // (an alert on renewal_due must not resolve because the file broke).
    save_by_rename(&env.path("certs.toml"), "version = 1\n[clients.x\n");
    wait_until(
        "/healthz to report the invalid certs.toml",
        || d.context(),
        || get(addr, "/healthz").is_some_and(|(c, b)| c == 503 && b.contains("invalid")),
    );
    let scrape = self::scrape(addr).expect("a scrape");
    let due = scrape.samples.iter().find(|s| {
        s.metric == "ravencert_certificate_renewal_due" && s.labels.get("key") == Some("server")
    });
    assert_eq!(
        due.map(|s| number(&s.value)),
        Some(1.0),
        "{:#?}",
        scrape.samples
    );
}

/// Issue 25's acceptance: `watch` ends a client's access within 2 s of its `until`, not an
/// `--interval` later, and `/metrics` shows when it ends before it does. Real clock.
#[test]
fn watch_ends_access_within_two_seconds_of_until() {
    let env = Env::new();
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("whole second");
    let until = now + time::Duration::seconds(8);
    let shown = until.format(&Rfc3339).expect("formats");
    env.config(&config(&format!(
        "\n[clients.temp]\nclearance = \"ValidUser\"\nuntil = \"{shown}\"\n"
    )));
    let d = env
        .cmd(&["watch", "--listen", "127.0.0.1:0", "--interval", "1h"])
        .spawn("watch");
    let addr = d.listening();
    wait_for(&d, addr, "ravencert_last_apply_success", 1.0, 200);
    let scrape = scrape(addr).expect("a scrape");
    let series: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "ravencert_certificate_access_until_seconds")
        .collect();
    assert_eq!(series.len(), 1, "only temp has an until: {series:#?}");
    assert_eq!(series[0].labels.get("key"), Some("temp"));
    assert_eq!(number(&series[0].value), until.unix_timestamp() as f64);
    let registry = env.store().join("registry.toml");
    let holds_temp = || {
        std::fs::read_to_string(&registry)
            .expect("registry")
            .contains("key = \"temp\"")
    };
    assert!(holds_temp(), "issued before its until");
    // Poll the store until temp leaves it.
    let gone_at = loop {
        if !holds_temp() {
            break OffsetDateTime::now_utc();
        }
        assert!(
            OffsetDateTime::now_utc() < until + time::Duration::seconds(30),
            "temp still in the store 30 s after its until: {}",
            d.context()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        gone_at >= until,
        "removed before its until ({gone_at} < {until})"
    );
    assert!(
        gone_at <= until + time::Duration::seconds(2),
        "removed {} after its until: {}",
        gone_at - until,
        d.context()
    );
    // The attempt logs once it has finished, after the registry the loop above read.
    d.wait_log(&format!("access ended {shown}"));
    assert!(d.log().contains("access ends: applied"), "{}", d.context());
}

/// issue 25: `ravencert_certificate_disabled` is 1 for a disabled client and 0 for the others
/// (the server's included), and the page marks the disabled one; no last use is claimed
/// without a cluster that says it.
#[test]
fn metrics_show_disabled() {
    let env = Env::new();
    env.config(&config("disabled = true\n"));
    let (d, addr) = start(&env);
    wait_for(&d, addr, "ravencert_last_apply_success", 1.0, 200);
    let scrape = scrape(addr).expect("a scrape");
    let disabled: Vec<(&str, f64)> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "ravencert_certificate_disabled")
        .map(|s| (s.labels.get("key").unwrap_or(""), number(&s.value)))
        .collect();
    let mut disabled = disabled;
    disabled.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        disabled,
        vec![("admin", 0.0), ("app", 1.0), ("server", 0.0)],
        "{:#?}",
        scrape.samples
    );
    assert!(!scrape
        .samples
        .iter()
        .any(|s| s.metric == "ravencert_certificate_last_used_seconds"));
    let (_, page) = get(addr, "/").expect("the page");
    assert_eq!(
        page.matches("badge off\">disabled</span>").count(),
        1,
        "{page}"
    );
}

/// policy.toml (issue 25) under a local watch: written after the start (the watch follows the
/// default path while it does not exist), a policy the config breaks turns `/healthz` 503 with
/// the rule and applies nothing; a config that keeps it is applied again.
#[test]
fn a_broken_policy_turns_health_red_and_applies_nothing() {
    let env = Env::new();
    env.config(&config(""));
    let (d, addr) = start(&env);
    wait_for(&d, addr, "ravencert_last_apply_success", 1.0, 200);
    let registry = std::fs::read(env.path("store/registry.toml")).unwrap();
    let policy = "version = 1\n[[rule]]\nname = \"no-standing-admins\"\nclearance = \"ClusterAdmin\"\nallow = []\n";
    d.save_until(
        "/healthz to name the broken rule",
        || save_by_rename(&env.path("policy.toml"), policy),
        || get(addr, "/healthz").is_some_and(|(c, b)| c == 503 && b.contains("no-standing-admins")),
    );
    let (_, reason) = get(addr, "/healthz").expect("healthz");
    assert!(
        reason.contains("policy: refused by policy.toml")
            && reason.contains("clients.admin holds ClusterAdmin"),
        "{reason}"
    );
    wait_config(&d, addr, false);
    d.wait_log("rule 'no-standing-admins'");
    assert_eq!(
        std::fs::read(env.path("store/registry.toml")).unwrap(),
        registry
    );
    // The admin made an Operator: the policy holds, the change is applied.
    save_by_rename(
        &env.path("certs.toml"),
        &config("").replace("clearance = \"ClusterAdmin\"", "clearance = \"Operator\""),
    );
    wait_config(&d, addr, true);
    wait_for(&d, addr, "ravencert_last_apply_success", 1.0, 200);
    assert_ne!(
        std::fs::read(env.path("store/registry.toml")).unwrap(),
        registry
    );
}
