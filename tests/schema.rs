//! The checked-in JSON schema must be what the Rust types generate, and the bundled example must
//! be a valid config that points at it.

#[test]
fn checked_in_schema_is_up_to_date() {
    let generated = ravencert::config::json_schema();
    let checked_in = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/certs.schema.json"
    ))
    .expect("schema/certs.schema.json is checked in");
    assert!(
        generated == checked_in,
        "schema/certs.schema.json is out of date: run `cargo run -- schema > schema/certs.schema.json`"
    );
}

#[test]
fn example_starts_with_schema_line_and_validates() {
    let example = ravencert::EXAMPLE;
    assert_eq!(
        example.lines().next(),
        Some("#:schema ./schema/certs.schema.json")
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let desired = ravencert::config::parse(&dir.join("certs.toml.example"), example, dir)
        .expect("certs.toml.example is valid");
    assert!(desired.clients.len() >= 4);
    assert!(ravencert::config::check_references(&desired, true, true).is_empty());
}

#[test]
fn bundled_examples_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["development", "production"] {
        let path = root.join("examples").join(name).join("certs.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#:schema ../../schema/certs.schema.json"));
        let desired = ravencert::config::parse(&path, &text, path.parent().unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(desired.clients.len() >= 2, "{name}");
    }
}
