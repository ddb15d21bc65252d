"""bench/restart: restart-to-serving time and the journal's overhead.

Driven by bench/restart (which builds the release binary). Every figure
comes from this run; nothing is carried over from another.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

AK = "BENCHAK"
SK = "bench-secret-key"


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


class Endpoint:
    def __init__(self, binary, port):
        env = dict(os.environ, OSSFS_SERVE_ACCESS_KEY=AK, OSSFS_SERVE_SECRET_KEY=SK)
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{port}", "--bucket", "bench"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        time.sleep(0.5)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Mount:
    def __init__(self, binary, url, work, name, extra=""):
        self.binary = binary
        self.path = os.path.join(work, name)
        os.makedirs(self.path)
        passwd = os.path.join(work, "passwd")
        if not os.path.exists(passwd):
            with open(passwd, "w") as f:
                f.write(f"{AK}:{SK}\n")
            os.chmod(passwd, 0o600)
        opts = f"url={url},provider=s3,path_style,passwd_file={passwd},logfile={work}/{name}.log"
        if extra:
            opts += "," + extra
        self.args = ["mount", f"bench:/{name}", self.path, "-o", opts]
        sh(binary, *self.args)

    def status(self):
        out = sh(self.binary, "status", self.path, "--json").stdout
        return json.loads(out)[0]

    def worker(self):
        return self.status()["supervisor"]["worker_pid"]

    def umount(self):
        for _ in range(50):
            if subprocess.run([self.binary, "umount", self.path], capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        subprocess.run(["umount", "-l", self.path])

    def remount(self):
        self.umount()
        time.sleep(0.3)
        sh(self.binary, *self.args)


def restart_times(m, kills, spacing):
    times = []
    for i in range(kills):
        # `spacing` seconds after the last restart served. A worker killed
        # from outside is replaced at once however young it was (only one
        # that dies young on its own counts toward a crash loop), so short
        # spacings measure the same thing as long ones.
        time.sleep(spacing)
        old = m.worker()
        os.kill(old, signal.SIGKILL)
        t0 = time.monotonic()
        n = 0
        while True:
            # A name never looked up: only a live worker can answer it.
            try:
                os.stat(os.path.join(m.path, f"probe-{i}-{n}"))
            except FileNotFoundError:
                break
            except OSError:
                pass
            n += 1
        times.append(time.monotonic() - t0)
    return times


def burners(n):
    """`n` processes that spin on a CPU each: the load of a busy node."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def restart_figures(ms):
    ms = sorted(ms)
    return f"| {statistics.median(ms):.0f} ms | {ms[-1]:.0f} ms | {ms[0]:.0f} ms |"


