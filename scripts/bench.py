#!/usr/bin/env python3
"""ravencert benchmarks, side by side in one run on this machine (see BENCHMARKS.md).

(a) apply of N EC P-256 client bundles vs the equivalent openssl-CLI shell script
(b) apply of 16 RSA-4096 clients on one core (taskset) vs all cores (16: RSA key generation time is random; more keys, steadier ratio)
(c) no-op plan at 300 / 3,000 / 10,000 registered certificates, with peak memory
(d) watch: save-to-applied latency for a metadata edit (scripts/watch_latency.py)
(e) cluster: register 300 certificates in a local RavenDB 4.1 vs a curl loop and vs the
    kept-alive floor (one connection, PUTs back to back; also over 2 and 4 connections), a no-op
    plan with 1,000 registrations, then (BENCH_CLUSTER_SCALE, 3,000; 0 skips it) a fresh server:
    register 3,000, a no-op plan at 3,000 and the listing alone by curl (examples/cluster_bench.rs;
    the server from scripts/ravendb-test-server.sh)
(f) listen: `watch --listen` over 1,000 and 10,000 registered certificates: /metrics, / and
    /healthz latency and size, the daemon's RSS, and a scrape while 32 idle connections hold
    every slot
(g) apply10k: apply of 10,000 EC P-256 clients from an empty store: wall, cores busy (the
    process's CPU time over its wall time; the whole machine's too), peak RSS

Run through scripts/bench.sh, which builds the release binary first. `--only NAME[,NAME]` runs
some sections: ec, rsa, noop, watch, cluster, listen, apply10k. `--baseline BINARY` also runs
sections noop and apply10k with an older build, alternately in the same run, and prints both
(scripts/bench.sh --baseline REV builds REV for it).
"""
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where cargo builds (scripts/bench.sh builds there first): CARGO_TARGET_DIR when set.
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
BIN = os.path.join(TARGET, "release/ravencert")
# An older build to compare with in the same run (--baseline); None: this build alone.
BASELINE = None
SYNTH = os.path.join(TARGET, "release/examples/synth_store")
CLUSTER = os.path.join(TARGET, "release/examples/cluster_bench")

SERVER = """version = 1
[store]
path = "store"
[defaults]
key = "{key}"
[server]
generate = true
name = "bench.example.com"
key = "ec-p256"
"""


def config(n, key):
    text = SERVER.format(key=key)
    for i in range(n):
        text += f'[clients.c{i:05}]\nclearance = "ValidUser"\ndatabases = {{ Db{i % 9} = "Read" }}\n'
    return text


def timed(cmd, cwd, env=None):
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr.decode()[-500:]}")
    return elapsed


OPENSSL_SCRIPT = r"""#!/bin/bash
# What a user would write today: four openssl processes per client bundle.
set -euo pipefail
mkdir -p ca out
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca/ca.key \
  -out ca/ca.crt -days 365 -subj /CN=bench.example.com 2>/dev/null
for i in $(seq -f '%05g' 0 $(($1 - 1))); do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out out/c$i.key 2>/dev/null
  openssl req -new -key out/c$i.key -subj /CN=c$i -out out/c$i.csr 2>/dev/null
  openssl x509 -req -in out/c$i.csr -CA ca/ca.crt -CAkey ca/ca.key -CAcreateserial \
    -days 365 -out out/c$i.crt 2>/dev/null
  openssl pkcs12 -export -inkey out/c$i.key -in out/c$i.crt -certfile ca/ca.crt \
    -passout pass: -out out/c$i.pfx 2>/dev/null
done
"""


def bench_ec(n=300):
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "certs.toml"), "w") as f:
            f.write(config(n, "ec-p256"))
        ours = timed([BIN, "apply", "--yes"], d)
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "gen.sh")
        with open(script, "w") as f:
            f.write(OPENSSL_SCRIPT)
        theirs = timed(["bash", script, str(n)], d)
    print(f"(a) {n} EC P-256 client bundles (key, certificate, .pfx, .crt, .key)")
    print(f"    ravencert apply        {ours:8.2f} s")
    print(f"    openssl CLI script     {theirs:8.2f} s   ({4 * n} openssl processes)")
    print(f"    speed-up               {theirs / ours:8.1f}x   (target >= 20x)")


