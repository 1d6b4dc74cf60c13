#!/usr/bin/env python3
"""Two builds of ravencert side by side in one run: the no-op plan at 10,000 certificates and
the apply of 16 RSA-4096 clients, run alternately (old, new, old, new, ...) so that whatever
else the machine does falls on both alike. Also the no-op plan's instruction count under
callgrind when valgrind is installed: repeatable whatever the load.

  python3 scripts/bench_compare.py OLD_BINARY NEW_BINARY [SYNTH_STORE_BINARY]

Build the old one from a worktree of the old commit (`cargo build --release`, its own
CARGO_TARGET_DIR); SYNTH_STORE_BINARY defaults to this checkout's
target/release/examples/synth_store (`cargo build --release --example synth_store`).
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import apply_once, peak_kb  # noqa: E402  (the same fixtures as scripts/bench.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rsa_apply(binary, n=16):
    return apply_once(binary, n, "rsa-4096", quiet_disk=False)[:2]


def callgrind_instructions(binary, store_dir):
    if not shutil.which("valgrind"):
        return None
    with tempfile.TemporaryDirectory() as out:
        r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg",
                            binary, "plan", "--detailed-exitcode"], cwd=store_dir,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        m = re.search(r"Collected : (\d+)", r.stderr)
        return int(m.group(1)) if m else None


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    old, new = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    synth = os.path.abspath(sys.argv[3]) if len(sys.argv) == 4 else os.path.join(
        ROOT, "target/release/examples/synth_store")
    builds = {"old": old, "new": new}
    print(f"old: {old}\nnew: {new}")
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([synth, d, "10000"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["sync"], check=True)
        for b in builds.values():
            peak_kb([b, "plan"], d)  # warm the page cache
        times = {k: [] for k in builds}
        peaks = {k: 0 for k in builds}
        for _ in range(7):
            for k, b in builds.items():
                t, p = peak_kb([b, "plan", "--detailed-exitcode"], d)
                times[k].append(t)
                peaks[k] = max(peaks[k], p)
        print("no-op plan, 10,000 certificates (7 runs each, alternating)")
        for k in builds:
            print(f"    {k}  median {statistics.median(times[k]) * 1000:7.1f} ms   "
                  f"min {min(times[k]) * 1000:7.1f} ms   peak RSS {peaks[k] / 1024:6.1f} MiB")
        counts = {k: callgrind_instructions(b, d) for k, b in builds.items()}
        if all(counts.values()):
            print("    instructions (callgrind): old {:,}  new {:,}  ({:+.2f}%)".format(
                counts["old"], counts["new"], 100 * (counts["new"] / counts["old"] - 1)))
    runs = {k: [] for k in builds}
    for _ in range(3):
        for k, b in builds.items():
            runs[k].append(rsa_apply(b))
    print("apply of 16 RSA-4096 clients (3 runs each, alternating; key generation time is random)")
    for k in builds:
        walls = [w for w, _ in runs[k]]
        cpus = [c for _, c in runs[k]]
        print(f"    {k}  median {statistics.median(walls):6.2f} s   "
              f"CPU median {statistics.median(cpus):6.1f} s")


if __name__ == "__main__":
    main()