def cpu_ns(pid):
    """CPU time of every live thread of `pid`, in ns (schedstat): the
    daemon's own work, which other load on the machine does not inflate
    the way it inflates wall-clock time."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def create_files(m, n, size):
    d = os.path.join(m.path, "c")
    os.makedirs(d, exist_ok=True)
    data = b"x" * size
    t0 = time.monotonic()
    for i in range(n):
        with open(os.path.join(d, f"f{i:05}"), "wb") as f:
            f.write(data)
    return time.monotonic() - t0


def ls_l(m, d):
    t0 = time.monotonic()
    out = subprocess.run(["ls", "-l", os.path.join(m.path, d)], check=True, capture_output=True)
    dt = time.monotonic() - t0
    return dt, out.stdout.count(b"\n")


def metadata_run(binary, url, work, name, extra, files):
    m = Mount(binary, url, work, name, extra)
    try:
        w = m.worker()
        c0 = cpu_ns(w)
        create = create_files(m, files, 64 * 1024)
        create_cpu = cpu_ns(w) - c0
        big = os.path.join(m.path, "big")
        os.makedirs(big)
        for i in range(2000):
            with open(os.path.join(big, f"e{i:05}"), "wb") as f:
                f.write(b"y")
        m.remount()
        w = m.worker()
        c0 = cpu_ns(w)
        cold, lines = ls_l(m, "big")
        c1 = cpu_ns(w)
        warm, _ = ls_l(m, "big")
        c2 = cpu_ns(w)
        return {"create": create, "ls_cold": cold, "ls_warm": warm, "lines": lines,
                "create_cpu": create_cpu / 1e9, "ls_cold_cpu": (c1 - c0) / 1e9,
                "ls_warm_cpu": (c2 - c1) / 1e9}
    finally:
        m.umount()


def best_of(runs, key):
    # The fastest round: other load on the machine only ever adds time.
    return min(r[key] for r in runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--journal-cost", required=True)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--spacing", type=float, default=1.5,
                    help="seconds between a restart and the next kill")
    ap.add_argument("--load", type=int, default=0,
                    help="CPU-spinning processes running during the kills")
    ap.add_argument("--restart-only", action="store_true",
                    help="measure restart times only; print them, write nothing")
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    work = tempfile.mkdtemp(prefix="ossfs-bench-restart-")
    ep = Endpoint(binary, 19431)
    try:
        m = Mount(binary, ep.url, work, "restart")
        with open(os.path.join(m.path, "f"), "wb") as f:
            f.write(b"z" * 4096)
        load = burners(a.load)
        try:
            times = restart_times(m, a.kills, a.spacing)
        finally:
            for p in load:
                p.kill()
                p.wait()
        m.umount()
        if a.restart_only:
            print(f"restart-to-serving, {a.kills} kills {a.spacing} s apart, {a.load} CPU burners:")
            print("| median | max | min |\n|---|---|---|")
            print(restart_figures([t * 1000 for t in times]))
            print("all (ms):", " ".join(f"{t * 1000:.0f}" for t in times))
            return 0
        with_j, without_j = [], []
        for r in range(a.rounds):
            with_j.append(metadata_run(binary, ep.url, work, f"j{r}", "", a.files))
            without_j.append(metadata_run(binary, ep.url, work, f"n{r}", "test_no_journal", a.files))
    finally:
        ep.stop()
        shutil.rmtree(work, ignore_errors=True)

    # The journal lives on /run (tmpfs) for root mounts.
    record_ns = int(sh(a.journal_cost, "/run" if os.geteuid() == 0 else tempfile.gettempdir()).stdout.strip())
    ms = sorted(t * 1000 for t in times)
    rows = []
    for key, label in [("create", f"create {a.files} files of 64 KiB"),
                       ("ls_cold", "`ls -l` of 2,000 entries, cold"),
                       ("ls_warm", "`ls -l` of 2,000 entries, warm")]:
        on, off = best_of(with_j, key), best_of(without_j, key)
        con, coff = best_of(with_j, key + "_cpu"), best_of(without_j, key + "_cpu")
        rows.append(
            f"| {label} | {on:.3f} s | {off:.3f} s | {100 * (on - off) / off:+.1f} % "
            f"| {con * 1000:.0f} ms | {coff * 1000:.0f} ms | {100 * (con - coff) / coff:+.1f} % |")
    load = os.getloadavg()
    section = "\n".join([
        "<!-- restart:begin (written by bench/restart) -->",
        "## Supervised restart",
        "",
        f"Command: `bash bench/restart` (release build, embedded endpoint on 127.0.0.1,",
        f"{platform.node()}, {os.cpu_count()} cores, Linux {platform.release()}, load average",
        f"{load[0]:.2f} at the end; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).",
        "",
        f"Restart-to-serving after `kill -9` of the worker, {len(ms)} kills: the time from",
        "the kill to the first lookup answered by the new worker.",
        "",
        "| median | max | min |",
        "|---|---|---|",
        restart_figures(ms),
        "",
        f"The journal's cost (best of {a.rounds} interleaved rounds each; `-o test_no_journal` turns",
        "journaling off, for this measurement only):",
        "",
        "| workload | wall, with journal | without | overhead | worker CPU, with journal | without | overhead |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"One journal record (serialise, apply to the journal's mirror, one `write(2)`)",
        f"costs {record_ns} ns (`journal_cost` example, 100,000 records). A new file",
        "writes six (node, handle, staging file, answer, close, end of staging), a",
        "new directory entry of a cold `ls -l` one, a warm `ls -l` none. Wall-clock",
        "differences beyond that are the machine's noise (other load); the worker's",
        "CPU time (all its threads, from schedstat) is the steadier measure.",
        "<!-- restart:end -->",
    ])
    text = open(a.out).read() if os.path.exists(a.out) else "# Benchmarks\n"
    begin, end = "<!-- restart:begin", "<!-- restart:end -->"
    if begin in text and end in text:
        i, j = text.index(begin), text.index(end) + len(end)
        text = text[:i] + section + text[j:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    print(section)


if __name__ == "__main__":
    sys.exit(main())
