//! The layout docs/architecture.md asks for, checked on the sources so that it cannot rot silently:
//! the planner and the renderer stay pure (no store, crypto or file reading), nothing below the
//! command layer reaches up into it, modules form no cycle, and no function grows past 80 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name -> the crate modules it imports (`use crate::x` or a `crate::x::` path).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for entry in walk(&src) {
        let rel = entry.strip_prefix(&src).expect("under src");
        let module = module_of(rel);
        if module == "main" || module == "lib" || is_test_file(rel) {
            continue;
        }
        let text = std::fs::read_to_string(&entry).expect("source is UTF-8");
        let body: String = strip_tests(&text)
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let deps: &mut BTreeSet<String> = graph.entry(module.clone()).or_default();
        for (i, _) in body.match_indices("crate::") {
            let rest = &body[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module && is_module(&src, &name) {
                deps.insert(name);
            }
        }
    }
    graph
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("src readable") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `plan/project.rs` and `plan/mod.rs` both belong to module `plan`.
fn module_of(rel: &Path) -> String {
    let first = rel.components().next().expect("non-empty");
    let s = first.as_os_str().to_string_lossy();
    s.trim_end_matches(".rs").to_string()
}

fn is_module(src: &Path, name: &str) -> bool {
    src.join(format!("{name}.rs")).is_file() || src.join(name).join("mod.rs").is_file()
}

/// The text before an inline unit-test module (`mod tests {` at the end of a file): tests may
/// import whatever they need. A declaration `mod tests;` cuts nothing: the code after it is the
/// module's own (cutting there skipped most of plan/mod.rs and config/mod.rs); the test file
/// it names is passed over whole (see [`is_test_file`]).
fn strip_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// A unit-test module in its own file (`tests.rs`, `*_tests.rs`, or under a `tests/` folder):
/// all of it is test code.
fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
}

#[test]
fn strip_tests_cuts_only_an_inline_test_module() {
    let declared = "#[cfg(test)]\nmod tests;\nfn after() {}\n";
    assert_eq!(strip_tests(declared), declared);
    let inline = "fn code() {}\n#[cfg(test)]\nmod tests {\n    use x;\n}\n";
    assert_eq!(strip_tests(inline), "fn code() {}\n");
}

/// Every module reachable from `from` through imports.
fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(m) = todo.pop() {
        for d in graph.get(&m).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn planner_and_renderer_import_no_io_or_crypto() {
    let graph = import_graph();
    for pure in ["plan", "render"] {
        let deps = graph.get(pure).cloned().unwrap_or_default();
        for banned in ["store", "pki", "inputs", "fsutil", "git", "apply", "ops"] {
            assert!(
                !deps.contains(banned),
                "{pure} imports {banned}; the planner and renderer work on plain data (imports: {deps:?})"
            );
        }
    }
}

#[test]
fn nothing_below_the_commands_imports_them() {
    let graph = import_graph();
    for (module, deps) in &graph {
        if module == "ops" || module == "cli" {
            continue;
        }
        assert!(
            !deps.contains("ops") && !deps.contains("cli"),
            "{module} imports the command layer: {deps:?}"
        );
    }
}

#[test]
fn modules_form_no_cycle() {
    let graph = import_graph();
    for module in graph.keys() {
        assert!(
            !reachable(&graph, module).contains(module),
            "module {module} imports itself through {:?}",
            graph.get(module)
        );
    }
}

#[test]
fn no_function_over_80_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut long = Vec::new();
    for file in walk(&src) {
        if is_test_file(file.strip_prefix(&src).expect("under src")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("source is UTF-8");
        let lines: Vec<&str> = strip_tests(&text).lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let Some(indent) = fn_start(lines[i]) else {
                i += 1;
                continue;
            };
            // A declaration without a body (trait method) ends at its `;`.
            let mut open = i;
            while open < lines.len() && !lines[open].trim_end().ends_with('{') {
                if lines[open].trim_end().ends_with(';') {
                    break;
                }
                open += 1;
            }
            let close = (open + 1..lines.len())
                .find(|&k| {
                    let l = lines[k];
                    l.len() - l.trim_start().len() == indent && l.trim_start().starts_with('}')
                })
                .unwrap_or(open);
            let n = close.saturating_sub(i) + 1;
            if n > 80 {
                long.push(format!("{}:{} ({n} lines)", file.display(), i + 1));
            }
            i = close.max(i) + 1;
        }
    }
    assert!(long.is_empty(), "functions over 80 lines: {long:#?}");
}