def bench_rsa(n=16):
    def run(pin):
        prefix = (shutil.which("taskset"), "-c", "0") if pin else ()
        return apply_once(BIN, n, "rsa-4096", quiet_disk=False, prefix=prefix)[:2]
    (one, cpu1), (all_cores, cpu2) = run(True), run(False)
    cores = len(os.sched_getaffinity(0))
    print(f"(b) {n} RSA-4096 clients")
    print(f"    1 core (taskset -c 0)  {one:8.2f} s   (CPU {cpu1:.1f} s)")
    print(f"    {cores} cores                {all_cores:8.2f} s   (CPU {cpu2:.1f} s, {cpu2 / all_cores:.2f} cores busy on average)")
    print(f"    speed-up               {one / all_cores:8.2f}x   (target >= 1.8x on 2 cores; key generation time is random,")
    print("                                      so compare the cores-busy figure too)")


def peak_kb(cmd, cwd):
    """Runs cmd and returns (seconds, peak RSS in KiB) of that process alone (wait4)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with exit {p.returncode}")
    return elapsed, usage.ru_maxrss


def noop_runs(binary, d, rounds=5):
    """The median wall time and the peak RSS of `rounds` no-op plans of `binary` in `d`."""
    times, peak = [], 0
    for _ in range(rounds):
        t, p = peak_kb([binary, "plan", "--detailed-exitcode"], d)
        times.append(t)
        peak = max(peak, p)
    return statistics.median(times), peak


def bench_noop():
    print("(c) no-op plan (store loaded and verified, certs.toml parsed, planned)")
    builds = [("this build", BIN)] + ([("baseline", BASELINE)] if BASELINE else [])
    results = {}
    for n in (300, 3000, 10000):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([SYNTH, d, str(n)], check=True)
            subprocess.run(["sync"], check=True)  # the fixture's writeback is not the plan's cost
            time.sleep(2)
            for _, b in builds:
                peak_kb([b, "plan"], d)  # warm the page cache, as a watch tick finds it
            # Alternately, so that whatever else the machine does falls on both alike.
            samples = {name: ([], 0) for name, _ in builds}
            for _ in range(5):
                for name, b in builds:
                    t, p = noop_runs(b, d, rounds=1)
                    ts, peak = samples[name]
                    samples[name] = (ts + [t], max(peak, p))
            for name, _ in builds:
                ts, peak = samples[name]
                med = statistics.median(ts)
                results[(name, n)] = (med, peak)
                print(f"    {n:6} certificates   {name:10}  median {med * 1000:7.1f} ms   peak RSS {peak / 1024:6.1f} MiB")
    for name, _ in builds:
        (t3, _), (t10, p10) = results[(name, 3000)], results[(name, 10000)]
        print(f"    {name:10} 3,000 -> 10,000  {t10 / t3:.2f}x")
    (t10, p10), (t3, _) = results[("this build", 10000)], results[("this build", 3000)]
    met = t10 < 0.175 and p10 / 1024 < 60 and t10 / t3 <= 3.5
    print(f"    target: 10,000 under 175 ms and 60 MiB, 3,000 -> 10,000 at most 3.5x: {'met' if met else 'NOT met'}")


# This machine's root filesystem is ext4 without a journal: there, each inode allocation passes
# over every free inode whose deletion is recent, one lookup each (fs/ext4/ialloc.c,
# recently_deleted: 60 s, plus 300 s while the inode-table block is unwritten, which an apply
# that allocates next to it makes it). An apply within six minutes of a previous run's 50,000
# files being deleted spent seconds of system time skipping them (perf: find_inode_bit ->
# recently_deleted; 3.7-12.5 s of system time instead of 0.9 s), and so did one after the
# no-op section's synthetic stores were deleted. The 10,000-client runs therefore start after a
# sync and six minutes without deletions, and keep every store until the section ends.
RECENTLY_DELETED_S = 361


def machine_busy_ticks():
    """The machine's busy CPU time so far, every core, in clock ticks (idle and iowait left out)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return user + nice + system + irq + softirq + steal


