#!/usr/bin/env python3
"""Turn bench/run's results directory into docs/benchmarks.md.

Usage: bench/report.py RESULTS OUT. bench/run keeps the last run's results
in target/bench-results, so the report can be written again (after editing
bench/notes.md) with `python3 bench/report.py target/bench-results docs/benchmarks.md`.

results/<profile>/<tool>/<metric> holds one number each. Ratios are
"times better than": ossfs-rs / peer for rates, peer / ossfs-rs for times.
"""
import argparse
import os
import platform

TOOLS = ["ossfs-rs", "s3fs", "rclone-off", "rclone-full"]
# metric, label, unit, higher is better, limit metric (or None)
ROWS = [
    ("seq1", "sequential read, 1 stream (fio bs=1M)", "MiB/s", True, "get8"),
    ("seq4", "sequential read, 4 streams", "MiB/s", True, "get8"),
    ("ttfb_ms", "time to first byte (open + 1 byte, cold)", "ms", False, None),
    ("rand4k_cold", "random 4 KiB reads, cold", "IOPS", True, None),
    ("rand4k_warm", "random 4 KiB reads, warm", "IOPS", True, None),
    ("rand128k_cold", "random 128 KiB reads, cold", "IOPS", True, None),
    ("rand128k_warm", "random 128 KiB reads, warm", "IOPS", True, None),
    ("small4k_t1", "read small files of 4 KiB, 1 thread", "s", False, None),
    ("small4k_t8", "read small files of 4 KiB, 8 threads", "s", False, None),
    ("small64k_t1", "read small files of 64 KiB, 1 thread", "s", False, None),
    ("small64k_t8", "read small files of 64 KiB, 8 threads", "s", False, None),
    ("ls2k_cold", "ls -l, 2,000 entries, cold", "s", False, None),
    ("ls2k_warm", "ls -l, 2,000 entries, warm", "s", False, None),
    ("ls20k_cold", "ls -l, big directory, cold", "s", False, None),
    ("ls20k_warm", "ls -l, big directory, warm", "s", False, None),
    ("find_cold", "find over the tree, cold", "s", False, None),
    # ossfs-rs only, remounted with `-o readdir_optimize,noxattr`; its
    # ratios are to the peers' plain figures (the metric before the `+`).
    ("ls2k_cold+ro", "ls -l, 2,000 entries, cold, ossfs-rs `-o readdir_optimize,noxattr`", "s", False, None),
    ("ls2k_warm+ro", "ls -l, 2,000 entries, warm, ossfs-rs `-o readdir_optimize,noxattr`", "s", False, None),
    ("ls20k_cold+ro", "ls -l, big directory, cold, ossfs-rs `-o readdir_optimize,noxattr`", "s", False, None),
    ("ls20k_warm+ro", "ls -l, big directory, warm, ossfs-rs `-o readdir_optimize,noxattr`", "s", False, None),
    ("find_cold+ro", "find over the tree, cold, ossfs-rs `-o readdir_optimize,noxattr`", "s", False, None),
    # ossfs-rs only: the object read once with `-o use_cache`, remounted
    # (memory and page cache cold), read again from the disk cache. Not
    # compared with the peers' network reads.
    ("seq1+dc", "sequential read, 1 stream, after a remount, from ossfs-rs's disk cache (`-o use_cache`)", "MiB/s", True, "get8"),
    ("dc_hit_pct+dc", "share of those blocks the disk cache served", "%", True, None),
    ("write_mibs", "sequential write (dd bs=1M, until close returns)", "MiB/s", True, "put8"),
    ("create_s", "create files of 64 KiB, 1 thread", "s", False, None),
    ("rss_mib", "peak RSS of the daemon and its children (VmHWM, summed)", "MiB", False, None),
]
LIMITS = [
    ("get1", "one GET stream of the whole object", "MiB/s"),
    ("get8", "8 parallel ranged GETs of 8 MiB", "MiB/s"),
    ("put8", "multipart PUT, 8 parallel parts of 8 MiB", "MiB/s"),
]


def value(res, profile, tool, metric):
    try:
        with open(os.path.join(res, profile, tool, metric)) as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return None


def fmt(v):
    if v is None:
        return "–"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.3g" % v