/// A file is a room a reader can hold in mind: none in src/ over 1,000 lines, tests included
/// (split a module along its seams into a folder, as config/, store/ and ravendb/ are).
#[test]
fn no_source_file_over_1000_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let big: Vec<String> = walk(&src)
        .into_iter()
        .filter_map(|file| {
            let n = std::fs::read_to_string(&file).ok()?.lines().count();
            (n > 1000).then(|| format!("{} ({n} lines)", file.display()))
        })
        .collect();
    assert!(big.is_empty(), "source files over 1,000 lines: {big:#?}");
}

/// The indentation of a line that starts a function definition.
fn fn_start(line: &str) -> Option<usize> {
    let t = line.trim_start();
    let t = t.strip_prefix("pub(crate) ").unwrap_or(t);
    let t = t.strip_prefix("pub ").unwrap_or(t);
    let t = t.strip_prefix("const ").unwrap_or(t);
    let t = t.strip_prefix("async ").unwrap_or(t);
    t.starts_with("fn ")
        .then(|| line.len() - line.trim_start().len())
}

#[test]
fn no_too_many_arguments_allowance() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for file in walk(&src) {
        let text = std::fs::read_to_string(&file).expect("source is UTF-8");
        assert!(
            !text.contains("too_many_arguments"),
            "{} allows too_many_arguments: carry the arguments in a value instead",
            file.display()
        );
    }
}