def apply_once(binary, n, key="ec-p256", quiet_disk=True, prefix=(), keep=None):
    """Apply of n clients with `key` from an empty store, the command after `prefix` (taskset):
    (wall s, CPU s, peak RSS KiB, the whole machine's busy CPU s over the same time: the
    kernel's writeback of the files, done by its own threads, is not the process's CPU). With
    `keep` (a list), the folder is left for the caller to delete (its
    tempfile.TemporaryDirectory is appended)."""
    if quiet_disk:
        # The previous run's 50,000 files still being written back would fall on this one:
        # start from a quiet disk.
        subprocess.run(["sync"], check=True)
        time.sleep(3)
    tmp = tempfile.TemporaryDirectory()
    try:
        d = tmp.name
        with open(os.path.join(d, "certs.toml"), "w") as f:
            f.write(config(n, key))
        busy0 = machine_busy_ticks()
        t = time.perf_counter()
        p = subprocess.Popen([*prefix, binary, "apply", "--yes"], cwd=d,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        busy1 = machine_busy_ticks()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{binary}: apply of {n} clients failed")
        machine = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, machine
    finally:
        if keep is None:
            tmp.cleanup()
        else:
            keep.append(tmp)


def bench_apply10k(n=10000, rounds=3):
    print(f"(g) apply of {n} EC P-256 clients from an empty store")
    builds = [("this build", BIN)] + ([("baseline", BASELINE)] if BASELINE else [])
    runs = {name: [] for name, _ in builds}
    kept = []
    subprocess.run(["sync"], check=True)
    print(f"    (waiting {RECENTLY_DELETED_S} s: no inode freed in the last six minutes; see bench.py)", flush=True)
    time.sleep(RECENTLY_DELETED_S)
    try:
        for _ in range(rounds):
            for name, b in builds:
                runs[name].append(apply_once(b, n, keep=kept))
    finally:
        for tmp in kept:
            tmp.cleanup()
    for name, _ in builds:
        rs = runs[name]
        wall = statistics.median(r[0] for r in rs)
        cpu = statistics.median(r[1] for r in rs)
        peak = max(r[2] for r in rs) / 1024
        busy = statistics.median(r[1] / r[0] for r in rs)
        machine = statistics.median(r[3] / r[0] for r in rs)
        print(f"    {name:10}  median {wall:6.2f} s   CPU {cpu:6.2f} s   {busy:.2f} cores busy   peak RSS {peak:6.1f} MiB"
              f"   (whole machine: {machine:.2f} cores busy)")
        print("                runs " + ", ".join(f"{r[0]:.2f} s / {r[1] / r[0]:.2f} cores" for r in rs))
        if name == "this build":
            met = wall < 7 and peak < 120 and busy >= 1.8
            print(f"    target: under 7 s and 120 MiB, at least 1.8 cores busy: {'met' if met else 'NOT met'}")


def bench_watch():
    print("(d) watch save-to-applied latency")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/watch_latency.py"),
                        "--binary", BIN, "--rounds", "20"], capture_output=True, text=True)
    print("    " + r.stdout.strip().replace("\n", "\n    "))


