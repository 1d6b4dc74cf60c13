//! Hostile and broken inputs around a store that was really applied: the files certs.toml
//! refers to (uploads, password files, the export), the store itself (registry, certificates,
//! keys, folders, links, modes), and a few config-level attacks that the rule cases in
//! bad_configs.rs do not cover (binary garbage, NUL bytes, size and nesting bombs, look-alike
//! keys, export paths aimed at the store or the config).
//!
//! Each case starts from a store that `apply` really wrote (common::SERVER, a generated client,
//! a generated client whose password comes from a file, and an uploaded, password-protected
//! .pfx), snapshots it, breaks one thing, and runs `plan` and `apply --yes`. Both must exit 1
//! (a few documented cases let `plan` succeed) with an error naming the problem, must not panic,
//! must neither hang nor exhaust memory (every run is bounded: `timeout`, `ulimit -v`), and must
//! leave the whole test folder — store, export, config and referenced files — byte for byte as
//! the break left it.
//!
//! A case that shows a bug is kept, marked `#[ignore = "bug: ..."]`.

use crate::common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{json, sh, Env, Run, Snapshot};

/// The password of the uploaded partner .pfx (from the environment).
const UPLOAD_PW: &str = "upload-secret-4e1d";
/// The password of ops' issued bundle (from secrets/ops.pass).
const FILE_PW: &str = "file-secret-a83c";
/// A wrong password, in another variable.
const WRONG_PW: &str = "not-the-password";

const CLIENTS: &str = r#"
[clients.admin]
clearance = "ClusterAdmin"

[clients.ops]
clearance = "Operator"
password_file = "secrets/ops.pass"

[clients.partner]
clearance = "ValidUser"
databases = { Orders = "Read" }
upload = "trust/partner.pfx"
password_env = "PARTNER_PFX_PASSWORD"
"#;

/// The upload lines of the good config, replaced by the cases that upload another file.
const UPLOAD_LINES: &str =
    "upload = \"trust/partner.pfx\"\npassword_env = \"PARTNER_PFX_PASSWORD\"\n";

/// Every run is bounded: a hang is stopped after this many seconds (exit 124)...
const TIMEOUT_SECS: u32 = 30;
/// ...and the address space is capped (KiB), so that an unbounded read fails instead of
/// eating the machine's memory.
const MEMORY_KIB: u64 = 2 << 20;

/// `ravencert ARGS` in the test folder under a timeout and a memory cap.
fn bounded<'a>(env: &'a Env, args: &[&str]) -> common::Cmd<'a> {
    env.cmd(args).timeout(TIMEOUT_SECS).memory_kib(MEMORY_KIB)
}

/// Runs `ravencert ARGS` in the test folder under a timeout and a memory cap.
fn run(env: &Env, args: &[&str]) -> Run {
    bounded(env, args).run()
}

/// The applied test folder a case breaks, with the thumbprints the good apply registered.
struct Ctx<'a> {
    env: &'a Env,
    server: String,
    admin: String,
    ops: String,
    partner: String,
}

impl Ctx<'_> {
    fn path(&self, rel: &str) -> PathBuf {
        self.env.path(rel)
    }
    /// Makes the test folder a git repository (certs.toml and its files under review).
    fn git_init(&self) {
        sh(self.env.dir.path(), "git init -q");
    }
    fn store(&self, rel: &str) -> PathBuf {
        self.env.store().join(rel)
    }
    fn cert(&self, thumbprint: &str) -> PathBuf {
        self.store(&format!("certs/{thumbprint}.pem"))
    }
    fn server_key(&self) -> PathBuf {
        self.store(&format!("server/{}.key", self.server))
    }
    fn registry_path(&self) -> PathBuf {
        self.store("registry.toml")
    }

    fn write(&self, path: &Path, bytes: impl AsRef<[u8]>) {
        std::fs::write(path, bytes).unwrap();
    }
    fn config(&self) -> String {
        std::fs::read_to_string(self.path("certs.toml")).unwrap()
    }
    fn set_config(&self, text: &str) {
        self.env.config(text);
    }
    /// Replaces `from` (which must occur) with `to` in certs.toml.
    fn edit_config(&self, from: &str, to: &str) {
        let text = self.config();
        assert!(
            text.contains(from),
            "{from:?} is not in certs.toml:\n{text}"
        );
        self.set_config(&text.replacen(from, to, 1));
    }
    fn registry(&self) -> String {
        std::fs::read_to_string(self.registry_path()).unwrap()
    }
    /// Replaces `from` (which must occur) with `to` in the registry, keeping its mode.
    fn edit_registry(&self, from: &str, to: &str) {
        let text = self.registry();
        assert!(
            text.contains(from),
            "{from:?} is not in the registry:\n{text}"
        );
        self.write(&self.registry_path(), text.replacen(from, to, 1));
    }
    /// Makes the upload read another file of trust/ (no password: PEM and DER need none).
    fn upload_file(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        self.write(&self.path(rel), bytes);
        self.edit_config(UPLOAD_LINES, &format!("upload = \"{rel}\"\n"));
    }
    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap()
    }
    fn remove(&self, path: &Path) {
        let m = std::fs::symlink_metadata(path).unwrap();
        if m.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
    }
    fn to_dir(&self, path: &Path) {
        self.remove(path);
        std::fs::create_dir(path).unwrap();
        chmod(path, 0o700);
    }
    fn to_fifo(&self, path: &Path) {
        self.remove(path);
        let st = Command::new("mkfifo")
            .args(["-m", "600"])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }
    /// Moves `path` out of the store (to `aside`, under the test folder) and links it back.
    fn to_link(&self, path: &Path, aside: &str) {
        let outside = self.path(aside);
        std::fs::rename(path, &outside).unwrap();
        symlink(&outside, path).unwrap();
    }
    /// Random bytes of a fixed seed, each with the high bit set: not valid UTF-8, nor DER.
    fn garbage(&self, n: usize) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(n as u64);
        (0..n).map(|_| rng.u8(0x80..=0xff)).collect()
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// What a case expects after its break.
struct Expect {
    /// Texts the error of every run must hold (the file or key at fault, the problem).
    says: Vec<String>,
    /// The exit code of `plan` (1, unless the case documents why planning is fine).
    plan_code: i32,
}