/// The repository stands alone: its docs live in `docs/`, so no source, test, script or top-level
/// document may send a reader to a file that is not in it (the product contract, the RavenDB
/// notes and the style notes were once kept outside, as SPEC/RAVENDB/STYLE files).
#[test]
fn no_citation_of_documents_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Built from parts so that this test does not cite them itself.
    let outside: Vec<String> = [
        ("SPEC", ".md"),
        ("SPEC", " §"),
        ("RAVENDB", ".md"),
        ("STYLE", ".md"),
        ("RAVENDB-TEST", "-SERVER"),
    ]
    .iter()
    .map(|(a, b)| format!("{a}{b}"))
    .collect();
    let mut files = vec![root.join("README.md"), root.join("SECURITY.md")];
    for dir in ["src", "tests", "scripts", "docs"] {
        files.extend(walk_all(&root.join(dir)));
    }
    let mut found = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue; // binary fixtures
        };
        for (n, line) in text.lines().enumerate() {
            // Case matters: `scripts/ravendb-test-server.sh` is the repository's own script.
            if outside.iter().any(|o| line.contains(o.as_str())) {
                let rel = file.strip_prefix(root).unwrap_or(&file);
                found.push(format!("{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "cite docs/contract.md, docs/ravendb.md or docs/architecture.md instead: {found:#?}"
    );
}

/// Every file under `dir` (any extension); none when it does not exist.
fn walk_all(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk_all(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Thumbprints are typed (issue 24): every field named `thumbprint`, `thumbprints`,
/// `*_thumbprint` or `*_thumbprints` of a `pub` or `pub(crate)` struct in src/ has a type built on
/// `Thumbprint` (40 upper-case hex digits, upper-cased once where it is made) or
/// `EntryThumbprint` (a registry entry's: a thumbprint, or a plan's placeholder for one): never
/// a string that each comparison must case-fold.
///
/// A text scan of struct bodies, so it does not catch: fields of enum variants (error messages
/// carry thumbprints as text), private or `pub(super)` structs (raw input before parsing, such as
/// certs.toml's `RawKeep` or the listing's `RawRegistration`, and output views that borrow
/// `&str` for serialization), tuple structs, fields named otherwise that hold thumbprints
/// (`collection_primary`, `Actual::lost`, map keys), a type alias hiding a `String`, or a type
/// that spans lines (that one fails, and is written on one line instead).
#[test]
fn thumbprints_are_typed_in_every_public_struct() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (mut checked, mut untyped) = (0, Vec::new());
    for file in walk(&src) {
        let rel = file.strip_prefix(&src).expect("under src");
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let in_tests = rel.components().any(|c| c.as_os_str() == "tests");
        if name == "tests.rs" || name.ends_with("_tests.rs") || in_tests {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("source is UTF-8");
        for (field, typed) in thumbprint_fields(before_test_module(&text)) {
            checked += 1;
            if !typed {
                untyped.push(format!("{}: {field}", rel.display()));
            }
        }
    }
    // The scan must keep seeing the fields it guards (registry entries, plan changes, the
    // listing, config's keep list, the metrics views...): a scan that finds none proves nothing.
    assert!(
        checked >= 15,
        "only {checked} thumbprint fields found: is the scan broken?"
    );
    assert!(
        untyped.is_empty(),
        "thumbprint fields not typed as Thumbprint (model::Thumbprint, or EntryThumbprint for a registry entry's): {untyped:#?}"
    );
}

/// The scan itself: it finds what it is meant to find, and leaves the rest.
#[test]
fn the_thumbprint_scan_finds_a_string_field() {
    let text = "pub struct A {\n    pub thumbprint: String,\n    pub admin_thumbprint: Option<Thumbprint>,\n}\n\
        pub(crate) struct B {\n    pub(crate) store_thumbprints: Vec<&'a str>,\n    keep: BTreeSet<Thumbprint>,\n    pub thumbprints: Vec<EntryThumbprint>,\n}\n\
        struct Private {\n    thumbprint: String,\n}\n\
        pub enum E {\n    V { thumbprint: String },\n}\n";
    let untyped: Vec<String> = thumbprint_fields(text)
        .into_iter()
        .filter(|(_, typed)| !typed)
        .map(|(field, _)| field)
        .collect();
    assert_eq!(
        untyped,
        ["A.thumbprint: String", "B.store_thumbprints: Vec<&'a str>"]
    );
    // Every thumbprint field of A and B, none of the private struct's or the enum's.
    assert_eq!(thumbprint_fields(text).len(), 4);
}

/// The text before the unit-test module (`#[cfg(test)] mod tests { ... }` at the end of a file;
/// a `#[cfg(test)] mod tests;` declaration is not one).
fn before_test_module(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// `Struct.field: type` for each thumbprint field of a `pub`/`pub(crate)` struct, and whether
/// its type is built on `Thumbprint` or `EntryThumbprint`.
fn thumbprint_fields(text: &str) -> Vec<(String, bool)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(rest) = t
            .strip_prefix("pub struct ")
            .or_else(|| t.strip_prefix("pub(crate) struct "))
        else {
            continue;
        };
        if !line.trim_end().ends_with('{') {
            continue; // a tuple or unit struct, or a header over several lines
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let indent = line.len() - t.len();
        for field in lines[i + 1..].iter().take_while(|l| {
            !(l.len() - l.trim_start().len() == indent && l.trim_start().starts_with('}'))
        }) {
            let f = field.trim();
            let f = f
                .strip_prefix("pub(crate) ")
                .or_else(|| f.strip_prefix("pub(super) "))
                .or_else(|| f.strip_prefix("pub "))
                .unwrap_or(f);
            let Some((field_name, ty)) = f.split_once(':') else {
                continue;
            };
            let field_name = field_name.trim();
            let named = ["thumbprint", "thumbprints"].contains(&field_name)
                || field_name.ends_with("_thumbprint")
                || field_name.ends_with("_thumbprints");
            let ty = ty.trim().trim_end_matches(',');
            let typed = ty
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|word| word == "Thumbprint" || word == "EntryThumbprint");
            if named {
                out.push((format!("{name}.{field_name}: {ty}"), typed));
            }
        }
    }
    out
}