def cluster_bench(*args):
    """Runs examples/cluster_bench with `args`; its key=value lines (every value of a key)."""
    r = subprocess.run([CLUSTER, BIN, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"cluster_bench failed:\n{r.stderr[-3000:]}")
    v = {}
    for line in r.stdout.splitlines():
        key, _, value = line.partition("=")
        v.setdefault(key, []).append(value)
    return v


def bench_cluster(n_register=300, n_noop=1000, n_scale=3000):
    print(f"(e) cluster: a local RavenDB 4.1 (one node, 127.0.0.1, TLS with client certificates)")
    v = cluster_bench(n_register, n_noop)
    f = {k: vs[-1] for k, vs in v.items()}
    n = int(f["register_n"])
    ours, theirs = float(f["register_ravencert_s"]), float(f["register_curl_s"])
    ms = ours * 1000 / n
    floor = float(f["floor_c1_ms_per_put"])
    print(f"    server ready after {f['server_ready_s']} s; warm-up PUT (first write) {f['warmup_put_s']} s, then "
          f"{f['warmup_reputs']} re-PUTs: {f['warmup_first_half_ms_per_put']} ms/PUT, later {f['warmup_second_half_ms_per_put']} ms/PUT")
    print(f"    register {n}: ravencert apply  {ours:8.2f} s   ({f['register_requests']} requests: {f['register_puts']} PUT, {ms:.2f} ms/PUT, the whole command)")
    print(f"    register {n}: curl loop        {theirs:8.2f} s   ({n} curl processes, {f['register_curl_ms_per_put']} ms/PUT)")
    print(f"    kept-alive floor, ravencert's client, PUTs back to back (median of rounds, ms/PUT):")
    for c in (1, 2, 4):
        print(f"        {c} connection(s)  {f[f'floor_c{c}_ms_per_put']:>6}   (runs {f[f'floor_c{c}_runs']})")
    print(f"    kept-alive floor, one curl process (--next, {f['register_curl_keepalive_connections']} connection): "
          f"{f['register_curl_keepalive_ms_per_put']} ms/PUT")
    fresh_ours, fresh_floor = float(f["fresh_apply_ms_per_put"]), float(f["fresh_floor_ms_per_put"])
    print(f"    fresh registrations, alternated: apply {fresh_ours} ms/PUT (runs {f['fresh_apply_runs']}), "
          f"floor on an open connection {fresh_floor} ms/PUT (runs {f['fresh_floor_runs']}); "
          f"apply's fixed cost (handshake, listing, plan) about {(fresh_ours - fresh_floor) * n / 1000:.2f} s")
    speedup, to_floor, to_fresh = theirs / ours, ms / floor, fresh_ours / fresh_floor
    print(f"    speed-up over the curl loop    {speedup:8.1f}x   (target >= 25x: {'met' if speedup >= 25 else 'NOT met'})")
    print(f"    ravencert / floor (1 conn.)    {to_floor:8.2f}x   (the floor with its one handshake; target <= 1.5x: {'met' if to_floor <= 1.5 else 'NOT met'})")
    print(f"    ravencert / floor, fresh       {to_fresh:8.2f}x   (PUTs alone, no handshake; target <= 1.5x: {'met' if to_fresh <= 1.5 else 'NOT met'})")
    requests = f["noop_requests"].split(",")
    one = all(c == "1" for c in requests)
    print(f"    no-op plan, {f['noop_n']} registrations: median {f['noop_median_ms']} ms "
          f"(min {f['noop_min_ms']}, max {f['noop_max_ms']}, {f['noop_runs']} runs), "
          f"peak RSS {f['noop_peak_rss_mib']} MiB")
    print(f"    the same plan --offline        median {f['noop_offline_median_ms']} ms   (store and certs.toml alone)")
    print(f"    the listing by one curl        median {f['noop_curl_get_median_ms']} ms   ({f['noop_listing_kib']} KiB of JSON)")
    print(f"    requests per plan              {','.join(requests)}   ({'; '.join(v.get('noop_request', []))})")
    print(f"    target < 500 ms, exactly one request: "
          f"{'met' if float(f['noop_median_ms']) < 500 and one else 'NOT met'}")
    print(f"    server RSS at the end          {f.get('server_rss_mib', '?')} MiB")
    if n_scale <= 0:
        return
    s = {k: vs[-1] for k, vs in cluster_bench("--scale", n_scale).items()}
    print(f"    scale, a fresh server: register {s['scale_n']} by one apply: {float(s['scale_register_s']):.2f} s "
          f"({s['scale_register_puts']} PUT, {s['scale_register_ms_per_put']} ms/PUT, the whole command)")
    print(f"    no-op plan, {s['noop_n']} registrations: median {s['noop_median_ms']} ms "
          f"(min {s['noop_min_ms']}, max {s['noop_max_ms']}), requests {s['noop_requests']}, peak RSS {s['noop_peak_rss_mib']} MiB")
    print(f"        of which the server: the listing alone by one curl, median {s['noop_curl_get_median_ms']} ms "
          f"({s['noop_listing_kib']} KiB); the plan --offline median {s['noop_offline_median_ms']} ms")
    print(f"    server RSS at the end          {s.get('server_rss_mib', '?')} MiB")


def http_get(addr, path, timeout=10.0):
    """One GET over a fresh connection: (status, body bytes, seconds)."""
    t = time.perf_counter()
    with socket.create_connection(addr, timeout=timeout) as c:
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    elapsed = time.perf_counter() - t
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        raise ConnectionError("closed unanswered")
    return int(head.split()[1]), body, elapsed


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_listen():
    print("(f) watch --listen: scrapes of a daemon over a synthetic store (loopback, release build)")
    for n in (1000, 10000):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([SYNTH, d, str(n)], check=True)
            log = open(os.path.join(d, "watch.log"), "w+")
            p = subprocess.Popen([BIN, "watch", "--offline", "--interval", "1h", "--listen", "127.0.0.1:0"],
                                 cwd=d, stdout=log, stderr=subprocess.STDOUT)
            try:
                addr = None
                deadline = time.time() + 120
                while time.time() < deadline:
                    log.seek(0)
                    m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read())
                    if m:
                        addr = ("127.0.0.1", int(m.group(1)))
                        if http_get(addr, "/healthz")[0] == 200:
                            break
                    time.sleep(0.2)
                else:
                    sys.exit(f"the daemon did not become healthy:\n{open(os.path.join(d, 'watch.log')).read()[-2000:]}")
                print(f"    {n:6} certificates   daemon RSS after the first check {rss_mib(p.pid):6.1f} MiB")
                for path in ("/metrics", "/", "/healthz"):
                    runs = [http_get(addr, path) for _ in range(30)]
                    med = statistics.median(r[2] for r in runs) * 1000
                    size = len(runs[0][1]) / 1024
                    print(f"        GET {path:9} median {med:7.2f} ms   {size:8.1f} KiB")
                idle = [socket.create_connection(addr) for _ in range(32)]
                time.sleep(0.2)
                t = time.perf_counter()
                while True:
                    try:
                        if http_get(addr, "/healthz", timeout=2)[0] == 200:
                            break
                    except OSError:
                        pass
                    time.sleep(0.1)
                waited = time.perf_counter() - t
                for c in idle:
                    c.close()
                print(f"        with 32 idle connections holding every slot: a scrape got through after {waited:5.1f} s "
                      f"(an idle connection is closed after 5 s without a byte); RSS {rss_mib(p.pid):6.1f} MiB")
            finally:
                p.terminate()
                p.wait(timeout=60)


