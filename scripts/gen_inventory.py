#!/usr/bin/env python3
"""Deterministic generator of object-inventory rows (NDJSON) for lakeport demos and benchmarks.

Writes one JSON object per line with the columns of the built-in `object_inventory` table
(schemas/object_inventory.yaml): bucket, key, version_id, prefix, is_latest, size,
last_modified, etag, storage_class, ... Keys look like real buckets (folders several levels deep,
some with spaces and non-ASCII names); sizes are log-spread from 0 B to a few GiB; etags are
32 hex digits (multipart ones end in `-N`); `last_modified` is spread over `--days` days ending
at `--end` and written as RFC 3339 with milliseconds and `Z`. Optional fields are sometimes
absent and sometimes JSON null (both mean NULL to `lakeport load`).

The same arguments always give the same bytes (random.Random(seed), no clock). Rows are
produced in fixed chunks of 50,000 (each seeded from the seed and its chunk number) by --jobs
processes and streamed out in order: memory does not grow with --rows, and the output does not
depend on --jobs.

    scripts/gen_inventory.py --rows 100000 --days 90 --buckets 3 --seed 1 > inv.ndjson
    scripts/gen_inventory.py --rows 1000000 --out /tmp/inv.ndjson
"""

import argparse
import datetime as _dt
import functools
import json
import random
import sys
import time

# Folder and file-name vocabularies; JSON-escaped once (keys are built from escaped pieces,
# none of which contains a quote or a backslash, so concatenation stays valid JSON).
TOP = [
    "logs", "photos", "backups", "datasets", "reports", "videos", "tmp", "raw", "media",
    "Ünïcödé", "日本語", "données clients", "archive 2019",
]
SUB = [
    "app-1", "app-2", "web", "api", "batch", "eu-west", "us-east", "ap-south", "team a",
    "équipe", "客户", "Müller & Söhne", "q1", "q2", "q3", "q4",
]
NAMES = [
    "part", "IMG", "report", "export", "snapshot", "file", "résumé", "übersicht",
    "写真", "data set", "log", "chunk",
]
EXTS = [".json.gz", ".jpg", ".parquet", ".csv", ".pdf", ".mp4", ".txt", ".tar.zst", ".png", ""]
STORAGE = [
    ("STANDARD", 60), ("STANDARD_IA", 12), ("INTELLIGENT_TIERING", 8), ("GLACIER", 6),
    ("DEEP_ARCHIVE", 3), ("ONEZONE_IA", 3), ("Standard", 4), ("IA", 2), ("Archive", 1),
    ("ColdArchive", 1),
]
TIERS = ["FREQUENT", "INFREQUENT", "ARCHIVE_INSTANT_ACCESS"]
REPLICATION = ["COMPLETED", "PENDING", "FAILED", "REPLICA"]
ENCRYPTION = ["SSE-S3", "SSE-KMS", "NOT-SSE"]
CHECKSUMS = ["CRC32", "CRC32C", "SHA1", "SHA256"]
OBJECT_TYPES = ["Normal", "Multipart", "Appendable", "Symlink"]
ACLS = ["default", "private", "public-read", "public-read-write"]
OWNERS = ["owner-1a2b3c", "owner-4d5e6f", "owner-778899"]


def _esc(s):
    """JSON string body (without quotes) of s, non-ASCII kept as UTF-8."""
    return json.dumps(s, ensure_ascii=False)[1:-1]


def _weighted(pairs):
    out = []
    for name, w in pairs:
        out.extend([name] * w)
    return out


