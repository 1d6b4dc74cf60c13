//! Bad certs.toml files (docs/contract.md §1). Each case starts from a store that a good config
//! really applied, swaps in the bad config, and checks that `validate`, `plan` and `apply --yes`
//! all refuse it with exit code 1 and an error naming certs.toml, the line and the key; that no
//! secret shows in the output; and that the store and the export are byte for byte unchanged.
//! A bundle password that is not there is the one exception: it is needed only by the apply
//! that writes its bundle (`ONLY_APPLY_NEEDS`).

use crate::common;

use crate::common::Env;

/// The good clients applied before every case, after `common::SERVER`. orders-app reads its
/// password from the environment, so that secret is around in every run.
const GOOD_CLIENTS: &str = r#"
[clients.admin]
clearance = "ClusterAdmin"

[clients.orders-app]
name = "Orders App"
clearance = "ValidUser"
databases = { Orders = "ReadWrite", Reporting = "Read" }
password_env = "ORDERS_APP_PFX_PASSWORD"
"#;

const ENV_SECRET: &str = "env-secret-9f3kQ";
/// The value of the `password = ...` keys the bad configs write inline.
const INLINE_SECRET: &str = "hunter2-inline-secret";
/// The content of the password file some cases write.
const FILE_SECRET: &str = "file-secret-Zt81";
/// A variable no run sets.
const UNSET_VAR: &str = "RAVENCERT_TEST_UNSET_PASSWORD";

struct Case {
    /// The bad certs.toml; `{SERVER}` stands for `common::SERVER`, `{CLIENTS}` for
    /// GOOD_CLIENTS.
    config: &'static str,
    /// A text naming the offending key, expected on the same error line as the position.
    key: &'static str,
    /// Some(text): the error names `certs.toml:N:`, N being the line of the config holding text.
    /// None: the problem has no position in the file (it names certs.toml and the key only).
    line: Option<&'static str>,
    /// Further texts the error output must hold.
    also: &'static [&'static str],
    /// Files written next to certs.toml before the bad runs.
    files: &'static [(&'static str, &'static str)],
}

impl Case {
    const DEFAULT: Case = Case {
        config: "",
        key: "",
        line: None,
        also: &[],
        files: &[],
    };
}