SECTIONS = {
    "ec": lambda: bench_ec(int(os.environ.get("BENCH_EC_CLIENTS", "300"))),
    "rsa": bench_rsa,
    "noop": bench_noop,
    "watch": bench_watch,
    "listen": bench_listen,
    "apply10k": lambda: bench_apply10k(int(os.environ.get("BENCH_APPLY_CLIENTS", "10000"))),
    "cluster": lambda: bench_cluster(int(os.environ.get("BENCH_CLUSTER_CLIENTS", "300")),
                                     int(os.environ.get("BENCH_CLUSTER_NOOP", "1000")),
                                     int(os.environ.get("BENCH_CLUSTER_SCALE", "3000"))),
}


def selected(argv):
    """The sections to run: all, or those named by `--only a,b`; `--baseline BINARY` first."""
    global BASELINE
    if len(argv) >= 2 and argv[0] == "--baseline":
        BASELINE = os.path.abspath(argv[1])
        if not os.access(BASELINE, os.X_OK):
            sys.exit(f"--baseline {argv[1]}: not an executable")
        argv = argv[2:]
    if not argv:
        return list(SECTIONS)
    if len(argv) != 2 or argv[0] != "--only":
        sys.exit(f"usage: bench.py [--baseline BINARY] [--only {','.join(SECTIONS)}]")
    names = [n.strip() for n in argv[1].split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        sys.exit(f"unknown section(s) {', '.join(unknown) or '(none)'}; known: {', '.join(SECTIONS)}")
    return names


if __name__ == "__main__":
    sections = selected(sys.argv[1:])
    tools = {"ec": ["openssl"], "rsa": ["taskset"], "cluster": ["openssl", "curl"]}
    for tool in sorted({t for s in sections for t in tools.get(s, [])}):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (Debian: apt-get install openssl util-linux curl)")
    if "cluster" in sections and not os.access("/usr/bin/time", os.X_OK):
        sys.exit("/usr/bin/time is needed for the cluster section (Debian: apt-get install time)")
    print(f"machine: {os.cpu_count()} cores; {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}")
    print(f"load average at start: {open('/proc/loadavg').read().split()[:3]}")
    for name in sections:
        SECTIONS[name]()