fn refused() -> Expect {
    Expect {
        says: Vec::new(),
        plan_code: 1,
    }
}

impl Expect {
    fn says(mut self, text: impl AsRef<str>) -> Expect {
        self.says.push(text.as_ref().to_string());
        self
    }
    /// `plan` does not read what the case broke (it takes no lock): it succeeds; `apply` fails.
    fn plan_ok(mut self) -> Expect {
        self.plan_code = 0;
        self
    }
}

/// Each case is its own test; CASES lists them all for the count check.
macro_rules! cases {
    ($( $(#[$attr:meta])* $name:ident: |$c:ident| $body:block )+) => {
        const CASES: &[&str] = &[$(stringify!($name)),+];
        $(
            #[test]
            $(#[$attr])*
            fn $name() {
                check(stringify!($name), &|$c: &Ctx| -> Expect { $body });
            }
        )+
    };
}

cases! {
    // ---------------------------------------------------------------------------------------
    // Referenced files: the upload.

    upload_17_mib: |c| {
        c.write(&c.path("trust/partner.pfx"), c.garbage(17 << 20));
        refused().says("clients.partner.upload").says("at most 16 MiB")
    }
    upload_binary_garbage: |c| {
        c.write(&c.path("trust/partner.pfx"), c.garbage(3000));
        refused().says("clients.partner.upload").says("trust/partner.pfx").says("not a certificate")
    }
    upload_truncated_pfx: |c| {
        let pfx = c.read("trust/partner.pfx");
        c.write(&c.path("trust/partner.pfx"), &pfx[..pfx.len() / 2]);
        refused().says("clients.partner.upload").says("trust/partner.pfx")
    }
    upload_truncated_pem_mid_base64: |c| {
        let pem = String::from_utf8(c.read("trust/partner.pem")).unwrap();
        let cut = pem.find("-----END").unwrap() / 2;
        c.upload_file("trust/cut.pem", &pem[..cut]);
        refused().says("clients.partner.upload").says("trust/cut.pem")
    }
    upload_pem_with_broken_base64_body: |c| {
        let pem = String::from_utf8(c.read("trust/partner.pem")).unwrap();
        let mut lines: Vec<String> = pem.lines().map(str::to_string).collect();
        lines[2] = format!("!!!!{}", &lines[2][4..]);
        c.upload_file("trust/broken.pem", lines.join("\n") + "\n");
        refused().says("clients.partner.upload").says("trust/broken.pem")
    }
    upload_truncated_der: |c| {
        let der = c.read("trust/partner.der");
        c.upload_file("trust/cut.der", &der[..der.len() * 2 / 3]);
        refused().says("clients.partner.upload").says("trust/cut.der").says("not a certificate")
    }
    upload_der_with_trailing_garbage: |c| {
        let mut der = c.read("trust/partner.der");
        der.extend_from_slice(&c.garbage(100));
        c.upload_file("trust/long.der", der);
        refused().says("clients.partner.upload").says("trust/long.der")
    }
    upload_empty_file: |c| {
        c.write(&c.path("trust/partner.pfx"), b"");
        refused().says("clients.partner.upload").says("trust/partner.pfx")
    }
    upload_is_a_directory: |c| {
        c.to_dir(&c.path("trust/partner.pfx"));
        refused().says("clients.partner.upload").says("trust/partner.pfx").says("not a file")
    }
    upload_pfx_wrong_password: |c| {
        c.edit_config("PARTNER_PFX_PASSWORD", "WRONG_PFX_PASSWORD");
        refused().says("clients.partner.upload").says("password is wrong").says("WRONG_PFX_PASSWORD")
    }
    upload_pfx_without_password_configured: |c| {
        c.edit_config("password_env = \"PARTNER_PFX_PASSWORD\"\n", "");
        refused().says("clients.partner.upload").says("password-protected").says("password_env")
    }
    upload_pem_with_too_many_certificates: |c| {
        // 1,001 certificates: refused before any is parsed (a file of N cost O(N^2) before).
        let pem = c.read(&format!("store/certs/{}.pem", c.ops));
        c.upload_file("trust/many.pem", pem.repeat(1_001));
        refused().says("clients.partner.upload").says("1001 certificates").says("more than the 1000")
    }
    upload_symlink_to_dev_zero: |c| {
        c.remove(&c.path("trust/partner.pfx"));
        symlink("/dev/zero", c.path("trust/partner.pfx")).unwrap();
        refused().says("clients.partner.upload").says("trust/partner.pfx").says("not a file")
    }
    upload_symlink_to_a_huge_file: |c| {
        c.write(&c.path("huge.bin"), c.garbage(17 << 20));
        c.remove(&c.path("trust/partner.pfx"));
        symlink(c.path("huge.bin"), c.path("trust/partner.pfx")).unwrap();
        refused().says("clients.partner.upload").says("at most 16 MiB")
    }
    upload_symlink_loop: |c| {
        c.remove(&c.path("trust/partner.pfx"));
        symlink("partner.pfx", c.path("trust/partner.pfx")).unwrap();
        refused().says("clients.partner.upload").says("trust/partner.pfx")
    }
    // Links a pull request can commit (issue 11 #1): in a git repository, no link may lead a
    // file under review out of it; whatever certs.toml points to, no line of a file that is not
    // TOML is echoed (the environment holds PARTNER_PFX_PASSWORD, which `check` looks for).
    config_symlink_to_the_environment_in_a_repository: |c| {
        c.git_init();
        c.remove(&c.path("certs.toml"));
        symlink("/proc/self/environ", c.path("certs.toml")).unwrap();
        refused().says("certs.toml").says("symbolic link leading out of the repository")
    }
    config_symlink_to_the_environment_outside_git: |c| {
        c.remove(&c.path("certs.toml"));
        symlink("/proc/self/environ", c.path("certs.toml")).unwrap();
        refused().says("certs.toml")
    }
    config_is_a_shadow_file: |c| {
        c.set_config(&format!("root:$6${FILE_PW}$x:19000:0:99999:7:::\n"));
        refused().says("certs.toml")
    }
    upload_symlink_out_of_a_repository: |c| {
        c.git_init();
        c.remove(&c.path("trust/partner.pfx"));
        symlink("/etc/passwd", c.path("trust/partner.pfx")).unwrap();
        refused()
            .says("clients.partner.upload")
            .says("symbolic link leading out of the repository")
    }
    upload_is_a_fifo: |c| {
        c.to_fifo(&c.path("trust/partner.pfx"));
        refused().says("clients.partner.upload").says("not a file")
    }
    upload_path_traversal_to_etc_passwd: |c| {
        // Ten levels up from the test folder is `/`, wherever the temp folder is.
        c.edit_config(UPLOAD_LINES, &format!("upload = \"{}etc/passwd\"\n", "../".repeat(10)));
        refused().says("clients.partner.upload").says("etc/passwd").says("not a certificate")
    }

    // ---------------------------------------------------------------------------------------
    // Referenced files: password files and the export.

    password_file_is_a_directory: |c| {
        c.to_dir(&c.path("secrets/ops.pass"));
        refused().says("clients.ops.password_file").says("secrets/ops.pass")
    }
    password_file_is_a_fifo: |c| {
        c.to_fifo(&c.path("secrets/ops.pass"));
        refused().says("clients.ops.password_file").says("secrets/ops.pass")
    }
    password_file_is_dev_zero: |c| {
        c.edit_config("secrets/ops.pass", "/dev/zero");
        refused().says("clients.ops.password_file").says("/dev/zero")
    }
    export_is_a_fifo: |c| {
        c.to_fifo(&c.path("exports/cluster.pfx"));
        refused().says("exports/cluster.pfx")
    }
    export_symlink_to_dev_zero: |c| {
        c.remove(&c.path("exports/cluster.pfx"));
        symlink("/dev/zero", c.path("exports/cluster.pfx")).unwrap();
        refused().says("exports/cluster.pfx")
    }
    export_is_a_directory: |c| {
        c.to_dir(&c.path("exports/cluster.pfx"));
        refused().says("server.export").says("exports/cluster.pfx").says("not a regular file")
    }

    // ---------------------------------------------------------------------------------------
    // certs.toml itself, beyond the rule cases of bad_configs.rs.

    config_binary_garbage: |c| {
        c.write(&c.path("certs.toml"), c.garbage(4000));
        refused().says("certs.toml").says("not UTF-8")
    }
    config_with_a_nul_byte: |c| {
        c.edit_config("clearance = \"Operator\"", "clearance = \"Oper\0ator\"");
        refused().says("certs.toml:")
    }
    config_of_5_mib: |c| {
        let mut text = c.config();
        let line = format!("# {}\n", "x".repeat(1021));
        while text.len() < 5 << 20 {
            text.push_str(&line);
        }
        c.set_config(&text);
        refused().says("certs.toml").says("larger than 4 MiB")
    }
    config_deeply_nested_arrays: |c| {
        let n = 100_000;
        c.set_config(&format!("{}x = {}{}\n", c.config(), "[".repeat(n), "]".repeat(n)));
        refused().says("certs.toml:").says("recursion")
    }
    config_deeply_nested_inline_tables: |c| {
        let n = 100_000;
        c.set_config(&format!("{}y = {}1{}\n", c.config(), "{a=".repeat(n), "}".repeat(n)));
        refused().says("certs.toml:").says("recursion")
    }
    config_deeply_dotted_table_header: |c| {
        c.set_config(&format!("{}[{}]\n", c.config(), vec!["a"; 100_000].join(".")));
        refused().says("certs.toml").says("recursion")
    }
    config_client_key_dot_dot: |c| {
        c.set_config(&format!("{}\n[clients.\"..\"]\nclearance = \"Operator\"\n", c.config()));
        refused().says("certs.toml:").says("client key '..' is not allowed")
    }
    config_client_key_cyrillic_lookalike: |c| {
        // "аdmin" with a Cyrillic а: would look like the registered admin in a review.
        c.edit_config("[clients.admin]", "[clients.\"\u{430}dmin\"]");
        refused().says("certs.toml:").says("is not allowed")
    }
    config_client_key_zero_width_space: |c| {
        c.edit_config("[clients.ops]", "[clients.\"o\u{200b}ps\"]");
        refused().says("certs.toml:").says("is not allowed")
    }
    config_client_key_with_newline: |c| {
        c.edit_config("[clients.ops]", "[clients.\"ops\\nadmin\"]");
        refused().says("certs.toml:").says("is not allowed")
    }
    config_client_name_with_newline: |c| {
        // A newline in the name would split the CN, the registry line and the status table.
        c.edit_config("[clients.ops]\n", "[clients.ops]\nname = \"ops\\nClusterAdmin admin\"\n");
        refused().says("certs.toml:").says("clients.ops.name").says("control characters")
    }
    config_client_name_with_text_direction_override: |c| {
        c.edit_config("[clients.ops]\n", "[clients.ops]\nname = \"\\u202Enimda\"\n");
        refused().says("certs.toml:").says("clients.ops.name").says("U+202E")
    }
    config_client_name_of_10k_characters: |c| {
        c.edit_config("[clients.ops]\n", &format!("[clients.ops]\nname = \"{}\"\n", "x".repeat(10_000)));
        refused().says("certs.toml:").says("clients.ops.name").says("at most 64")
    }
    config_server_name_with_nul: |c| {
        c.edit_config("name = \"cluster.example.com\"", "name = \"cluster\\u0000.example.com\"");
        refused().says("certs.toml:").says("server.name").says("U+0000")
    }
    config_password_file_is_the_server_key: |c| {
        // The server key as a bundle password: certs.toml may not point into the store.
        let rel = format!("store/server/{}.key", c.server);
        c.edit_config("secrets/ops.pass", &rel);
        refused().says("clients.ops.password_file").says("inside the store")
    }
    config_upload_reads_a_store_file: |c| {
        // An oracle on which store files exist, and a way to register them.
        let rel = format!("store/certs/{}.pem", c.ops);
        c.edit_config(UPLOAD_LINES, &format!("upload = \"{rel}\"\n"));
        refused().says("clients.partner.upload").says("inside the store")
    }
    config_upload_through_dotdot_into_the_store: |c| {
        let rel = format!("trust/../store/certs/{}.pem", c.admin);
        c.edit_config(UPLOAD_LINES, &format!("upload = \"{rel}\"\n"));
        refused().says("clients.partner.upload").says("inside the store")
    }
    config_export_over_the_registry: |c| {
        c.edit_config("exports/cluster.pfx", "store/registry.toml");
        refused().says("server.export")
    }
    config_export_over_the_server_key: |c| {
        let rel = format!("store/server/{}.key", c.server);
        c.edit_config("exports/cluster.pfx", &rel);
        refused().says("server.export")
    }
    config_export_over_a_store_certificate: |c| {
        let rel = format!("store/certs/{}.pem", c.ops);
        c.edit_config("exports/cluster.pfx", &rel);
        refused().says("server.export")
    }
    config_export_over_certs_toml: |c| {
        c.edit_config("exports/cluster.pfx", "certs.toml");
        refused().says("server.export")
    }
    config_export_over_the_upload_file: |c| {
        c.edit_config("exports/cluster.pfx", "trust/partner.pfx");
        refused().says("server.export")
    }

    // ---------------------------------------------------------------------------------------
    // The store: registry.toml.

    registry_binary_garbage: |c| {
        c.write(&c.registry_path(), c.garbage(2000));
        refused().says("registry.toml").says("not UTF-8")
    }
    registry_truncated_mid_string: |c| {
        let text = c.registry();
        let cut = text.find(&c.ops).unwrap() + 10;
        c.write(&c.registry_path(), &text[..cut]);
        refused().says("registry.toml").says("string")
    }
    registry_truncated_mid_entry: |c| {
        // Cut at a line end inside the last entry: valid TOML, a required field missing.
        let text = c.registry();
        let cut = text.find("key = \"partner\"").unwrap();
        let cut = cut + text[cut..].find("name = ").unwrap();
        c.write(&c.registry_path(), &text[..cut]);
        refused().says("registry.toml").says("missing field")
    }
    registry_empty: |c| {
        c.write(&c.registry_path(), b"");
        refused().says("registry.toml").says("format_version")
    }
    registry_format_version_99: |c| {
        c.edit_registry("format_version = 1", "format_version = 99");
        refused().says("registry.toml").says("format version 99")
    }
    registry_format_version_huge: |c| {
        c.edit_registry("format_version = 1", "format_version = 99999999999999999999");
        refused().says("registry.toml")
    }
    registry_unknown_field: |c| {
        c.edit_registry("source = \"uploaded\"", "source = \"uploaded\"\nfavourite = true");
        refused().says("registry.toml").says("unknown field `favourite`")
    }
    registry_duplicate_thumbprint: |c| {
        let (ops, admin) = (c.ops.clone(), c.admin.clone());
        c.edit_registry(&format!("thumbprint = \"{ops}\""), &format!("thumbprint = \"{admin}\""));
        refused().says("registry.toml").says(format!("{admin} is registered twice"))
    }
    registry_thumbprint_not_hex: |c| {
        let bad = "Z".repeat(40);
        c.edit_registry(&c.ops.clone(), &bad);
        refused().says("registry.toml").says(format!("'{bad}' is not a thumbprint"))
    }
    registry_thumbprint_too_short: |c| {
        c.edit_registry(&c.ops.clone(), "19E7C1");
        refused().says("registry.toml").says("'19E7C1' is not a thumbprint")
    }
    registry_thumbprint_lower_case: |c| {
        let lower = c.ops.to_lowercase();
        c.edit_registry(&c.ops.clone(), &lower);
        refused().says("registry.toml").says("is not a thumbprint")
    }
    registry_points_at_a_missing_certificate: |c| {
        let other = "0123456789ABCDEF0123456789ABCDEF01234567";
        c.edit_registry(&c.ops.clone(), other);
        refused().says(format!("certs/{other}.pem")).says("edited outside ravencert")
    }
    registry_server_points_at_a_missing_certificate: |c| {
        let other = "89ABCDEF0123456789ABCDEF0123456789ABCDEF";
        c.edit_registry(&c.server.clone(), other);
        refused().says(format!("certs/{other}.pem")).says("missing")
    }
    registry_entry_with_a_traversal_key: |c| {
        c.edit_registry("key = \"ops\"", "key = \"../../etc\"");
        refused().says("registry.toml").says("invalid key '../../etc'")
    }
    registry_entry_with_key_dot_dot: |c| {
        c.edit_registry("key = \"ops\"", "key = \"..\"");
        refused().says("registry.toml").says("invalid key '..'")
    }
    registry_invalid_date: |c| {
        c.edit_registry("not_after = \"20", "not_after = \"99999-13-45T");
        refused().says("registry.toml").says("line")
    }
    registry_unknown_clearance: |c| {
        c.edit_registry("clearance = \"Operator\"", "clearance = \"God\"");
        refused().says("registry.toml").says("unknown variant `God`")
    }
    registry_with_a_nul_byte: |c| {
        c.edit_registry("name = \"ops\"", "name = \"o\0ps\"");
        refused().says("registry.toml")
    }
    registry_with_100k_bogus_lines: |c| {
        let text = c.registry();
        let at = text.find("format_version").unwrap();
        let bogus: String = (0..100_000).map(|i| format!("bogus{i} = {i}\n")).collect();
        c.write(&c.registry_path(), format!("{}{bogus}{}", &text[..at], &text[at..]));
        refused().says("registry.toml").says("unknown field `bogus0`")
    }
    registry_with_100k_empty_entries: |c| {
        let text = c.registry() + &"[[certificate]]\n".repeat(100_000);
        c.write(&c.registry_path(), text);
        refused().says("registry.toml").says("missing field")
    }
    registry_is_a_directory: |c| {
        c.to_dir(&c.registry_path());
        refused().says("registry.toml")
    }
    registry_is_a_symlink: |c| {
        c.to_link(&c.registry_path(), "registry-outside.toml");
        refused().says("registry.toml").says("symbolic link")
    }
    registry_is_a_fifo: |c| {
        c.to_fifo(&c.registry_path());
        refused().says("registry.toml")
    }

    // ---------------------------------------------------------------------------------------
    // The store: certificates and keys.

    client_certificate_replaced_by_another: |c| {
        std::fs::copy(c.cert(&c.admin), c.cert(&c.ops)).unwrap();
        refused().says(format!("certs/{}.pem", c.ops)).says(format!("holds certificate {}", c.admin))
    }
    client_certificate_garbage: |c| {
        c.write(&c.cert(&c.ops), c.garbage(600));
        refused().says(format!("certs/{}.pem", c.ops))
    }
    client_certificate_truncated: |c| {
        let pem = std::fs::read(c.cert(&c.partner)).unwrap();
        c.write(&c.cert(&c.partner), &pem[..pem.len() / 2]);
        refused().says(format!("certs/{}.pem", c.partner))
    }
    client_certificate_is_a_directory: |c| {
        c.to_dir(&c.cert(&c.ops));
        refused().says(format!("certs/{}.pem", c.ops))
    }
    client_certificate_is_a_fifo: |c| {
        c.to_fifo(&c.cert(&c.ops));
        refused().says(format!("certs/{}.pem", c.ops))
    }
    server_certificate_replaced_by_another: |c| {
        std::fs::copy(c.cert(&c.admin), c.cert(&c.server)).unwrap();
        refused().says(format!("certs/{}.pem", c.server)).says("not the registered")
    }
    server_key_missing: |c| {
        c.remove(&c.server_key());
        refused().says(format!("server/{}.key", c.server))
    }
    server_key_replaced_by_another_key: |c| {
        sh(c.env.dir.path(), "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key");
        let other = c.read("other.key");
        c.write(&c.server_key(), other);
        refused().says(format!("server/{}.key", c.server)).says("does not belong")
    }
    server_key_garbage: |c| {
        c.write(&c.server_key(), c.garbage(300));
        refused().says(format!("server/{}.key", c.server)).says("unreadable")
    }
    server_key_empty: |c| {
        c.write(&c.server_key(), b"");
        refused().says(format!("server/{}.key", c.server)).says("unreadable")
    }
    server_key_is_a_fifo: |c| {
        c.to_fifo(&c.server_key());
        refused().says(format!("server/{}.key", c.server))
    }

    // ---------------------------------------------------------------------------------------
    // The store: links.

    symlink_planted_in_certs: |c| {
        c.to_link(&c.cert(&c.ops), "ops-outside.pem");
        refused().says(format!("certs/{}.pem", c.ops)).says("symbolic link")
    }
    symlink_planted_as_server_key: |c| {
        c.to_link(&c.server_key(), "server-outside.key");
        refused().says(format!("server/{}.key", c.server)).says("symbolic link")
    }
    issued_replaced_by_a_symlink: |c| {
        c.to_link(&c.store("issued"), "issued-outside");
        refused().says("store/issued").says("symbolic link")
    }
    issued_client_folder_replaced_by_a_symlink: |c| {
        c.to_link(&c.store("issued/ops"), "ops-outside");
        refused().says("issued/ops").says("symbolic link")
    }
    issued_key_replaced_by_a_symlink: |c| {
        c.to_link(&c.store("issued/ops/ops.key"), "ops-outside.key");
        refused().says("issued/ops/ops.key").says("symbolic link")
    }
    server_folder_replaced_by_a_symlink: |c| {
        c.to_link(&c.store("server"), "server-outside");
        refused().says("store/server").says("symbolic link")
    }
    certs_folder_replaced_by_a_symlink: |c| {
        c.to_link(&c.store("certs"), "certs-outside");
        refused().says("store/certs").says("symbolic link")
    }
    certs_folder_symlink_lets_apply_delete_outside_files: |c| {
        c.to_link(&c.store("certs"), "certs-outside");
        c.write(&c.path("certs-outside/important.txt"), "not a certificate, not ravencert's\n");
        c.edit_config("clearance = \"Operator\"", "clearance = \"ClusterAdmin\"");
        refused().says("store/certs").says("symbolic link")
    }
    stray_symlink_added_to_certs: |c| {
        // Not in place of a registered file: an extra link, which apply used to sweep away.
        symlink("/etc/hostname", c.store("certs/stray.pem")).unwrap();
        refused().says("certs/stray.pem").says("symbolic link")
    }
    stray_symlink_added_to_kept_keys: |c| {
        symlink("/etc/hostname", c.store("keys/stray.key")).unwrap();
        refused().says("keys/stray.key").says("symbolic link")
    }
    kept_client_key_replaced_by_a_symlink: |c| {
        c.to_link(&c.store(&format!("keys/{}.key", c.ops)), "ops-key-outside.key");
        refused().says(format!("keys/{}.key", c.ops)).says("symbolic link")
    }
    password_key_is_a_symlink: |c| {
        c.to_link(&c.store(".bundle-password-key"), "password-key-outside");
        refused().says(".bundle-password-key").says("symbolic link")
    }
    lock_file_is_a_symlink: |c| {
        // plan takes no lock, so it does not look at .lock; apply opens it with O_NOFOLLOW.
        c.to_link(&c.store(".lock"), "lock-outside");
        refused().plan_ok().says("store/.lock")
    }
    lock_file_is_a_directory: |c| {
        c.to_dir(&c.store(".lock"));
        refused().plan_ok().says("store/.lock")
    }

    // ---------------------------------------------------------------------------------------
    // The store: modes and types.

    store_folder_mode_0755: |c| {
        chmod(&c.env.store(), 0o755);
        refused().says("store").says("mode 755").says("chmod -R go-rwx")
    }
    server_folder_mode_0750: |c| {
        chmod(&c.store("server"), 0o750);
        refused().says("store/server").says("mode 750")
    }
    server_key_mode_0644: |c| {
        chmod(&c.server_key(), 0o644);
        refused().says(format!("server/{}.key", c.server)).says("mode 644")
    }
    issued_key_mode_0644: |c| {
        chmod(&c.store("issued/ops/ops.key"), 0o644);
        refused().says("issued/ops/ops.key").says("mode 644")
    }
    issued_pfx_mode_0604: |c| {
        chmod(&c.store("issued/admin/admin.pfx"), 0o604);
        refused().says("issued/admin/admin.pfx").says("mode 604")
    }
    issued_client_folder_mode_0755: |c| {
        chmod(&c.store("issued/admin"), 0o755);
        refused().says("issued/admin").says("mode 755")
    }
    certs_folder_is_a_file: |c| {
        let certs = c.store("certs");
        c.remove(&certs);
        c.write(&certs, "not a folder\n");
        chmod(&certs, 0o600);
        refused().says("store/certs")
    }
    store_path_is_a_regular_file: |c| {
        std::fs::rename(c.env.store(), c.path("store-moved")).unwrap();
        c.write(&c.env.store(), "I am not a store\n");
        refused().says("store").says("not a folder")
    }
}

/// Builds the upload under trust/ (partner.pfx with password UPLOAD_PW, and the same
/// certificate as PEM and DER) and ops' password file.
fn fixtures(env: &Env) {
    std::fs::create_dir_all(env.path("trust")).unwrap();
    common::openssl::partner_upload(&env.path("trust"), UPLOAD_PW);
    env.write("secrets/ops.pass", format!("{FILE_PW}\n"));
}

/// The applied folder every case starts from.
fn applied() -> Env {
    let env = Env::new()
        .env("PARTNER_PFX_PASSWORD", UPLOAD_PW)
        .env("WRONG_PFX_PASSWORD", WRONG_PW);
    fixtures(&env);
    env.config(&format!("{}{CLIENTS}", common::SERVER));
    let r = run(&env, &["apply", "--yes"]);
    assert_eq!(r.code, 0, "the good apply failed: {r:?}");
    env
}

fn thumbprints(env: &Env) -> (String, String, String, String) {
    let s = env.status();
    let client = |key: &str| {
        json::find(&s["certificates"], "key", key).unwrap()["thumbprint"]
            .as_str()
            .unwrap()
            .to_string()
    };
    (
        s["server"][0]["thumbprint"].as_str().unwrap().to_string(),
        client("admin"),
        client("ops"),
        client("partner"),
    )
}

fn check(name: &str, case: &dyn Fn(&Ctx) -> Expect) {
    let env = applied();
    assert!(env.snapshot().len() > 10, "apply wrote no store");
    let (server, admin, ops, partner) = thumbprints(&env);
    let ctx = Ctx {
        env: &env,
        server,
        admin,
        ops,
        partner,
    };

    let before_break = common::snapshot(env.dir.path());
    let expect = case(&ctx);
    // The broken state of the whole folder: the store (as `Env::snapshot` sees it) and
    // everything around it (config, uploads, password files, export).
    let broken_all = common::snapshot(env.dir.path());
    assert_ne!(before_break, broken_all, "case {name} broke nothing");

    let lock = env.store().join(".lock");
    // An apply that got as far as taking the lock (only in cases where plan succeeds) rewrites
    // the holder line of a regular lock file: allowed.
    let lock_rewritten = |p: &Path, before: &Snapshot, after: &Snapshot| {
        expect.plan_code == 0
            && p == lock
            && lock_file_regular(before, &lock)
            && lock_file_regular(after, &lock)
    };
    let says: Vec<&str> = expect.says.iter().map(String::as_str).collect();
    for (args, code) in [
        (&["plan"][..], expect.plan_code),
        (&["apply", "--yes"][..], 1),
    ] {
        let cmd = bounded(&env, args);
        let r = if code == 1 {
            cmd.refused_except(&says, lock_rewritten)
        } else {
            cmd.unchanged_except(lock_rewritten)
        };
        let shown = format!("case {name}: {}", r.shown());
        assert!(
            !r.stderr.contains("out of memory") && !r.stderr.contains("memory allocation"),
            "ran out of memory (an unbounded read)\n{shown}"
        );
        assert_eq!(r.code, code, "unexpected exit code\n{shown}");
        r.hides(&[UPLOAD_PW, FILE_PW, WRONG_PW]);
    }
}

/// Whether the snapshot holds `lock` as a regular file of mode 0600.
fn lock_file_regular(snapshot: &Snapshot, lock: &Path) -> bool {
    snapshot
        .get(lock)
        .is_some_and(|(mode, _)| *mode == 0o100600)
}

#[test]
fn table_covers_enough_cases() {
    assert!(CASES.len() >= 40, "only {} hostile cases", CASES.len());
    let mut names = CASES.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len(), "duplicate case names");
}

// ---------------------------------------------------------------------------------------------
// Behaviours worth knowing that are not refusals.

/// Tests run as root, where a mode-000 file is still readable: ravencert reads it like any
/// other. As another user the read fails and the error names the file.
#[test]
fn unreadable_upload_mode_000() {
    let env = applied();
    chmod(&env.path("trust/partner.pfx"), 0o000);
    let before = env.snapshot();
    // The test folder is ours: its owner is who we run as.
    let root =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(env.dir.path()).unwrap()) == 0;
    let r = run(&env, &["plan", "--detailed-exitcode"]);
    if root {
        assert_eq!(r.code, 0, "root reads a mode-000 file: no changes\n{r:?}");
    } else {
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("trust/partner.pfx"), "{r:?}");
        assert!(r.stderr.contains("ermission denied"), "{r:?}");
    }
    assert!(!r.stderr.contains("panicked"));
    assert_eq!(before, env.snapshot());
}