/// Each case is its own test; CASES lists them all for the count check.
macro_rules! cases {
    ($( $(#[$attr:meta])* $name:ident: $case:expr; )+) => {
        const CASES: &[(&str, Case)] = &[$((stringify!($name), $case)),+];
        $(
            #[test]
            $(#[$attr])*
            fn $name() {
                check(stringify!($name), &$case);
            }
        )+
    };
}

cases! {
    // --- Unknown keys are errors.
    unknown_top_level_key: Case {
        config: "colour = \"blue\"\n{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "colour",
        line: Some("colour"),
        also: &["unknown field `colour`"],
        ..Case::DEFAULT
    };
    unknown_client_key_typo: Case {
        config: "{SERVER}\n[clients.admin]\nclearence = \"ClusterAdmin\"\n",
        key: "clearence",
        line: Some("clearence"),
        also: &["unknown field `clearence`"],
        ..Case::DEFAULT
    };
    unknown_store_key: Case {
        config: "{SERVER}\n[store]\npurne = true\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "purne",
        line: Some("purne"),
        also: &["unknown field `purne`"],
        ..Case::DEFAULT
    };
    unknown_defaults_key: Case {
        // Right after SERVER, so still inside its [defaults].
        config: "{SERVER}validty = \"1y\"\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "validty",
        line: Some("validty"),
        also: &["unknown field `validty`"],
        ..Case::DEFAULT
    };
    unknown_server_key: Case {
        config: "version = 1\n[server]\ngenerate = true\nnmae = \"cluster.example.com\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "nmae",
        line: Some("nmae"),
        also: &["unknown field `nmae`"],
        ..Case::DEFAULT
    };

    // --- version = 1 is required.
    version_2: Case {
        config: "version = 2\n[server]\ngenerate = true\nname = \"cluster.example.com\"\n\
                 key = \"ec-p256\"\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\nkey = \"ec-p256\"\n",
        key: "version",
        line: Some("version = 2"),
        also: &["format version 2 is not supported"],
        ..Case::DEFAULT
    };
    version_missing: Case {
        config: "# certificates of the cluster\n[server]\ngenerate = true\n\
                 name = \"cluster.example.com\"\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "version",
        line: Some("# certificates of the cluster"),
        also: &["version = 1"],
        ..Case::DEFAULT
    };
    version_as_string: Case {
        config: "version = \"1\"\n[server]\ngenerate = true\nname = \"cluster.example.com\"\n",
        key: "version",
        line: Some("version"),
        ..Case::DEFAULT
    };

    // --- Values of the wrong type or outside their enumeration.
    wrong_type_validity: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\nvalidity = 5\n",
        key: "clients.admin.validity",
        line: Some("validity = 5"),
        also: &["invalid type: integer `5`, expected a string"],
        ..Case::DEFAULT
    };
    invalid_clearance: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"Admin\"\n",
        key: "clearance",
        line: Some("\"Admin\""),
        also: &["unknown variant `Admin`", "ClusterAdmin"],
        ..Case::DEFAULT
    };
    invalid_access: Case {
        config: "{SERVER}\n[clients.orders-app]\nclearance = \"ValidUser\"\n\
                 databases = { Orders = \"Write\" }\n",
        key: "databases",
        line: Some("\"Write\""),
        also: &["unknown variant `Write`", "ReadWrite"],
        ..Case::DEFAULT
    };

    // --- Client keys: 1 to 64 of a-z 0-9 - _ . not starting with '.'.
    client_key_uppercase: Case {
        config: "{SERVER}\n[clients.Admin]\nclearance = \"ClusterAdmin\"\n",
        key: "clients.Admin",
        line: Some("[clients.Admin]"),
        also: &["client key 'Admin' is not allowed"],
        ..Case::DEFAULT
    };
    client_key_path_traversal: Case {
        config: "{SERVER}\n[clients.\"../evil\"]\nclearance = \"ClusterAdmin\"\n",
        key: "clients.../evil",
        line: Some("../evil"),
        also: &["client key '../evil' is not allowed"],
        ..Case::DEFAULT
    };
    client_key_with_space: Case {
        config: "{SERVER}\n[clients.\"orders app\"]\nclearance = \"Operator\"\n",
        key: "clients.orders app",
        line: Some("orders app"),
        also: &["client key 'orders app' is not allowed"],
        ..Case::DEFAULT
    };
    client_key_leading_dot: Case {
        config: "{SERVER}\n[clients.\".hidden\"]\nclearance = \"Operator\"\n",
        key: "clients..hidden",
        line: Some(".hidden"),
        also: &["client key '.hidden' is not allowed"],
        ..Case::DEFAULT
    };
    client_key_65_chars: Case {
        config: "{SERVER}\n[clients.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n\
                 clearance = \"Operator\"\n",
        key: "clients.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:",
        line: Some("[clients.aaaa"),
        also: &["1 to 64 characters"],
        ..Case::DEFAULT
    };
    client_key_empty: Case {
        config: "{SERVER}\n[clients.\"\"]\nclearance = \"Operator\"\n",
        key: "client key '' is not allowed",
        line: Some("[clients.\"\"]"),
        ..Case::DEFAULT
    };

    // --- name: non-empty and unique among clients.
    empty_name: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\nname = \"\"\n",
        key: "clients.admin.name",
        line: Some("name = \"\""),
        ..Case::DEFAULT
    };
    blank_name: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\nname = \"   \"\n",
        key: "clients.admin.name",
        line: Some("name = \"   \""),
        ..Case::DEFAULT
    };
    name_with_newline: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\nname = \"Admin\\nClusterAdmin\"\n",
        key: "clients.admin.name",
        line: Some("Admin\\nCluster"),
        also: &["U+000A", "control characters"],
        ..Case::DEFAULT
    };
    name_with_text_direction_override: Case {
        // U+202E shows "Admin" where the text holds "nimdA".
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\nname = \"\\u202EnimdA\"\n",
        key: "clients.admin.name",
        line: Some("nimdA"),
        also: &["U+202E"],
        ..Case::DEFAULT
    };
    name_of_65_characters: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\n\
                 name = \"Administrators of the cluster, of all databases and of the backup\"\n",
        key: "clients.admin.name",
        line: Some("Administrators"),
        also: &["65 characters", "at most 64", "RFC 5280"],
        ..Case::DEFAULT
    };
    server_name_with_control_character: Case {
        config: "version = 1\n[server]\ngenerate = true\nname = \"cluster\\u0007\"\n\
                 dns = [\"cluster.example.com\"]\nkey = \"ec-p256\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\nkey = \"ec-p256\"\n",
        key: "server.name",
        line: Some("cluster\\u0007"),
        also: &["U+0007", "control characters"],
        ..Case::DEFAULT
    };
    server_name_of_65_characters: Case {
        config: "version = 1\n[server]\ngenerate = true\n\
                 name = \"The RavenDB cluster of the orders, billing and reporting services\"\n\
                 dns = [\"cluster.example.com\"]\nkey = \"ec-p256\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\nkey = \"ec-p256\"\n",
        key: "server.name",
        line: Some("The RavenDB cluster"),
        also: &["65 characters", "at most 64"],
        ..Case::DEFAULT
    };
    duplicate_name: Case {
        config: "{SERVER}\n[clients.ops-a]\nclearance = \"Operator\"\nname = \"Ops Team\"\n\n\
                 [clients.ops-b]\nclearance = \"Operator\"\nname=\"Ops Team\"\n",
        key: "clients.ops-b.name",
        line: Some("name=\"Ops Team\""),
        also: &["already used by clients.ops-a"],
        ..Case::DEFAULT
    };
    duplicate_name_differing_in_case: Case {
        config: "{SERVER}\n[clients.ops-a]\nclearance = \"Operator\"\nname = \"Ops Team\"\n\n\
                 [clients.ops-b]\nclearance = \"Operator\"\nname = \"ops team\"\n",
        key: "clients.ops-b.name",
        line: Some("\"ops team\""),
        also: &["already used by clients.ops-a"],
        ..Case::DEFAULT
    };
    duplicate_name_with_other_clients_key: Case {
        // admin's name defaults to its key.
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\n\n\
                 [clients.backup]\nclearance = \"Operator\"\nname = \"Admin\"\n",
        key: "clients.backup.name",
        line: Some("name = \"Admin\""),
        also: &["already used by clients.admin"],
        ..Case::DEFAULT
    };
    duplicate_name_by_lookalike_letters: Case {
        // A second ClusterAdmin `аpp` whose first letter is the Cyrillic а (U+0430).
        config: "{SERVER}\n[clients.app]\nclearance = \"ClusterAdmin\"\n\n\
                 [clients.app2]\nclearance = \"ClusterAdmin\"\nname = \"\u{430}pp\"\n",
        key: "clients.app2.name",
        line: Some("name = \"\u{430}pp\""),
        also: &["looks the same as 'app' of clients.app", "clients.app2"],
        ..Case::DEFAULT
    };

    // --- databases: only with ValidUser, RavenDB's names, no case duplicates.
    databases_on_operator: Case {
        config: "{SERVER}\n[clients.orders-app]\nclearance = \"Operator\"\n\
                 databases = { Orders = \"ReadWrite\" }\n",
        key: "clients.orders-app.databases",
        line: Some("databases"),
        also: &["ValidUser"],
        ..Case::DEFAULT
    };
    empty_databases_on_cluster_admin: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\ndatabases = {}\n",
        key: "clients.admin.databases",
        line: Some("databases"),
        ..Case::DEFAULT
    };
    database_name_with_slash: Case {
        config: "{SERVER}\n[clients.orders-app]\nclearance = \"ValidUser\"\n\
                 databases = { \"a/b\" = \"Read\" }\n",
        key: "clients.orders-app.databases",
        line: Some("databases"),
        also: &["The name 'a/b' is not permitted"],
        ..Case::DEFAULT
    };
    database_name_with_leading_dot: Case {
        config: "{SERVER}\n[clients.orders-app]\nclearance = \"ValidUser\"\n\
                 databases = { \".orders\" = \"Read\" }\n",
        key: "clients.orders-app.databases",
        line: Some("databases"),
        also: &["The name '.orders' is not permitted"],
        ..Case::DEFAULT
    };
    database_name_windows_reserved: Case {
        config: "{SERVER}\n[clients.orders-app]\nclearance = \"ValidUser\"\n\
                 databases = { Orders = \"Read\", COM1 = \"Read\" }\n",
        key: "clients.orders-app.databases",
        line: Some("databases"),
        also: &["The name 'COM1' is not permitted"],
        ..Case::DEFAULT
    };
    database_names_differing_in_case: Case {
        config: "{SERVER}\n[clients.orders-app]\nclearance = \"ValidUser\"\n\
                 databases = { Orders = \"Read\", orders = \"Admin\" }\n",
        key: "clients.orders-app.databases",
        line: Some("databases"),
        also: &["case-insensitively"],
        ..Case::DEFAULT
    };

    // --- upload or generated.
    upload_with_key_and_validity: Case {
        config: "{SERVER}\n[clients.partner]\nclearance = \"ValidUser\"\n\
                 databases = { Orders = \"Read\" }\nupload = \"trust/partner.pfx\"\n\
                 key = \"ec-p256\"\nvalidity = \"1y\"\n",
        key: "clients.partner.key",
        line: Some("key = \"ec-p256\"\nvalidity"),
        also: &["clients.partner.validity", "remove `validity` or `upload`"],
        ..Case::DEFAULT
    };
    upload_file_missing: Case {
        config: "{SERVER}\n[clients.partner]\nclearance = \"ValidUser\"\n\
                 databases = { Orders = \"Read\" }\nupload = \"trust/partner.pfx\"\n",
        key: "clients.partner.upload",
        line: Some("upload"),
        also: &["trust/partner.pfx does not exist"],
        ..Case::DEFAULT
    };
    upload_file_not_a_certificate: Case {
        config: "{SERVER}\n[clients.partner]\nclearance = \"ValidUser\"\n\
                 databases = { Orders = \"Read\" }\nupload = \"trust/partner.pfx\"\n",
        key: "clients.partner.upload",
        line: Some("upload"),
        also: &["it is not a certificate"],
        files: &[("trust/partner.pfx", "just some text, no certificate here\n")],
    };
    server_certificates_file_missing: Case {
        config: "version = 1\n[server]\n\
                 certificates = [{ path = \"nodes/a.pfx\" }]\n\
                 export = \"exports/cluster.pfx\"\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "server.certificates[0].path",
        line: Some("certificates = ["),
        also: &["nodes/a.pfx does not exist"],
        ..Case::DEFAULT
    };
    // A public node certificate (no private key) registers and exports only (docs/contract.md §8).
    generated_client_with_keyless_server: Case {
        config: "version = 1\n[server]\ncertificates = [{ path = \"trust/node.crt\" }]\n\
                 export = \"exports/cluster.pfx\"\n{CLIENTS}",
        key: "clients.admin",
        line: Some("[clients.admin]"),
        also: &[
            "trust/node.crt",
            "private key",
            "import the node .pfx with its private key in [server] certificates, or declare this client as an upload",
        ],
        files: &[("trust/node.crt", PARTNER_PEM)],
    };
    install_with_keyless_server: Case {
        config: "version = 1\n[server]\ncertificates = [{ path = \"trust/node.crt\" }]\n\
                 export = \"exports/cluster.pfx\"\ninstall = { path = \"node/cluster.pfx\" }\n",
        key: "server.install",
        line: Some("install = {"),
        also: &["trust/node.crt", "holds no private key", "remove `install`"],
        files: &[("trust/node.crt", PARTNER_PEM)],
    };
    server_generate_and_certificates: Case {
        config: "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\n\
                 certificates = [{ path = \"nodes/a.pfx\" }]\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "server.certificates",
        line: Some("certificates = ["),
        also: &["choose one"],
        ..Case::DEFAULT
    };

    // --- Secrets never stand in the file; named ones must exist at plan time.
    client_password_key_refused: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\n\
                 password = \"hunter2-inline-secret\"\n",
        key: "clients.admin.password",
        line: Some("password ="),
        // The line is shown, its value masked.
        also: &["password_env", "password_file", "    | password = ***"],
        ..Case::DEFAULT
    };
    server_certificate_password_refused: Case {
        config: "version = 1\n[server]\n\
                 certificates = [{ path = \"nodes/a.pfx\", password = \"hunter2-inline-secret\" }]\n",
        key: "server.certificates[0].password",
        line: Some("certificates = ["),
        also: &["password_env", "password_file"],
        ..Case::DEFAULT
    };
    password_env_unset: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\n\
                 password_env = \"RAVENCERT_TEST_UNSET_PASSWORD\"\n",
        key: "clients.admin.password_env",
        line: Some("password_env"),
        also: &["RAVENCERT_TEST_UNSET_PASSWORD is not set"],
        ..Case::DEFAULT
    };
    password_file_missing: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\n\
                 password_file = \"secrets/missing.pass\"\n",
        key: "clients.admin.password_file",
        line: Some("password_file"),
        also: &["secrets/missing.pass"],
        ..Case::DEFAULT
    };
    password_env_and_password_file: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\n\
                 password_env = \"ORDERS_APP_PFX_PASSWORD\"\npassword_file = \"secrets/admin.pass\"\n",
        key: "clients.admin.password_file",
        line: Some("password_file"),
        also: &["not both"],
        files: &[("secrets/admin.pass", "file-secret-Zt81\n")],
    };
    password_env_empty: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\npassword_env = \"\"\n",
        key: "clients.admin.password_env",
        line: Some("password_env"),
        ..Case::DEFAULT
    };

    // --- Durations: a whole number with s, min, h, d, w, mo or y; renew_before shorter than
    // validity.
    duration_in_words: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\nvalidity = \"5 years\"\n",
        key: "clients.admin.validity",
        line: Some("validity"),
        also: &["'5 years'"],
        ..Case::DEFAULT
    };
    duration_unknown_unit: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\nrenew_before = \"10sec\"\n",
        key: "clients.admin.renew_before",
        line: Some("renew_before"),
        also: &["'10sec'", "unknown unit 'sec'"],
        ..Case::DEFAULT
    };
    duration_bare_m: Case {
        // Minutes or months? Refused with a hint rather than guessed.
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\nvalidity = \"6m\"\n",
        key: "clients.admin.validity",
        line: Some("validity"),
        also: &["'6m'", "did you mean `min` or `mo`?"],
        ..Case::DEFAULT
    };
    overlap_bare_m_in_defaults: Case {
        // Right after SERVER, so inside its [defaults].
        config: "{SERVER}overlap = \"1m\"\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "defaults.overlap",
        line: Some("overlap"),
        also: &["did you mean `min` or `mo`?"],
        ..Case::DEFAULT
    };
    until_without_time_zone: Case {
        config: "{SERVER}{CLIENTS}\n[clients.temp]\nclearance = \"Operator\"\nuntil = 2026-05-01T18:00:00\n",
        key: "clients.temp.until",
        line: Some("until"),
        also: &["needs a time zone"],
        ..Case::DEFAULT
    };
    until_with_protect: Case {
        config: "{SERVER}{CLIENTS}\n[clients.temp]\nclearance = \"Operator\"\nprotect = true\nuntil = 2026-05-01\n",
        key: "clients.temp.until",
        line: Some("until"),
        also: &["`protect`"],
        ..Case::DEFAULT
    };
    duration_without_unit: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\noverlap = \"30\"\n",
        key: "clients.admin.overlap",
        line: Some("overlap"),
        also: &["'30'"],
        ..Case::DEFAULT
    };
    duration_fractional_in_defaults: Case {
        // Right after SERVER, so inside its [defaults].
        config: "{SERVER}validity = \"1.5y\"\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "defaults.validity",
        line: Some("validity"),
        also: &["'1.5y'"],
        ..Case::DEFAULT
    };
    validity_zero: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\nvalidity = \"0d\"\n",
        key: "clients.admin.validity",
        line: Some("validity"),
        also: &["longer than zero"],
        ..Case::DEFAULT
    };
    renew_before_longer_than_validity: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\nvalidity = \"30d\"\n\
                 renew_before = \"6w\"\n",
        key: "clients.admin.renew_before",
        line: Some("renew_before"),
        also: &["not shorter than the validity"],
        ..Case::DEFAULT
    };
    renew_before_equal_to_validity: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\nvalidity = \"4w\"\n\
                 renew_before = \"28d\"\n",
        key: "clients.admin.renew_before",
        line: Some("renew_before"),
        also: &["not shorter than the validity"],
        ..Case::DEFAULT
    };
    renew_before_hundred_percent: Case {
        config: "{SERVER}\n[clients.admin]\nclearance = \"ClusterAdmin\"\nrenew_before = \"100%\"\n",
        key: "clients.admin.renew_before",
        line: Some("renew_before"),
        also: &["1% to 99%"],
        ..Case::DEFAULT
    };

    // --- [server] and [store].
    generated_client_without_server: Case {
        config: "version = 1\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "clients.admin",
        line: Some("[clients.admin]"),
        also: &["[server]"],
        ..Case::DEFAULT
    };
    server_generate_without_name: Case {
        config: "version = 1\n[server]\ngenerate = true\nkey = \"ec-p256\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "server.name",
        line: Some("[server]"),
        also: &["needs `name`"],
        ..Case::DEFAULT
    };
    max_deletions_negative: Case {
        config: "{SERVER}\n[store]\nmax_deletions = -1\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "store.max_deletions",
        line: Some("max_deletions"),
        also: &["from 0"],
        ..Case::DEFAULT
    };
    max_deletions_fractional: Case {
        config: "{SERVER}\n[store]\nmax_deletions = 1.5\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "max_deletions",
        line: Some("max_deletions"),
        ..Case::DEFAULT
    };
    // --- The store is a folder of its own (issue 10 #12).
    store_is_config_folder: Case {
        config: "{SERVER}\n[store]\npath = \".\"\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "store.path",
        line: Some("path = \".\""),
        also: &["folder of certs.toml"],
        ..Case::DEFAULT
    };
    store_path_empty: Case {
        config: "{SERVER}\n[store]\npath = \"\"\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "store.path",
        line: Some("path = \"\""),
        also: &["must name a folder"],
        ..Case::DEFAULT
    };
    store_path_back_to_config_folder: Case {
        config: "{SERVER}\n[store]\npath = \"sub/..\"\n\n[clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "store.path",
        line: Some("path = \"sub/..\""),
        also: &["folder of certs.toml"],
        ..Case::DEFAULT
    };

    // --- Client keys (issue 10 #6).
    client_key_server_is_reserved: Case {
        config: "{SERVER}\n[clients.server]\nclearance = \"ClusterAdmin\"\n",
        key: "clients.server",
        line: Some("[clients.server]"),
        also: &["--replace server"],
        ..Case::DEFAULT
    };

    // --- Empty passwords protect nothing (issue 10 #18).
    password_file_empty: Case {
        config: "{SERVER}\n[clients.app]\nclearance = \"Operator\"\npassword_file = \"secrets/app.pass\"\n",
        key: "clients.app.password_file",
        line: Some("password_file"),
        also: &["is empty"],
        files: &[("secrets/app.pass", "\n")],
    };
    password_env_value_empty: Case {
        config: "{SERVER}\n[clients.app]\nclearance = \"Operator\"\npassword_env = \"RAVENCERT_TEST_EMPTY_PASSWORD\"\n",
        key: "clients.app.password_env",
        line: Some("password_env"),
        also: &["is empty"],
        ..Case::DEFAULT
    };

    // --- Renewal windows against the real lifetime (issue 10 #3, #24).
    renew_share_always_due: Case {
        config: "{SERVER}\n[clients.app]\nclearance = \"Operator\"\nvalidity = \"30d\"\nrenew_before = \"90%\"\n",
        key: "clients.app.renew_before",
        line: Some("renew_before"),
        also: &["back-dating", "every run"],
        ..Case::DEFAULT
    };
    default_renew_share_always_due: Case {
        // Right after SERVER, so inside its [defaults].
        config: "{SERVER}validity = \"30d\"\nrenew_before = \"90%\"\n\n[clients.app]\nclearance = \"Operator\"\n",
        key: "defaults.renew_before",
        line: Some("renew_before"),
        also: &["every run"],
        ..Case::DEFAULT
    };
    validity_shorter_than_default_renew: Case {
        // The client sets no renew_before: the error is at the validity it sets.
        config: "{SERVER}\n[clients.app]\nclearance = \"Operator\"\nvalidity = \"20d\"\n",
        key: "clients.app.validity",
        line: Some("validity = \"20d\""),
        also: &["renew_before 30d"],
        ..Case::DEFAULT
    };

    // --- What plan refuses, validate refuses too (issue 10 #7, #13).
    export_folder_is_a_file: Case {
        config: "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\nkey = \"ec-p256\"\n\
                 export = \"exports/cluster.pfx/nested.pfx\"\n[defaults]\nkey = \"ec-p256\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "server.export",
        line: Some("export ="),
        also: &["is a file, not a folder"],
        ..Case::DEFAULT
    };
    export_inside_store: Case {
        config: "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\nkey = \"ec-p256\"\n\
                 export = \"store/pub/cluster.pfx\"\n[defaults]\nkey = \"ec-p256\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "server.export",
        line: Some("export ="),
        also: &["inside the store"],
        ..Case::DEFAULT
    };
    // --- [server] install: the server certificate with its key, for a node.
    install_inline_password: Case {
        config: "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\nkey = \"ec-p256\"\n\
                 export = \"exports/cluster.pfx\"\n                 install = { path = \"node/server.pfx\", password = \"hunter2-inline-secret\" }\n[defaults]\nkey = \"ec-p256\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "server.install.password",
        line: Some("install ="),
        also: &["password_env", "password = ***"],
        ..Case::DEFAULT
    };
    install_unknown_profile: Case {
        config: "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\nkey = \"ec-p256\"\n\
                 export = \"exports/cluster.pfx\"\n                 install = { path = \"node/server.pfx\", pfx = \"rc2\" }\n[defaults]\nkey = \"ec-p256\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "server.install",
        line: Some("install ="),
        also: &["unknown variant `rc2`"],
        ..Case::DEFAULT
    };
    install_without_path: Case {
        config: "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\nkey = \"ec-p256\"\n\
                 export = \"exports/cluster.pfx\"\n                 install = { pfx = \"legacy\" }\n[defaults]\nkey = \"ec-p256\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "server.install",
        line: Some("install ="),
        also: &["missing field `path`"],
        ..Case::DEFAULT
    };
    install_empty_path: Case {
        config: "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\nkey = \"ec-p256\"\n\
                 export = \"exports/cluster.pfx\"\n                 install = { path = \"\" }\n[defaults]\nkey = \"ec-p256\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "server.install.path",
        line: Some("install ="),
        also: &["must name the .pfx a node loads"],
        ..Case::DEFAULT
    };
    install_two_password_sources: Case {
        config: "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\nkey = \"ec-p256\"\n\
                 export = \"exports/cluster.pfx\"\n                 install = { path = \"node/server.pfx\", password_env = \"ORDERS_APP_PFX_PASSWORD\", password_file = \"secrets/node.pass\" }\n[defaults]\nkey = \"ec-p256\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "server.install.password_file",
        line: Some("install ="),
        also: &["not both"],
        ..Case::DEFAULT
    };
    install_password_env_unset: Case {
        config: "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\nkey = \"ec-p256\"\n\
                 export = \"exports/cluster.pfx\"\n                 install = { path = \"node/server.pfx\", password_env = \"RAVENCERT_TEST_UNSET_PASSWORD\" }\n[defaults]\nkey = \"ec-p256\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "server.install.password_env",
        line: Some("install ="),
        also: &["RAVENCERT_TEST_UNSET_PASSWORD is not set"],
        ..Case::DEFAULT
    };
    install_inside_store: Case {
        config: "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\nkey = \"ec-p256\"\n\
                 export = \"exports/cluster.pfx\"\n                 install = { path = \"store/node/server.pfx\", pfx = \"legacy\" }\n[defaults]\nkey = \"ec-p256\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "server.install",
        line: Some("install ="),
        also: &["inside the store", "where a RavenDB node loads"],
        ..Case::DEFAULT
    };
    install_is_the_export: Case {
        config: "version = 1\n[server]\ngenerate = true\nname = \"cluster.example.com\"\nkey = \"ec-p256\"\n\
                 export = \"exports/cluster.pfx\"\n                 install = { path = \"exports/cluster.pfx\" }\n[defaults]\nkey = \"ec-p256\"\n\n\
                 [clients.admin]\nclearance = \"ClusterAdmin\"\n",
        key: "server.install",
        line: Some("install ="),
        also: &["is also [server].export", "private key"],
        ..Case::DEFAULT
    };
    upload_expired: Case {
        config: "{SERVER}\n[clients.old-partner]\nclearance = \"ValidUser\"\ndatabases = { Orders = \"Read\" }\n\
                 upload = \"trust/old.crt\"\n",
        key: "clients.old-partner.upload",
        line: Some("upload ="),
        also: &["expired on", "CN=Old Partner"],
        files: &[("trust/old.crt", EXPIRED_PEM)],
    };
    one_certificate_under_two_clients: Case {
        config: "{SERVER}\n[clients.partner-a]\nclearance = \"ValidUser\"\ndatabases = { Orders = \"Read\" }\n\
                 upload = \"trust/partner.crt\"\n\n[clients.partner-b]\nclearance = \"ValidUser\"\n\
                 databases = { Orders = \"Read\" }\nupload = \"trust/partner-copy.crt\"\n",
        key: "clients.partner-b.upload",
        line: Some("upload = \"trust/partner-copy.crt\""),
        also: &["also declared by clients.partner-a"],
        files: &[("trust/partner.crt", PARTNER_PEM), ("trust/partner-copy.crt", PARTNER_PEM)],
    };

    // --- [cluster] (docs/contract.md §7, issue 13).
    cluster_unknown_key: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurl = \"https://a.cluster.example.com\"\nadmin = \"admin\"\n",
        key: "url",
        line: Some("url ="),
        also: &["unknown field `url`"],
        ..Case::DEFAULT
    };
    cluster_urls_missing: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nadmin = \"admin\"\n",
        key: "cluster",
        line: Some("[cluster]"),
        also: &["missing field `urls`"],
        ..Case::DEFAULT
    };
    cluster_urls_empty: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = []\nadmin = \"admin\"\n",
        key: "cluster.urls",
        line: Some("urls = []"),
        also: &["at least one node"],
        ..Case::DEFAULT
    };
    cluster_url_plain_http: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\n  \"https://a.cluster.example.com\",\n  \"http://b.cluster.example.com:8080\",\n]\nadmin = \"admin\"\n",
        key: "cluster.urls[1]",
        line: Some("\"http://b"),
        also: &["plain http", "https://"],
        ..Case::DEFAULT
    };
    cluster_url_with_password: Case {
        // The password in the URL is masked in the line shown, like a `password = ...`.
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://ops:hunter2-inline-secret@a.cluster.example.com\"]\nadmin = \"admin\"\n",
        key: "cluster.urls[0]",
        line: Some("urls ="),
        also: &["user name or password", "https://***@a.cluster.example.com"],
        ..Case::DEFAULT
    };
    cluster_url_with_query: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com/?database=Orders\"]\nadmin = \"admin\"\n",
        key: "cluster.urls[0]",
        line: Some("urls ="),
        also: &["has a query", "node's address only"],
        ..Case::DEFAULT
    };
    cluster_url_with_fragment: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com/studio#admin/certificates\"]\nadmin = \"admin\"\n",
        key: "cluster.urls[0]",
        line: Some("urls ="),
        also: &["has a fragment"],
        ..Case::DEFAULT
    };
    cluster_url_listed_twice: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\n  \"https://a.cluster.example.com\",\n  \"https://a.cluster.example.com/\",\n]\nadmin = \"admin\"\n",
        key: "cluster.urls[1]",
        line: Some("\"https://a.cluster.example.com/\""),
        also: &["listed twice"],
        ..Case::DEFAULT
    };
    cluster_without_admin: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\n",
        key: "cluster",
        line: Some("[cluster]"),
        also: &["admin = ", "admin_certificate = "],
        ..Case::DEFAULT
    };
    cluster_admin_and_admin_certificate: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"admin\"\n\
                 admin_certificate = { path = \"secrets/admin.pfx\" }\n",
        key: "cluster.admin_certificate",
        line: Some("admin_certificate ="),
        also: &["choose one"],
        ..Case::DEFAULT
    };
    cluster_admin_not_declared: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"root\"\n",
        key: "cluster.admin",
        line: Some("admin = \"root\""),
        also: &["no client 'root' is declared", "admin, orders-app"],
        ..Case::DEFAULT
    };
    cluster_admin_is_an_upload: Case {
        config: "{SERVER}{CLIENTS}[clients.partner]\nclearance = \"ClusterAdmin\"\nupload = \"trust/partner.crt\"\n\n\
                 [cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"partner\"\n",
        key: "cluster.admin",
        line: Some("admin = \"partner\""),
        also: &["clients.partner is an upload", "admin_certificate"],
        files: &[("trust/partner.crt", PARTNER_PEM)],
    };
    cluster_admin_is_a_valid_user: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"orders-app\"\n",
        key: "cluster.admin",
        line: Some("admin = \"orders-app\""),
        also: &["ValidUser, which cannot manage certificates"],
        ..Case::DEFAULT
    };
    cluster_admin_is_disabled: Case {
        config: "{SERVER}{CLIENTS}[clients.root]\nclearance = \"ClusterAdmin\"\ndisabled = true\n\n\
                 [cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"root\"\n",
        key: "cluster.admin",
        line: Some("admin = \"root\""),
        also: &["clients.root is disabled", "name another client"],
        ..Case::DEFAULT
    };
    cluster_admin_operator_beside_a_cluster_admin: Case {
        // docs/ravendb.md: an Operator manages Operator and ValidUser certificates only.
        config: "{SERVER}{CLIENTS}[clients.ops]\nclearance = \"Operator\"\n\n\
                 [cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"ops\"\n",
        key: "cluster.admin",
        line: Some("admin = \"ops\""),
        also: &["an Operator cannot manage ClusterAdmin certificates (clients.admin)"],
        ..Case::DEFAULT
    };
    cluster_admin_certificate_missing: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\n\
                 admin_certificate = { path = \"secrets/admin.pfx\", password_env = \"ORDERS_APP_PFX_PASSWORD\" }\n",
        key: "cluster.admin_certificate.path",
        line: Some("admin_certificate ="),
        also: &["secrets/admin.pfx does not exist"],
        ..Case::DEFAULT
    };
    cluster_admin_certificate_password_unset: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\n\
                 admin_certificate = { path = \"secrets/admin.pfx\", password_env = \"RAVENCERT_TEST_UNSET_PASSWORD\" }\n",
        key: "cluster.admin_certificate.password_env",
        line: Some("admin_certificate ="),
        also: &["RAVENCERT_TEST_UNSET_PASSWORD is not set"],
        files: &[("secrets/admin.pfx", "not really a pfx")],
    };
    cluster_admin_certificate_inline_password: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\n\
                 admin_certificate = { path = \"secrets/admin.pfx\", password_env = \"ORDERS_APP_PFX_PASSWORD\", password = \"hunter2-inline-secret\" }\n",
        key: "cluster.admin_certificate.password",
        line: Some("admin_certificate ="),
        also: &["password_env", "password = ***"],
        files: &[("secrets/admin.pfx", "not really a pfx")],
    };
    cluster_ca_store_without_server: Case {
        // Uploads need no [server]; pinning to the store's server certificate does.
        config: "version = 1\n[clients.partner]\nclearance = \"Operator\"\nupload = \"trust/partner.crt\"\n\n\
                 [cluster]\nurls = [\"https://a.cluster.example.com\"]\n\
                 admin_certificate = { path = \"secrets/admin.pfx\" }\n",
        key: "cluster",
        line: Some("[cluster]"),
        also: &["declares no [server]", "ca = \"system\""],
        files: &[("trust/partner.crt", PARTNER_PEM), ("secrets/admin.pfx", "x")],
    };
    cluster_ca_file_missing: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"admin\"\nca = \"trust/cluster-ca.pem\"\n",
        key: "cluster.ca",
        line: Some("ca = "),
        also: &["trust/cluster-ca.pem does not exist"],
        ..Case::DEFAULT
    };
    cluster_ca_file_not_a_certificate: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"admin\"\nca = \"trust/cluster-ca.pem\"\n",
        key: "cluster.ca",
        line: Some("ca = "),
        also: &["trust/cluster-ca.pem", "not a certificate"],
        files: &[("trust/cluster-ca.pem", "just some text, no certificate here\n")],
    };
    cluster_ca_empty: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"admin\"\nca = \"\"\n",
        key: "cluster.ca",
        line: Some("ca = "),
        also: &["\"store\", \"system\" or the path of a PEM file"],
        ..Case::DEFAULT
    };
    cluster_timeout_too_long: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"admin\"\ntimeout = \"1h\"\n",
        key: "cluster.timeout",
        line: Some("timeout"),
        also: &["must be at most 10min"],
        ..Case::DEFAULT
    };
    cluster_timeout_zero: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"admin\"\ntimeout = \"0s\"\n",
        key: "cluster.timeout",
        line: Some("timeout"),
        also: &["must be at least 1s"],
        ..Case::DEFAULT
    };
    // --- [cluster] keep: known strangers, by thumbprint (issue 23).
    cluster_keep_thumbprint_not_hex: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"admin\"\n\
                 keep = [\n  { thumbprint = \"0123456789ABCDEF0123456789ABCDEF0123456G\" },\n]\n",
        key: "cluster.keep[0].thumbprint",
        line: Some("{ thumbprint"),
        also: &["40 hex digits"],
        ..Case::DEFAULT
    };
    cluster_keep_listed_twice: Case {
        // The same thumbprint in another case: one registration.
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"admin\"\n\
                 keep = [\n  { thumbprint = \"0123456789abcdef0123456789abcdef01234567\", note = \"backup\" },\n  \
                 { thumbprint = \"0123456789ABCDEF0123456789ABCDEF01234567\" },\n]\n",
        key: "cluster.keep[1].thumbprint",
        line: Some("{ thumbprint = \"0123456789ABCDEF"),
        also: &["listed twice"],
        ..Case::DEFAULT
    };
    cluster_keep_note_too_long: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"admin\"\n\
                 keep = [{ thumbprint = \"0123456789ABCDEF0123456789ABCDEF01234567\", note = \"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\" }]\n",
        key: "cluster.keep[0].note",
        line: Some("keep = "),
        also: &["at most 200 characters"],
        ..Case::DEFAULT
    };
    cluster_keep_unknown_key: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"admin\"\n\
                 keep = [{ thumbprint = \"0123456789ABCDEF0123456789ABCDEF01234567\", owner = \"backup\" }]\n",
        key: "cluster.keep",
        line: Some("keep = "),
        also: &["unknown field `owner`"],
        ..Case::DEFAULT
    };
    cluster_timeout_bare_m: Case {
        config: "{SERVER}{CLIENTS}[cluster]\nurls = [\"https://a.cluster.example.com\"]\nadmin = \"admin\"\ntimeout = \"5m\"\n",
        key: "cluster.timeout",
        line: Some("timeout"),
        also: &["did you mean `min` or `mo`?"],
        ..Case::DEFAULT
    };
}