@functools.lru_cache(maxsize=4)
def _tables(days, end, buckets):
    """Lookup tables shared by every chunk of one run (built once per process)."""
    top = [_esc(s) for s in TOP]
    sub = [_esc(s) for s in SUB]
    # Folders by depth (0..3 levels); the last level is a year/month pair.
    by_depth = [[""], [t + "/" for t in top], [t + "/" + u + "/" for t in top for u in sub]]
    by_depth.append([f + f"{y}/{m:02d}/" for f in by_depth[2] for y in range(2018, 2025)
                     for m in range(1, 13)])
    # last_modified spans [end - days, end): day strings here, time of day per row.
    end_day = _dt.date.fromisoformat(end)
    first = _dt.datetime.combine(end_day - _dt.timedelta(days=days), _dt.time(),
                                 tzinfo=_dt.timezone.utc)
    return {
        "names": [_esc(s) for s in NAMES],
        "exts": [_esc(s) for s in EXTS],
        "storage": _weighted(STORAGE),
        "buckets": [f"demo-bucket-{b:02d}" for b in range(buckets)],
        "by_depth": by_depth,
        "depth_sizes": [len(d) for d in by_depth],
        "hms": [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60)
                for s in range(60)],
        "ms3": [f"{m:03d}" for m in range(1000)],
        "day_strings": [(end_day - _dt.timedelta(days=days - d)).isoformat()
                        for d in range(days)],
        "first_ms": int(first.timestamp()) * 1000,
    }


def _chunk(args):
    """UTF-8 NDJSON bytes of rows [start, start + count) of chunk number `chunk`.

    Each chunk has its own generator seeded from (seed, chunk), so the output does not depend
    on how many worker processes produced it.
    """
    seed, chunk, start, count, days, buckets, end = args
    rng = random.Random(seed * 1_000_000_007 + chunk)
    replication, encryption, tiers, checksums = REPLICATION, ENCRYPTION, TIERS, CHECKSUMS
    acls, object_types, owners = ACLS, OBJECT_TYPES, OWNERS
    rnd = rng.random
    bits = rng.getrandbits
    t = _tables(days, end, buckets)
    names, exts, storage, bucket_names = t["names"], t["exts"], t["storage"], t["buckets"]
    n_names, n_exts, n_storage = len(names), len(exts), len(storage)
    by_depth, depth_sizes, hms, ms3 = t["by_depth"], t["depth_sizes"], t["hms"], t["ms3"]
    day_strings, first_ms = t["day_strings"], t["first_ms"]
    day_ms = 86_400_000
    oss = {"Standard", "IA", "Archive", "ColdArchive"}
    lines = []
    append = lines.append
    for i in range(start, start + count):
        depth = int(rnd() * 4)
        folder = by_depth[depth][int(rnd() * depth_sizes[depth])]
        # The row index keeps (bucket, key) unique.
        key = f"{folder}{names[int(rnd() * n_names)]}-{i:08d}{exts[int(rnd() * n_exts)]}"
        # Every 10th object is versioned (version_id set, some not latest, a few delete
        # markers); the others have version_id "".
        if i % 10 == 3:
            version = f'"v{bits(64):016x}","prefix":"{folder}","is_latest":' + (
                "true" if rnd() < 0.7 else "false") + ',"is_delete_marker":' + (
                "true" if rnd() < 0.05 else "false")
        else:
            version = f'"","prefix":"{folder}","is_latest":true,"is_delete_marker":false'
        # Sizes: log-uniform from 1 B to ~4 GiB, some empty objects.
        size = 0 if rnd() < 0.02 else int(2 ** (rnd() * 32))
        day = int(rnd() * days)
        sec, msr = divmod(int(rnd() * day_ms), 1000)
        dstr = day_strings[day]
        multipart = size > 128 * 1024 * 1024 and rnd() < 0.8
        etag = f"{bits(128):032x}-{2 + int(rnd() * 200)}" if multipart else f"{bits(128):032x}"
        sc = storage[int(rnd() * n_storage)]
        r = rnd()
        if r < 0.6:
            repl = f',"replication_status":"{replication[int(r * 6.6) % 4]}"'
        elif r < 0.8:
            repl = ',"replication_status":null'
        else:
            repl = ""
        extra = ""
        if sc == "INTELLIGENT_TIERING":
            extra = f',"intelligent_tiering_access_tier":"{tiers[int(rnd() * 3)]}"'
        if rnd() < 0.05:
            extra += (
                f',"object_lock_mode":"{"GOVERNANCE" if rnd() < 0.5 else "COMPLIANCE"}"'
                f',"object_lock_retain_until_date":"{dstr}T00:00:00Z"'
                f',"object_lock_legal_hold_status":"{"ON" if rnd() < 0.2 else "OFF"}"'
            )
        if rnd() < 0.1:
            # Lifecycle expiry as integer epoch milliseconds (the loader takes both forms).
            extra += f',"lifecycle_expiration_date":{first_ms + (day + 365) * day_ms}'
        if sc in oss:
            extra += (
                f',"object_acl":"{acls[int(rnd() * 4)]}"'
                f',"object_type":"{object_types[int(rnd() * 4)]}"'
                f',"tagging_count":{int(rnd() * 5)},"crc64":"{bits(64)}"'
            )
            if sc != "Standard":
                extra += f',"transition_time":"{dstr}T12:00:00Z"'
        checksum = f'"{checksums[int(rnd() * 4)]}"' if rnd() < 0.3 else "null"
        append(
            f'{{"bucket":"{bucket_names[i % buckets]}","key":"{key}","version_id":{version}'
            f',"size":{size},"last_modified":"{dstr}T{hms[sec]}.{ms3[msr]}Z","etag":"{etag}"'
            f',"storage_class":"{sc}","is_multipart_uploaded":{"true" if multipart else "false"}'
            f'{repl},"encryption_status":"{encryption[i % 3]}","checksum_algorithm":{checksum}'
            f',"bucket_key_status":"{"ENABLED" if i % 7 == 0 else "DISABLED"}"'
            f',"object_owner":"{owners[i % 3]}"{extra}}}\n'
        )
    return "".join(lines).encode("utf-8")