def ratio(ours, other, higher):
    if ours is None or other is None or ours == 0 or other == 0:
        return "–"
    r = ours / other if higher else other / ours
    return "%.2fx" % r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("res")
    ap.add_argument("out")
    a = ap.parse_args()
    # What bench/run recorded about the run: command, load, sizes, versions.
    meta = {}
    with open(os.path.join(a.res, "meta")) as f:
        for line in f:
            key, _, val = line.rstrip("\n").partition("=")
            meta[key] = val
    a.command, a.load, a.quick = meta["command"], meta["load"], meta.get("quick", "0")
    a.sizes, a.versions = meta.get("sizes", ""), meta.get("versions", "")

    profiles = [p for p in ("loopback", "wan") if os.path.isdir(os.path.join(a.res, p))]
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = "%.0f GiB" % (int(f.readline().split()[1]) / 1048576)
    except (OSError, ValueError, IndexError):
        pass
    date = meta.get("date", "")

    out = []
    w = out.append
    w("# Benchmarks\n")
    w("Generated by `bench/run` (see bench/README.md); do not edit by hand.\n")
    w("- Command: `%s`%s" % (a.command, " (quick mode: small sizes)" if a.quick == "1" else ""))
    w("- Date: %s" % date)
    w("- Machine: %s, %d cores, %s RAM, kernel %s" % (cpu, os.cpu_count() or 0, mem, platform.release()))
    w("- Load average at the end of the run: %s (the machine is shared: other builds "
      "ran during the run, so figures are noisy)" % a.load)
    w("- Versions: %s" % a.versions)
    w("- Sizes: %s" % a.sizes)
    w("- Server: Garage on 127.0.0.1 (lmdb, one node). Profiles: `loopback` talks to it "
      "directly; `wan` goes through a user-space proxy that delays every request and caps "
      "the bandwidth of each direction (tests/src/delay_proxy.rs).")
    w("- Each tool is mounted with its defaults (s3fs: path style, sigv4; rclone: "
      "`--vfs-cache-mode off` and `full`); the page cache is dropped and the tool "
      "remounted before each cold group. Ratios: how many times better ossfs-rs is "
      "(rate / rate, or time / time); `limit` is our own store client with no FUSE.")
    w("- rclone with `--vfs-cache-mode full` returns from close before uploading "
      "(write-back): its write figures do not include the upload.\n")

    for p in profiles:
        w("## Profile `%s`\n" % p)
        w("Limits measured in the same run with our store client (no FUSE):\n")
        w("| limit | figure |")
        w("|---|---|")
        for m, label, unit in LIMITS:
            w("| %s | %s %s |" % (label, fmt(value(a.res, p, "limit", m)), unit))
        w("")
        tools = [t for t in TOOLS if os.path.isdir(os.path.join(a.res, p, t))]
        peers = [t for t in tools if t != "ossfs-rs"]
        head = "| workload | unit | " + " | ".join(tools) + " | ossfs-rs / limit | " + \
            " | ".join("vs %s" % t for t in peers) + " |"
        w(head)
        w("|" + "---|" * (3 + len(tools) + len(peers)))
        for m, label, unit, higher, lim in ROWS:
            peer_m = m.split("+")[0]
            compare = "+" not in m or m.endswith("+ro")
            vals = [value(a.res, p, t, m) for t in tools]
            ours = value(a.res, p, "ossfs-rs", m)
            lim_s = "–"
            if lim is not None:
                lv = value(a.res, p, "limit", lim)
                if ours is not None and lv:
                    lim_s = "%.0f %%" % (100 * ours / lv)
            row = "| %s | %s | " % (label, unit) + " | ".join(fmt(v) for v in vals) + \
                " | %s | " % lim_s + " | ".join((ratio(ours, value(a.res, p, t, peer_m), higher) if compare else "–") for t in peers) + " |"
            w(row)
        w("")

    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            w(f.read().rstrip() + "\n")
    # Keep the sections other harnesses write into the same file
    # (bench/restart's, between its markers).
    if os.path.exists(a.out):
        with open(a.out) as f:
            old = f.read()
        begin, end = "<!-- restart:begin", "<!-- restart:end -->"
        if begin in old and end in old:
            w(old[old.index(begin):old.index(end) + len(end)] + "\n")
    with open(a.out, "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