/// A certificate that expired on 2026-11-27 (`openssl x509 -days -1`), public part only.
const EXPIRED_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBgTCCASegAwIBAgIURVSgxsabNbkwszbXuIceLHa2blYwCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLT2xkIFBhcnRuZXIwHhcNMjYxMTI4MTgxMDE0WhcNMjYxMTI3
MTgxMDE0WjAWMRQwEgYDVQQDDAtPbGQgUGFydG5lcjBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABK/WqfWNrO8VCrz367ePcwtV1R4APzyEqdYWkY/88CS0aCm4JeGo
CIVmdKPOgwzJIWqemKBxfe0OxKMvnl6AZrKjUzBRMB0GA1UdDgQWBBTa1P1Qo6BP
+MFmW7kn0/FrblAl5DAfBgNVHSMEGDAWgBTa1P1Qo6BP+MFmW7kn0/FrblAl5DAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIEvuU6qv7nBsVKlw1pMq
VIv3JcdvHzt3jARBVgL5ZGv1AiEAkWTa33MFQA4r+xTUPoeocUj/SiyAw1WlkryP
3auMiqs=
-----END CERTIFICATE-----\n";

/// A partner's certificate valid until 2126, public part only.
const PARTNER_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBjDCCATGgAwIBAgIUQHbhfSxZkVuQqGekV/AojwmQAhMwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPUGFydG5lciBTZXJ2aWNlMCAXDTI2MTEyODE4MTAxOFoYDzIx
MjYxMTA0MTgxMDE4WjAaMRgwFgYDVQQDDA9QYXJ0bmVyIFNlcnZpY2UwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAATBH7M1qiwYYpwWiy3vc0r/F6ZUsmsQ71BLKS7i
4ZTCVAHQsm/mxuqxbkg0hrRESb3nBUzM+ZcAgAtxoDiuVbkyo1MwUTAdBgNVHQ4E
FgQUWS8u+k/Cwqagzm/9vn/mpP9Xz0MwHwYDVR0jBBgwFoAUWS8u+k/Cwqagzm/9
vn/mpP9Xz0MwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAlhwh
f1m81TY0/Kvtqw/66rhPlXDJRXNt/6eELNRAjKICIQDQIFeQttuU4Pq7Th4LC6bA
AcdPInbtiX2OHL1QSd3DcA==
-----END CERTIFICATE-----\n";