/// 100k comment lines in the registry: still valid TOML, so it is drift (the seal no longer
/// matches) that plan reports and apply repairs by rewriting the registry, quickly.
#[test]
fn registry_with_100k_comment_lines_is_drift_that_apply_repairs() {
    let env = applied();
    let reg = env.store().join("registry.toml");
    let good = std::fs::read_to_string(&reg).unwrap();
    let at = good.find("format_version").unwrap();
    let comments: String = (0..100_000).map(|i| format!("# bogus {i}\n")).collect();
    std::fs::write(&reg, format!("{}{comments}{}", &good[..at], &good[at..])).unwrap();

    let start = std::time::Instant::now();
    let r = run(&env, &["plan"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("edited outside ravencert"), "{r:?}");
    assert!(r.stdout.contains("No changes"), "{r:?}");
    let r = run(&env, &["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(std::fs::read_to_string(&reg).unwrap(), good);
    let r = run(&env, &["plan"]);
    assert!(!r.stdout.contains("edited outside"), "{r:?}");
}

/// `password_file` may name any readable file, also through `..`; /etc/passwd holds line
/// breaks, so it is no password file: refused by name, and never a byte of it shown. (A
/// one-line file would be read as a password: another one than the bundle's, so the plan
/// would package the bundle again.)
#[test]
fn password_file_traversal_to_a_multi_line_file_is_refused() {
    let env = applied();
    let config = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    env.config(&config.replace(
        "secrets/ops.pass",
        &format!("{}etc/passwd", "../".repeat(10)),
    ));
    let before = env.snapshot();
    let r = run(&env, &["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("etc/passwd holds a control character"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("root:") && !r.stderr.contains("root:"));
    assert_eq!(before, env.snapshot());
}

/// An export path may leave the config folder (`../`): plan names the resolved target, so a
/// reviewer sees where apply would write. Only `plan` runs here (apply would write there).
#[test]
fn export_path_traversal_is_shown_in_the_plan() {
    let env = applied();
    let config = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    let name = env.dir.path().file_name().unwrap().to_string_lossy();
    let target = format!("{}tmp/{name}-nowhere/cluster.pfx", "../".repeat(10));
    env.config(&config.replace("exports/cluster.pfx", &target));
    let before = common::snapshot(env.dir.path());
    let r = run(&env, &["plan"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("> export"), "{r:?}");
    assert!(r.stdout.contains(&target), "{r:?}");
    assert_eq!(before, common::snapshot(env.dir.path()));
}

/// The export overwrites whatever file stands at its path, even one that is no export: plan
/// calls it "missing or unreadable". Only `plan` runs here (apply would clobber /etc/passwd).
#[test]
fn export_over_an_existing_unrelated_file_is_refused() {
    let env = applied();
    let config = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    env.config(&config.replace("exports/cluster.pfx", "/etc/passwd"));
    let r = run(&env, &["plan"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("/etc/passwd"), "{r:?}");
}

/// `watch` takes the lock before it reads the store, and taking the lock chmods the store
/// folder to 0700: an exposed store (0755) is silently "fixed" and used, where plan and apply
/// refuse it and ask to consider the keys exposed.
#[test]
fn watch_refuses_an_exposed_store_like_apply() {
    let env = applied();
    chmod(&env.store(), 0o755);
    // Three seconds of watch (its start attempt), then SIGTERM from `timeout`.
    let log = env
        .cmd(&["watch", "--interval", "1h"])
        .timeout(3)
        .run()
        .stderr;
    let mode = std::fs::metadata(env.store()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755, "watch changed the store folder's mode\n{log}");
    assert!(log.contains("readable by other users"), "{log}");
}

// ---------------------------------------------------------------------------------------------
// Hostile text (issue 11, finding 8): shown escaped, never raw. tests/it/escaping.rs has the
// Markdown and watch cases.

/// An uploaded certificate whose CN holds ESC sequences and a right-to-left override (built
/// with `openssl req -utf8 -subj`): plan and apply show the subject escaped and the escalation
/// in plain sight; status after the apply too.
#[test]
fn upload_with_escape_and_bidi_in_its_cn_is_shown_escaped() {
    let env = applied();
    sh(
        &env.path("trust"),
        "cn=$(printf 'evil\\033[2J\\033[8m\\342\\200\\256x') \
         && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
              -keyout hostile.key -out hostile.pem -days 365 -utf8 -subj \"/CN=$cn\" 2>/dev/null",
    );
    let config = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    env.config(&config.replace(UPLOAD_LINES, "upload = \"trust/hostile.pem\"\n"));
    let r = run(&env, &["plan"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("CN=evil\\u{1b}[2J\\u{1b}[8m\\u{202e}x"),
        "{}",
        r.stdout.escape_debug()
    );
    assert!(r.stdout.contains("-/+ client partner"), "{}", r.stdout);
    for args in [&["plan"][..], &["apply", "--yes"], &["status"], &["plan"]] {
        let r = run(&env, args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        common::assert_no_raw(&format!("stdout of {args:?}"), &r.stdout);
        common::assert_no_raw(&format!("stderr of {args:?}"), &r.stderr);
    }
}

/// A hand-edited registry whose name holds ESC and CR: status and plan (which reports the
/// edit as drift and repairs it) show it escaped.
#[test]
fn registry_name_with_escape_is_shown_escaped() {
    let env = applied();
    let registry = env.store().join("registry.toml");
    let text = std::fs::read_to_string(&registry).unwrap();
    std::fs::write(
        &registry,
        text.replacen(
            "name = \"admin\"",
            "name = \"admin\\u001B[2J\\rNo changes.\\u001B[8m\"",
            1,
        ),
    )
    .unwrap();
    for args in [&["status"][..], &["plan"]] {
        let r = run(&env, args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        common::assert_no_raw(&format!("stdout of {args:?}"), &r.stdout);
        assert!(
            r.stdout
                .contains("admin\\u{1b}[2J\\u{d}No changes.\\u{1b}[8m"),
            "{args:?}:\n{}",
            r.stdout
        );
    }
}

/// Whether a run panicked (the panic hook's line, or Rust's default one).
fn panicked(r: &Run) -> bool {
    r.stderr.contains("panicked") || r.stderr.contains("internal error") || r.code == 101
}

/// A password file holding a NUL byte once reached OpenSSL's C string conversion, which
/// panicked with the file's bytes in its message: `password_file = "/proc/self/environ"` put
/// the whole environment (CI tokens, other passwords) into a job log. Every command that reads
/// the password refuses it by name instead, and nothing of the file is shown.
#[test]
fn a_password_file_with_a_nul_is_refused_by_name_without_showing_it() {
    let env = applied();
    let config = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    // The generated client's password file, and the upload's: /proc/self/environ as in the
    // probe, with a canary in the environment.
    env.write("secrets/ops.pass", b"MARKER-first\0MARKER-second=token\n");
    env.config(&config.replace(
        "password_env = \"PARTNER_PFX_PASSWORD\"",
        "password_file = \"/proc/self/environ\"",
    ));
    sh(
        env.dir.path(),
        "git init -q -b main && git add -A && git -c user.name=t -c user.email=t@example.com commit -qm base",
    );
    let before = env.snapshot();
    for args in [&["validate"][..], &["plan"], &["apply", "--yes"]] {
        let r = bounded(&env, args)
            .env("CI_JOB_TOKEN", "canary-7f3a9c")
            .run();
        assert_eq!(r.code, 1, "{}", r.shown());
        assert!(!panicked(&r), "{}", r.shown());
        r.hides(&["MARKER", "canary-7f3a9c", "PATH="]);
        assert!(
            r.stderr.contains("control character") || r.stdout.contains("control character"),
            "{}",
            r.shown()
        );
        assert!(
            r.stderr.contains("/proc/self/environ") || r.stderr.contains("secrets/ops.pass"),
            "names the file: {}",
            r.shown()
        );
    }
    // A review reads no password file at all (issue 22): it plans, naming the upload it could
    // not open and the bundle password it did not compare, and shows nothing of either file.
    for args in [&["plan", "--base", "main"][..], &["plan", "--rev", "main"]] {
        let r = bounded(&env, args)
            .env("CI_JOB_TOKEN", "canary-7f3a9c")
            .run();
        assert_eq!(r.code, 0, "{}", r.shown());
        r.hides(&["MARKER", "canary-7f3a9c", "PATH="]);
        assert!(
            r.stdout.contains("Not read in review")
                && r.stdout.contains("clients.partner.upload")
                && r.stdout.contains("clients.ops.password_file"),
            "{}",
            r.shown()
        );
    }
    assert_eq!(before, env.snapshot());
}

/// A password variable holding a control character is refused by its name too (it was taken
/// as the bundle's new password, escape sequence and all).
#[test]
fn a_password_variable_with_a_control_character_is_refused_by_name() {
    let env = applied();
    let config = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    env.config(&config.replace(
        "password_file = \"secrets/ops.pass\"",
        "password_env = \"OPS_PFX_PASSWORD\"",
    ));
    let before = env.snapshot();
    for args in [&["plan"][..], &["apply", "--yes"]] {
        let r = bounded(&env, args)
            .env("OPS_PFX_PASSWORD", "ops-\u{1b}[2Jzq81x")
            .run();
        assert_eq!(r.code, 1, "{}", r.shown());
        assert!(
            r.stderr
                .contains("OPS_PFX_PASSWORD holds a control character"),
            "{}",
            r.shown()
        );
        r.hides(&["zq81x"]);
    }
    assert_eq!(before, env.snapshot());
}

/// A panic is a bug; when one happens, it says where and never what its message carried (it
/// may hold a value the program was handling). Debug builds panic on request for this test.
#[test]
fn a_panic_never_prints_its_message() {
    let env = applied();
    let r = bounded(&env, &["plan"])
        .env("RAVENCERT_TEST_PANIC", "payload-9d2e-secret")
        .run();
    assert_eq!(r.code, 101, "{}", r.shown());
    assert!(r.stderr.contains("This is a bug"), "{}", r.shown());
    assert!(
        r.stderr.contains("src/main.rs"),
        "says where: {}",
        r.shown()
    );
    r.hides(&["payload-9d2e-secret"]);
}

/// A password in a cluster url is masked on every line ravencert prints: in each error of a
/// line holding two such urls, in its TOML-escaped spelling (`\u0053` for `S`), and in
/// `adopt --url`.
#[test]
fn a_url_password_never_shows_in_any_spelling() {
    let env = applied();
    let config = std::fs::read_to_string(env.path("certs.toml")).unwrap();
    env.config(&format!(
        "{config}\n[cluster]\nurls = [\"https://ops:Sup3rSecretPw@a.example.com\", \"https://ops:Sup3r\\u0053ecretPw@b.example.com\"]\nadmin = \"admin\"\n"
    ));
    let before = env.snapshot();
    for args in [&["validate"][..], &["plan"]] {
        let r = run(&env, args);
        assert_eq!(r.code, 1, "{}", r.shown());
        assert!(r.stderr.contains("cluster.urls[1]"), "{}", r.shown());
        r.hides(&["ecretPw", "Sup3r"]);
    }
    assert_eq!(before, env.snapshot());
    let r = run(
        &env,
        &[
            "adopt",
            "-c",
            "adopted/certs.toml",
            "--url",
            "https://ops:Sup3rSecretPw@127.0.0.1:1",
            "--admin-certificate",
            "trust/partner.pfx",
            "--password-env",
            "PARTNER_PFX_PASSWORD",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.shown());
    r.hides(&["ecretPw", "Sup3r"]);
    assert!(!env.path("adopted").exists());
}
