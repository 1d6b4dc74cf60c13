//! Builds a large, valid store quickly, for benchmarks:
//! `cargo run --release --example synth_store -- DIR N` writes DIR/certs.toml declaring N
//! clients and DIR/store holding them exactly (so a plan there is a no-op).

// The fixture is test code, kept out of the shipped library; the bench includes it the same way.
#[path = "../tests/common/synthetic.rs"]
mod synthetic;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: synth_store DIR N");
        std::process::exit(1);
    }
    let n: usize = match args[2].parse() {
        Ok(n) => n,
        Err(_) => {
            eprintln!("synth_store: N must be a number");
            std::process::exit(1);
        }
    };
    if let Err(e) = synthetic::synthetic_store(std::path::Path::new(&args[1]), n) {
        eprintln!("synth_store: {e}");
        std::process::exit(1);
    }
}