/// A case's config with `{SERVER}` and `{CLIENTS}` (the good clients) filled in.
fn expand(config: &str) -> String {
    config
        .replace("{SERVER}", common::SERVER)
        .replace("{CLIENTS}", &format!("{GOOD_CLIENTS}\n"))
}

/// Line number (1-based) of the one place `marker` starts in `text`.
fn line_of(text: &str, marker: &str) -> usize {
    let found: Vec<usize> = text.match_indices(marker).map(|(i, _)| i).collect();
    assert_eq!(
        found.len(),
        1,
        "line marker {marker:?} must occur exactly once in:\n{text}"
    );
    text[..found[0]].matches('\n').count() + 1
}

/// The cases whose problem is a generated client's bundle password that is not there: a
/// secret is read only when it is used (issue 22), so validate warns, plan plans the bundle
/// (naming the password as added) and only the apply that writes the bundle refuses.
const ONLY_APPLY_NEEDS: &[&str] = &["password_env_unset", "password_file_missing"];

fn check(name: &str, case: &Case) {
    assert!(
        std::env::var_os(UNSET_VAR).is_none(),
        "{UNSET_VAR} must not be set for these tests"
    );
    let good = format!("{}{GOOD_CLIENTS}", common::SERVER);
    let env = Env::new()
        .env("ORDERS_APP_PFX_PASSWORD", ENV_SECRET)
        .env("RAVENCERT_TEST_EMPTY_PASSWORD", "");
    env.config(&good);
    env.run(&["apply", "--yes"]).success();
    assert!(env.snapshot().len() > 3, "apply wrote no store");
    assert!(
        env.path("exports/cluster.pfx").is_file(),
        "apply wrote no export"
    );

    for (rel, text) in case.files {
        env.write(rel, text);
    }
    let config = expand(case.config);
    env.config(&config);
    let location = match case.line {
        Some(marker) => format!("certs.toml:{}:", line_of(&config, marker)),
        None => "certs.toml".to_string(),
    };

    // Each run is refused and leaves the folder (the store, the export) byte for byte as it was.
    let mut refusing = vec![&["validate"][..], &["plan"], &["apply", "--yes"]];
    if ONLY_APPLY_NEEDS.contains(&name) {
        refusing.drain(..2);
        let validate = env.run(&["validate"]).success();
        assert!(
            validate.stdout.contains(&format!("warning: {}", case.key)),
            "{}",
            validate.shown()
        );
        let plan = env.run(&["plan"]).success();
        assert!(
            plan.stdout.contains("bundle: password added"),
            "{}",
            plan.shown()
        );
        for r in [&validate, &plan] {
            r.hides(&[ENV_SECRET, FILE_SECRET, INLINE_SECRET]);
        }
    }
    for args in refusing {
        let run = env.cmd(args).refused(case.also);
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains(&location) && l.contains(case.key)),
            "expected an error line naming {location:?} and {:?}\n{}\nconfig:\n{config}",
            case.key,
            run.shown()
        );
        run.hides(&[ENV_SECRET, FILE_SECRET, INLINE_SECRET]);
    }

    // The store is still the good one: back on the good config there is nothing to do.
    env.config(&good);
    env.run(&["plan", "--detailed-exitcode"]).success();
}

