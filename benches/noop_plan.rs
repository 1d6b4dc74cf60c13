//! A no-op plan at 1,000 and 10,000 registered certificates: the cost every watch tick and
//! every pull request pays. Measured in two parts: loading and verifying the store, and the
//! planner itself (a pure function over values).

use std::path::Path;

#[path = "../tests/common/synthetic.rs"]
mod synthetic;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ravencert::config;
use ravencert::plan::{plan, PlanOptions};
use ravencert::store::Store;

fn fixture(n: usize) -> (tempfile::TempDir, config::Desired) {
    let dir = tempfile::tempdir().expect("temp dir");
    synthetic::synthetic_store(dir.path(), n).expect("fixture");
    let path = dir.path().join("certs.toml");
    let text = std::fs::read_to_string(&path).expect("certs.toml");
    let desired = config::parse(&path, &text, dir.path())
        .expect("valid")
        .resolve(
            &ravencert::inputs::from_disk,
            true,
            ravencert::config::Reading::Full,
        )
        .expect("references resolve");
    (dir, desired)
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("noop_plan");
    group.sample_size(10);
    for n in [1_000usize, 10_000] {
        let (dir, desired) = fixture(n);
        let store = Store::new(dir.path().join("store"));
        let actual = store.load(None).expect("store loads");
        let now = time::OffsetDateTime::now_utc();
        let planned = plan(&desired, &actual, now, &PlanOptions::default()).expect("plan");
        assert!(planned.is_empty(), "the fixture must be converged");

        group.bench_with_input(BenchmarkId::new("store_load", n), &n, |b, _| {
            b.iter(|| store.load(None).expect("store loads"))
        });
        group.bench_with_input(BenchmarkId::new("planner", n), &n, |b, _| {
            b.iter(|| plan(&desired, &actual, now, &PlanOptions::default()).expect("plan"))
        });
        group.bench_with_input(BenchmarkId::new("config_parse", n), &n, |b, _| {
            let path = dir.path().join("certs.toml");
            let text = std::fs::read_to_string(&path).expect("certs.toml");
            b.iter(|| config::parse(&path, &text, Path::new(dir.path())).expect("valid"))
        });
    }
    group.finish();
}

criterion_group!(noop, benches);
criterion_main!(noop);