CHUNK_ROWS = 50_000


def generate(out, rows, days, buckets, seed, end, jobs=1):
    """Writes `rows` NDJSON lines to the binary stream `out`, using `jobs` processes.

    At most 2 * jobs chunks are in flight, so memory stays bounded whatever `rows` is.
    """
    tasks = (
        (seed, c, c * CHUNK_ROWS, min(CHUNK_ROWS, rows - c * CHUNK_ROWS), days, buckets, end)
        for c in range((rows + CHUNK_ROWS - 1) // CHUNK_ROWS)
    )
    _tables(days, end, buckets)  # built before forking, shared by the workers
    if jobs <= 1:
        for t in tasks:
            out.write(_chunk(t))
        return
    import collections
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        pending = collections.deque()
        for t in tasks:
            pending.append(pool.apply_async(_chunk, (t,)))
            if len(pending) >= 2 * jobs:
                out.write(pending.popleft().get())
        while pending:
            out.write(pending.popleft().get())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100_000, help="rows to write (default 100000)")
    p.add_argument("--days", type=int, default=90,
                   help="last_modified spread over this many days (default 90)")
    p.add_argument("--buckets", type=int, default=3, help="number of buckets (default 3)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--end", default="2024-06-30",
                   help="last_modified is before this UTC date (YYYY-MM-DD, default 2024-06-30)")
    p.add_argument("--out", help="output file (default stdout)")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes (default 1; more only pays on idle cores, since every "
                        "chunk crosses a pipe); the output does not depend on it")
    p.add_argument("--quiet", action="store_true", help="no rows/s line on stderr")
    a = p.parse_args(argv)
    if a.rows < 0 or a.days < 1 or a.buckets < 1:
        p.error("--rows must be >= 0, --days and --buckets >= 1")
    try:
        _dt.date.fromisoformat(a.end)
    except ValueError:
        p.error(f"--end: expected YYYY-MM-DD, found {a.end!r}")
    t0 = time.perf_counter()
    if a.out:
        with open(a.out, "wb") as f:
            generate(f, a.rows, a.days, a.buckets, a.seed, a.end, a.jobs)
    else:
        out = sys.stdout.buffer
        try:
            generate(out, a.rows, a.days, a.buckets, a.seed, a.end, a.jobs)
            out.flush()
        except BrokenPipeError:
            return 0
    dt = time.perf_counter() - t0
    if not a.quiet:
        print(f"gen_inventory: {a.rows} rows in {dt:.2f}s ({a.rows / max(dt, 1e-9):,.0f} rows/s)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