/// A good `[cluster]` (issue 13): validate accepts it, and with `--offline` the store's plan and
/// apply do not change for it. Its URLs name a closed local port: without `--offline` the plan
/// fails naming every node tried, and nothing changes.
const GOOD_CLUSTER: &str = "\n[cluster]\nurls = [\"https://127.0.0.1:1/\", \"https://[::1]:1\"]\nadmin = \"admin\"\nprune = true\ntimeout = \"10s\"\n";

#[test]
fn a_good_cluster_section_validates_and_leaves_the_store_alone() {
    let good = format!("{}{GOOD_CLIENTS}", common::SERVER);
    let env = Env::new().env("ORDERS_APP_PFX_PASSWORD", ENV_SECRET);
    env.config(&good);
    env.run(&["apply", "--yes"]).success();
    let before = env.snapshot();

    env.config(&format!("{good}{GOOD_CLUSTER}"));
    env.run(&["validate"]).success();
    common::schema_check(&format!("{good}{GOOD_CLUSTER}")).unwrap();
    // The section itself is a settings change (new urls: flagged), and nothing else.
    let plan = env.run(&["plan", "--detailed-exitcode", "--offline"]);
    assert_eq!(plan.code, 2, "{}", plan.shown());
    assert!(
        plan.stdout.contains("~ settings cluster  [ESCALATION]")
            && plan
                .stdout
                .contains("Plan: 0 to create, 1 to update, 0 to replace"),
        "{}",
        plan.stdout
    );
    env.run(&["apply", "--yes", "--offline"]).success();
    env.cmd(&["plan"]).refused(&[
        "no cluster node answered",
        "https://127.0.0.1:1",
        "https://[::1]:1",
    ]);
    // The apply recorded the settings in the registry; no certificate, key or bundle changed.
    let changed: Vec<String> = common::changed_paths(&before, &env.snapshot())
        .into_iter()
        .filter(|p| !p.ends_with("/.lock"))
        .filter(|p| {
            !["registry.toml", ".registry.applied", ".verified.json"]
                .iter()
                .any(|f| p.ends_with(f))
        })
        .collect();
    assert!(
        changed.is_empty(),
        "apply with [cluster] changed {changed:?}"
    );
    let registry = std::fs::read_to_string(env.store().join("registry.toml")).unwrap();
    assert!(registry.contains("[settings.cluster]"), "{registry}");

    // An admin .pfx and a CA file outside the store, named relative to certs.toml.
    std::fs::create_dir_all(env.path("trust")).unwrap();
    let server = env.run(&["status", "--json", "--offline"]).success().json()["server"][0]
        ["thumbprint"]
        .as_str()
        .unwrap()
        .to_string();
    let server_pem = env.store().join("certs").join(format!("{server}.pem"));
    std::fs::copy(server_pem, env.path("trust/cluster-ca.pem")).unwrap();
    env.write("secrets/admin.pfx", "read when the cluster is contacted");
    let pfx = format!(
        "{good}\n[cluster]\nurls = [\"https://127.0.0.1:1\"]\nca = \"trust/cluster-ca.pem\"\n\
         admin_certificate = {{ path = \"secrets/admin.pfx\", password_env = \"ORDERS_APP_PFX_PASSWORD\" }}\n"
    );
    env.config(&pfx);
    common::schema_check(&pfx).unwrap();
    env.run(&["validate"]).success();
    // Another CA and admin identity: flagged settings changes, nothing else.
    let plan = env.run(&["plan", "--detailed-exitcode", "--offline"]);
    assert_eq!(plan.code, 2, "{}", plan.shown());
    for s in [
        "ca: store -> trust/cluster-ca.pem",
        "admin: clients.admin -> certificate secrets/admin.pfx",
        "admin identity changed",
    ] {
        assert!(plan.stdout.contains(s), "{s}: {}", plan.stdout);
    }

    // From an empty folder, a config with [cluster] applies the store as without it.
    let fresh = Env::new().env("ORDERS_APP_PFX_PASSWORD", ENV_SECRET);
    fresh.config(&format!("{good}{GOOD_CLUSTER}"));
    fresh.run(&["apply", "--yes", "--offline"]).success();
    fresh
        .run(&["plan", "--detailed-exitcode", "--offline"])
        .success();
    let status = fresh
        .run(&["status", "--json", "--offline"])
        .success()
        .json();
    assert_eq!(status["certificates"].as_array().unwrap().len(), 2);
}

/// The bad configs that the JSON schema cannot refuse, and why: a rule about two values at once
/// or about the world outside the file. Every other case must be refused by the schema too, so
/// that an editor with the `#:schema` line flags it while it is typed.
const SCHEMA_CANNOT_EXPRESS: &[&str] = &[
    // Names unique among clients, ignoring case: a rule across table entries.
    "duplicate_name",
    "duplicate_name_differing_in_case",
    "duplicate_name_with_other_clients_key",
    "duplicate_name_by_lookalike_letters",
    // Database names unique ignoring case: JSON keys are compared exactly.
    "database_names_differing_in_case",
    // Files and environment variables: not in the file.
    "upload_file_missing",
    "upload_file_not_a_certificate",
    "server_certificates_file_missing",
    // Whether a node file holds its private key: in the file, not certs.toml.
    "generated_client_with_keyless_server",
    "install_with_keyless_server",
    "password_env_unset",
    "password_file_missing",
    "password_env_value_empty",
    "password_file_empty",
    "upload_expired",
    "one_certificate_under_two_clients",
    "export_folder_is_a_file",
    "export_inside_store",
    "install_password_env_unset",
    "install_inside_store",
    "install_is_the_export",
    // renew_before shorter than validity: arithmetic on two durations (a share, too).
    "renew_before_longer_than_validity",
    "renew_before_equal_to_validity",
    "renew_share_always_due",
    "default_renew_share_always_due",
    "validity_shorter_than_default_renew",
    // A store path that climbs back to certs.toml's folder: counting `..` against folders.
    "store_path_back_to_config_folder",
    // [cluster] admin: a reference to a declared client and its clearance, across tables.
    "cluster_admin_not_declared",
    "cluster_admin_is_an_upload",
    "cluster_admin_is_a_valid_user",
    "cluster_admin_operator_beside_a_cluster_admin",
    "cluster_admin_is_disabled",
    // [cluster] files and secrets: not in the file.
    "cluster_admin_certificate_missing",
    "cluster_admin_certificate_password_unset",
    "cluster_ca_file_missing",
    "cluster_ca_file_not_a_certificate",
    // The same node twice once trailing slashes are stripped: uniqueItems compares as written.
    "cluster_url_listed_twice",
    // The same kept thumbprint in another case: uniqueItems compares as written.
    "cluster_keep_listed_twice",
];

#[test]
fn schema_refuses_every_bad_config_it_can_express() {
    let accepted: Vec<&str> = CASES
        .iter()
        .filter(|(_, case)| common::schema_check(&expand(case.config)).is_ok())
        .map(|(name, _)| *name)
        .collect();
    let mut expected = SCHEMA_CANNOT_EXPRESS.to_vec();
    expected.sort_unstable();
    let mut accepted_sorted = accepted.clone();
    accepted_sorted.sort_unstable();
    assert_eq!(
        accepted_sorted, expected,
        "the schema accepts exactly the cases it cannot express"
    );
    // The good config these cases start from passes.
    let good = format!("{}{GOOD_CLIENTS}", common::SERVER);
    common::schema_check(&good).unwrap();
}

#[test]
fn table_covers_enough_cases() {
    let active = CASES.len();
    assert!(active >= 18, "only {active} bad configs");
    let mut names: Vec<&str> = CASES.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len());
    for (name, case) in CASES {
        assert!(
            !case.config.is_empty() && !case.key.is_empty(),
            "{name} is incomplete"
        );
    }
}
