"""Inventory ingestion (issue 3) end to end: reports of S3 (CSV, CSV.gz, Parquet, ORC), OSS and
OBS written by tests/reports.py (Parquet and ORC by pyarrow) are imported with
`lakeport inventory import`, and the store (read with Python's sqlite3) must equal the
generator's truth row for row; then snapshot diffs, no-op re-imports, refused older reports,
every bad-input case (store unchanged, file and line named), `ls` paging, `du`, native
`snapshot` of a local folder, `inventory watch --once`, and delivery of an imported report
counted back by DuckDB."""

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from conftest import REPO, sqlite_dump, verify_delivery

sys.path.insert(0, str(REPO / "tests"))
import reports  # noqa: E402  (tests/reports.py, the report generator)

UTC = dt.timezone.utc
DAY1 = dt.datetime(2024, 6, 2, 1, 0, tzinfo=UTC)
DAY2 = dt.datetime(2024, 6, 3, 1, 0, tzinfo=UTC)
DAY3 = dt.datetime(2024, 6, 4, 1, 0, tzinfo=UTC)
DAY4 = dt.datetime(2024, 6, 5, 1, 0, tzinfo=UTC)
IMPORT_RE = re.compile(
    r"^imported (?P<url>.+): bucket (?P<bucket>.+): (?P<rows>\d+) rows \((?P<inserted>\d+) "
    r"inserted, (?P<updated>\d+) updated, (?P<deleted>\d+) deleted, (?P<unchanged>\d+) "
    r"unchanged\) in (?P<secs>\d+\.\d\d)s \((?P<rate>[\d.,]+) rows/s\)$")
RECORD_FIELDS = {"import_id", "scope_bucket", "scope_prefix", "manifest_url", "manifest_md5",
                 "provider", "created_ms", "imported_ms", "rows", "inserted", "updated",
                 "deleted", "unchanged", "duration_ms", "seq"}
COLUMNS = reports.INVENTORY_COLUMNS


# -- helpers --------------------------------------------------------------------------------

def import_json(wd, report_or_url, *extra):
    """`inventory import URL --json` (exit 0); returns the import record."""
    url = report_or_url if isinstance(report_or_url, str) else report_or_url.url
    r = wd.lakeport("inventory", "import", url, "--json", *extra, expect=0)
    try:
        rec = json.loads(r.out)
    except ValueError:
        pytest.fail(f"--json did not print one JSON object\n{r}")
    assert isinstance(rec, dict), r
    missing = RECORD_FIELDS - set(rec)
    assert not missing, f"import record lacks {sorted(missing)}\n{r}"
    return rec


def counts(rec):
    return {k: rec[k] for k in ("rows", "inserted", "updated", "deleted", "unchanged")}


def db_rows(wd, bucket=None, live_only=True):
    """object_inventory rows straight from SQLite, keyed by (bucket, key, version_id)."""
    rows = wd.store_rows("object_inventory", live_only=live_only)
    return {(r["bucket"], r["key"], r["version_id"]): r for r in rows
            if bucket is None or r["bucket"] == bucket}


def assert_store_equals(wd, report, bucket=None):
    """The live rows of the report's bucket equal the truth, column by column."""
    got = db_rows(wd, bucket or report.bucket)
    want = report.truth_by_key()
    missing = sorted(set(want) - set(got))[:5]
    extra = sorted(set(got) - set(want))[:5]
    assert not missing and not extra, (
        f"{len(set(want) - set(got))} truth rows missing (e.g. {missing}), "
        f"{len(set(got) - set(want))} unexpected rows (e.g. {extra})")
    bad = []
    for k, w in want.items():
        g = got[k]
        diff = {c: (g.get(c), w[c]) for c in COLUMNS if g.get(c) != w[c]}
        if diff:
            bad.append((k, diff))
    assert not bad, f"{len(bad)} rows differ (store, truth); first: {bad[:3]}"


def status_imports(wd):
    r = wd.ok("status", "--json")
    doc = json.loads(r.out)
    assert "imports" in doc, f"status --json has no imports\n{r}"
    for rec in doc["imports"]:
        assert RECORD_FIELDS <= set(rec), rec
    return doc["imports"]


def md5_file(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def set_data_file(report, path, data, fix_manifest=True):
    """Replaces a data file's bytes; with fix_manifest the manifest's size/MD5 (and the
    manifest.checksum) follow, so only the content is wrong."""
    path = Path(path)
    path.write_bytes(data)
    if not fix_manifest:
        return
    doc = json.loads(report.manifest.read_text(encoding="utf-8"))
    for e in doc["files"]:
        if path.as_posix().endswith("/" + e["key"]):
            e["size"] = len(data)
            e["MD5checksum"] = hashlib.md5(data).hexdigest()
    write_manifest(report, reports._json_manifest(doc))


def write_manifest(report, text, checksum="auto"):
    report.manifest.write_text(text, encoding="utf-8")
    if checksum == "auto":
        checksum = hashlib.md5(text.encode("utf-8")).hexdigest()
    if checksum is not None:
        (report.folder / "manifest.checksum").write_text(checksum + "\n")


def mentioned_time(text, ms):
    """Whether `text` names the instant `ms` (epoch ms, or an ISO-like date and time)."""
    t = reports.EPOCH + dt.timedelta(milliseconds=ms)
    forms = [str(ms), str(ms // 1000), t.strftime("%Y-%m-%dT%H:%M"), t.strftime("%Y-%m-%d %H:%M"),
             t.strftime("%Y-%m-%dT%H-%MZ")]
    return any(f in text for f in forms)


def utf8_sorted(keys):
    return sorted(keys, key=lambda k: k.encode("utf-8"))


# -- every provider and format against the truth --------------------------------------------

CASES = {
    # id: (provider, format, versioned, extra writer kwargs)
    "s3-csv": ("s3", "csv", False, {}),
    "s3-csv.gz": ("s3", "csv.gz", False, {}),
    "s3-parquet": ("s3", "parquet", False, {}),
    "s3-orc": ("s3", "orc", False, {}),
    "s3-csv.gz-versioned": ("s3", "csv.gz", True, {}),
    "s3-parquet-versioned": ("s3", "parquet", True, {}),
    "s3-orc-versioned": ("s3", "orc", True, {}),
    "s3-csv-few-fields": ("s3", "csv", False,
                          {"fields": ["Bucket", "Key", "Size", "LastModifiedDate"]}),
    "s3-parquet-few-fields": ("s3", "parquet", False,
                              {"fields": ["Bucket", "Key", "Size", "StorageClass"]}),
    "oss": ("oss", "csv.gz", False, {}),
    "oss-versioned": ("oss", "csv.gz", True, {}),
    "oss-crc64-upper": ("oss", "csv.gz", False, {"fields": [
        "Bucket", "Key", "Size", "StorageClass", "LastModifiedDate", "ETag",
        "IsMultipartUploaded", "EncryptionStatus", "ObjectAcl", "TaggingCount", "ObjectType",
        "CRC64"]}),
    "oss-only-required": ("oss", "csv.gz", False, {"fields": ["Bucket", "Key"]}),
    "oss-iso-dates": ("oss", "csv.gz", False, {"date_style": "iso"}),
    "obs": ("obs", "csv", False, {}),
    "obs-versioned": ("obs", "csv", True, {}),
}


def write_report(root, provider, fmt, objs, created=DAY1, **kw):
    if provider == "s3":
        return reports.write_s3(root, objs, fmt=fmt, created=created, **kw)
    if provider == "oss":
        return reports.write_oss(root, objs, created=created, **kw)
    return reports.write_obs(root, objs, created=created, **kw)


@pytest.mark.parametrize("case", sorted(CASES))
def test_import_equals_truth(wd, case):
    provider, fmt, versioned, kw = CASES[case]
    objs = reports.make_objects(180, seed=3, bucket=f"{provider}-bucket", provider=provider,
                                versioned=versioned)
    rep = write_report(wd.root / "dest", provider, fmt, objs, **kw)
    assert rep.count == len(objs) and rep.count > 100
    rec = import_json(wd, rep)
    assert counts(rec) == {"rows": rep.count, "inserted": rep.count, "updated": 0,
                           "deleted": 0, "unchanged": 0}, rec
    assert rec["provider"] == provider, rec
    assert rec["scope_bucket"] == rep.bucket and rec["scope_prefix"] in ("", None), rec
    assert rec["manifest_md5"].lower() == md5_file(rep.manifest), rec
    # OSS creation times are seconds, OBS has only the folder's minute: both are whole ms here.
    assert rec["created_ms"] == rep.created_ms, (rec, rep.created_ms)
    assert rec["manifest_url"].endswith(rep.manifest.as_posix().split("/", 1)[1]), rec
    assert_store_equals(wd, rep)
    # Tombstones: none yet; every stored row is live.
    assert len(db_rows(wd, live_only=False)) == rep.count


def test_tricky_keys_decoded_exactly(wd):
    """Spot checks that do not rely on the generator's own encoder: keys AWS tools used to
    corrupt with plain percent-decoding, and CSV quoting."""
    objs = reports.make_objects(len(reports.TRICKY_KEYS), seed=5, bucket="tricky")
    rep = reports.write_s3(wd.root / "dest", objs, fmt="csv.gz", files=1)
    raw = __import__("gzip").decompress(rep.files[0].read_bytes()).decode()
    assert '"photos%2F2024%2Fsummer+trip%2FIMG+0001.jpg"' in raw
    assert '"photos%2F2024%2Fsummer+trip%2FIMG%2B0002.jpg"' in raw
    assert '"percent%2F%252B+stays.txt"' in raw
    import_json(wd, rep)
    keys = {k for (_, k, _) in db_rows(wd, "tricky")}
    for k in ["photos/2024/summer trip/IMG 0001.jpg", "photos/2024/summer trip/IMG+0002.jpg",
              "math/1+1=2 & 2+2=4.txt", "percent/100% sure.txt", "percent/%2B stays.txt",
              "percent/%41 is not A.txt", 'quotes/say "hello".txt',
              'commas/"quoted, with comma".csv', "日本/東京/写真.jpg", "emoji/🚀/launch 🚀.mov",
              " leading space.txt", "trailing space ", "café/menu.pdf"]:
        assert k in keys, f"{k!r} not stored exactly; got e.g. {sorted(keys)[:8]}"
    got = db_rows(wd, "tricky")
    assert got[("tricky", "top-level.txt", "")]["prefix"] == ""
    assert got[("tricky", "emoji/🚀/launch 🚀.mov", "")]["prefix"] == "emoji/🚀/"
    deep = next(k for k in keys if k.startswith("deep/"))
    assert got[("tricky", deep, "")]["prefix"] == deep.rsplit("/", 1)[0] + "/"


def test_text_summary_line_and_format_override(wd):
    objs = reports.make_objects(60, seed=9, bucket="text-bucket")
    rep = reports.write_s3(wd.root / "dest", objs, fmt="csv.gz")
    r = wd.lakeport("inventory", "import", rep.url, "--format", "s3", expect=0)
    m = IMPORT_RE.match(r.lines[-1]) if r.lines else None
    assert m, f"last line is not the import summary\n{r}"
    assert m["bucket"] == "text-bucket" and int(m["rows"]) == 60, r
    assert (int(m["inserted"]), int(m["updated"]), int(m["deleted"]),
            int(m["unchanged"])) == (60, 0, 0, 0), r
    assert rep.manifest.name in m["url"], r
    assert_store_equals(wd, rep)
    # An unknown --format is bad usage and changes nothing.
    rep2 = reports.write_s3(wd.root / "dest", reports.mutate(objs, add=3, change=0,
                                                             remove=0)[0],
                            fmt="csv.gz", created=DAY2)
    before = sqlite_dump(wd.store_path)
    wd.lakeport("inventory", "import", rep2.url, "--format", "azure", expect=2)
    assert sqlite_dump(wd.store_path) == before


# -- snapshot semantics ---------------------------------------------------------------------

DIFF_CASES = {
    "s3-csv.gz": ("s3", "csv.gz", False),
    "s3-parquet-versioned": ("s3", "parquet", True),
    "s3-orc": ("s3", "orc", False),
    "oss": ("oss", "csv.gz", False),
    "obs": ("obs", "csv", False),
}


@pytest.mark.parametrize("case", sorted(DIFF_CASES))
def test_snapshot_diff(wd, case):
    provider, fmt, versioned = DIFF_CASES[case]
    objs1 = reports.make_objects(150, seed=21, bucket="diff-bucket", provider=provider,
                                 versioned=versioned)
    objs2, diff = reports.mutate(objs1, seed=22, add=7, change=5, remove=9, provider=provider)
    r1 = write_report(wd.root / "dest", provider, fmt, objs1, created=DAY1)
    r2 = write_report(wd.root / "dest", provider, fmt, objs2, created=DAY2)
    rec1 = import_json(wd, r1)
    before = db_rows(wd, live_only=False)
    max_seq1 = max(r["_seq"] for r in before.values())
    assert rec1["seq"] >= max_seq1, rec1

    rec2 = import_json(wd, r2)
    n = len(objs1)
    assert counts(rec2) == {"rows": len(objs2), "inserted": 7, "updated": 5, "deleted": 9,
                            "unchanged": n - 14}, rec2
    assert_store_equals(wd, r2)
    after = db_rows(wd, live_only=False)
    b = "diff-bucket"
    for key in diff["unchanged"]:
        k = (b, *key)
        assert after[k]["_seq"] == before[k]["_seq"], f"unchanged row {k} got a new _seq"
        assert after[k]["_write_time"] == before[k]["_write_time"], k
    for key in diff["changed"] | diff["added"]:
        assert after[(b, *key)]["_seq"] > max_seq1, key
        assert after[(b, *key)]["_deleted"] == 0, key
    for key in diff["removed"]:
        row = after.get((b, *key))
        assert row is not None, f"removed object {key} left no tombstone"
        assert row["_deleted"] == 1 and row["_seq"] > max_seq1, row
    assert rec2["seq"] == max(r["_seq"] for r in after.values()), rec2

    # Imports are recorded, newest first.
    imports = status_imports(wd)
    assert [i["import_id"] for i in imports[:2]] == [rec2["import_id"], rec1["import_id"]]
    assert imports[0]["created_ms"] == r2.created_ms and imports[1]["created_ms"] == r1.created_ms
    assert counts(imports[0]) == counts(rec2)


def test_reimport_same_manifest_is_a_noop(wd):
    objs = reports.make_objects(80, seed=31, bucket="again")
    rep = reports.write_s3(wd.root / "dest", objs, fmt="csv.gz")
    import_json(wd, rep)
    before = sqlite_dump(wd.store_path)
    r = wd.lakeport("inventory", "import", rep.url, expect=0)
    assert "already imported" in r.out and "nothing to do" in r.out, r
    assert rep.manifest.name in r.out, r
    assert sqlite_dump(wd.store_path) == before, "a no-op re-import changed the store"
    # The same files under a new manifest (next day) are an import that writes nothing.
    rows_before = {k: (v["_seq"], v["_write_time"]) for k, v in
                   db_rows(wd, live_only=False).items()}
    nxt = reports.next_day_manifest(rep, wd.root / "dest")
    rec = import_json(wd, nxt)
    assert counts(rec) == {"rows": 80, "inserted": 0, "updated": 0, "deleted": 0,
                           "unchanged": 80}, rec
    assert rows_before == {k: (v["_seq"], v["_write_time"]) for k, v in
                           db_rows(wd, live_only=False).items()}, "an unchanged report rewrote rows"
    assert len(status_imports(wd)) == 2


def test_older_report_is_refused(wd):
    objs = reports.make_objects(50, seed=41, bucket="order")
    new = reports.write_s3(wd.root / "dest", objs, fmt="csv.gz", created=DAY2)
    old = reports.write_s3(wd.root / "dest", reports.mutate(objs, add=5)[0], fmt="csv.gz",
                           created=DAY1)
    import_json(wd, new)
    before = sqlite_dump(wd.store_path)
    r = wd.lakeport("inventory", "import", old.url, expect=1)
    text = r.out + r.err
    assert mentioned_time(text, old.created_ms) and mentioned_time(text, new.created_ms), (
        f"the refusal must name both creation times\n{r}")
    assert sqlite_dump(wd.store_path) == before


def test_scope_prefix_limits_deletes(wd):
    objs = reports.make_objects(120, seed=51, bucket="scoped")
    full = reports.write_s3(wd.root / "dest", objs, fmt="csv.gz", created=DAY1)
    import_json(wd, full)
    under = [o for o in objs if o["key"].startswith("logs/")]
    assert len(under) > 10
    kept = under[:-4]
    part = reports.write_s3(wd.root / "dest", kept, fmt="csv.gz", created=DAY2,
                            config_id="logs-only")
    rec = import_json(wd, part, "--scope-prefix", "logs/")
    assert rec["scope_prefix"] == "logs/", rec
    assert counts(rec) == {"rows": len(kept), "inserted": 0, "updated": 0, "deleted": 4,
                           "unchanged": len(kept)}, rec
    live = db_rows(wd, "scoped")
    assert len(live) == len(objs) - 4
    assert all(("scoped", o["key"], "") in live for o in objs if not o["key"].startswith("logs/"))


# -- bad input: refused, store unchanged, file (and line) named -----------------------------

def _lines(data):
    return data.decode("utf-8").split("\n")


def _csv_case(rep, line_no, edit):
    """Edits line `line_no` (1-based) of the first data file of a plain-CSV report."""
    path = rep.files[0]
    lines = _lines(path.read_bytes())
    lines[line_no - 1] = edit(lines[line_no - 1])
    set_data_file(rep, path, "\n".join(lines).encode("utf-8"))
    return path, line_no


def _field(line, i, value):
    cells = line.split('","')
    cells[i] = value
    return '","'.join(cells)


def bad_corrupt_gzip(rep):
    """The first deflate block header says BTYPE=11 (reserved): invalid at once."""
    path = rep.files[1]
    data = bytearray(path.read_bytes())
    data[10] = 0xFF
    set_data_file(rep, path, bytes(data))
    return path, None


def bad_gzip_crc(rep):
    """Every byte inflates fine, but the gzip trailer's CRC-32 does not match."""
    path = rep.files[2]
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF
    set_data_file(rep, path, bytes(data))
    return path, None


def bad_truncated_gzip(rep):
    path = rep.files[0]
    set_data_file(rep, path, path.read_bytes()[: len(path.read_bytes()) * 2 // 3])
    return path, None


def bad_truncated_columnar(rep):
    """A Parquet/ORC file cut short (its footer gone), with a manifest that agrees."""
    path = rep.files[1]
    set_data_file(rep, path, path.read_bytes()[: len(path.read_bytes()) // 2])
    return path, None


def bad_wrong_columns(rep):
    return _csv_case(rep, 5, lambda ln: ln.rsplit(",", 1)[0])


def bad_number(rep):
    return _csv_case(rep, 3, lambda ln: _field(ln, 2, "12x"))


def bad_date(rep):
    return _csv_case(rep, 4, lambda ln: _field(ln, 3, "2024-13-45T99:00:00.000Z"))


def bad_data_md5(rep):
    doc = json.loads(rep.manifest.read_text(encoding="utf-8"))
    doc["files"][1]["MD5checksum"] = "0" * 32
    write_manifest(rep, reports._json_manifest(doc))
    return rep.files[1], None


def bad_manifest_checksum(rep):
    (rep.folder / "manifest.checksum").write_text("d41d8cd98f00b204e9800998ecf8427e\n")
    return Path("manifest"), None       # manifest.json or manifest.checksum may be named


def bad_size(rep):
    doc = json.loads(rep.manifest.read_text(encoding="utf-8"))
    doc["files"][0]["size"] += 1
    write_manifest(rep, reports._json_manifest(doc))
    return rep.files[0], None


def bad_unreadable_manifest(rep):
    text = rep.manifest.read_text(encoding="utf-8")
    write_manifest(rep, text[: len(text) // 2])
    return rep.manifest, None


def bad_missing_data_file(rep):
    rep.files[2].unlink()
    return rep.files[2], None


def bad_missing_manifest(rep):
    shutil.rmtree(rep.folder)
    return rep.manifest, None


NOT_FOUND = r"not found|no such|missing|does not exist|cannot (open|read)"
BAD = {
    # name: (format of report 2, how to break it, what the message must say (regex, any case))
    "corrupt-gzip": ("csv.gz", bad_corrupt_gzip, r"gzip|deflate|corrupt|invalid|crc"),
    "gzip-crc-mismatch": ("csv.gz", bad_gzip_crc, r"crc|checksum|gzip|corrupt"),
    "truncated-gzip": ("csv.gz", bad_truncated_gzip,
                       r"truncat|unexpected end|eof|gzip|incomplete"),
    "truncated-parquet": ("parquet", bad_truncated_columnar, r"parquet|footer|eof|corrupt|invalid"),
    "truncated-orc": ("orc", bad_truncated_columnar, r"orc|footer|eof|corrupt|invalid|postscript"),
    "wrong-column-count": ("csv", bad_wrong_columns, r"field|column"),
    "bad-number": ("csv", bad_number, r"Size.*12x"),
    "bad-date": ("csv", bad_date, r"LastModifiedDate.*2024-13-45"),
    "data-md5-mismatch": ("csv.gz", bad_data_md5, r"md5|checksum"),
    "manifest-checksum-mismatch": ("csv.gz", bad_manifest_checksum, r"checksum|md5"),
    "size-mismatch": ("csv.gz", bad_size, r"size|bytes"),
    "unreadable-manifest": ("csv.gz", bad_unreadable_manifest, r"json|eof|parse"),
    "missing-data-file": ("csv.gz", bad_missing_data_file, NOT_FOUND),
    "missing-manifest": ("csv.gz", bad_missing_manifest, NOT_FOUND),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_refused_and_changes_nothing(wd, name):
    fmt, breaker, what = BAD[name]
    objs1 = reports.make_objects(90, seed=61, bucket="bad-bucket")
    objs2, _ = reports.mutate(objs1, seed=62, add=5, change=5, remove=5)
    import_json(wd, reports.write_s3(wd.root / "dest", objs1, fmt="csv.gz", created=DAY1))
    rep2 = reports.write_s3(wd.root / "dest", objs2, fmt=fmt, created=DAY2, files=3)
    path, line = breaker(rep2)
    before = sqlite_dump(wd.store_path)
    r = wd.lakeport("inventory", "import", rep2.url)
    assert r.code == 1, f"expected exit 1\n{r}"
    assert path.name in r.err, f"the error must name {path.name}\n{r}"
    if line is not None:
        assert re.search(rf"{re.escape(path.name)}:{line}\b", r.err), (
            f"the error must name {path.name}:{line}\n{r}")
    assert re.search(what, r.err, re.IGNORECASE), f"the error must say what was wrong ({what})\n{r}"
    assert not r.out.startswith("imported"), r
    assert sqlite_dump(wd.store_path) == before, "a refused import changed the store"


def test_obs_record_count_mismatch_is_refused(wd):
    objs = reports.make_objects(60, seed=71, bucket="obs-count", provider="obs")
    rep = reports.write_obs(wd.root / "dest", objs, files=2)
    text = rep.manifest.read_text(encoding="utf-8")
    first = re.search(r'"inventoriedRecord":(\d+)', text)
    text = text[: first.start(1)] + str(int(first[1]) + 1) + text[first.end(1):]
    rep.manifest.write_text(text, encoding="utf-8")
    r = wd.lakeport("inventory", "import", rep.url)
    assert r.code == 1, r
    assert "inventoriedRecord" in r.err or rep.files[0].name in r.err, r
    if wd.store_path.exists():
        assert db_rows(wd, "obs-count") == {}


# -- ls and du ------------------------------------------------------------------------------

def _pick(doc, names):
    for n in names:
        if isinstance(doc, dict) and n in doc:
            return doc[n]
    return None


def ls_page(wd, bucket, *args):
    """One `ls --json` page: (keys, common prefixes, next token or None)."""
    r = wd.lakeport("ls", bucket, "--json", *args, expect=0)
    try:
        doc = json.loads(r.out)
    except ValueError:
        pytest.fail(f"ls --json did not print one JSON document\n{r}")
    objects = _pick(doc, ["objects", "contents", "Contents", "keys", "items"])
    assert isinstance(objects, list), f"no object list in ls --json\n{r}"
    keys = [o if isinstance(o, str) else _pick(o, ["key", "Key"]) for o in objects]
    prefixes = _pick(doc, ["common_prefixes", "prefixes", "CommonPrefixes", "folders"]) or []
    prefixes = [p if isinstance(p, str) else _pick(p, ["prefix", "Prefix"]) for p in prefixes]
    token = _pick(doc, ["next_continuation_token", "continuation_token",
                        "NextContinuationToken", "next_token"])
    return keys, prefixes, token


def ls_walk(wd, bucket, *args, limit):
    keys, prefixes, pages, token = [], [], 0, None
    while True:
        extra = ["--continuation-token", token] if token else []
        k, p, token = ls_page(wd, bucket, "--limit", str(limit), *args, *extra)
        assert len(k) + len(p) <= limit, (len(k), len(p), limit)
        keys += k
        prefixes += p
        pages += 1
        assert pages < 10_000
        if not token:
            return keys, prefixes, pages


@pytest.fixture
def listed(wd):
    objs = reports.make_objects(400, seed=81, bucket="list-bucket")
    objs2, _ = reports.mutate(objs, seed=82, add=20, change=10, remove=25)
    import_json(wd, reports.write_s3(wd.root / "dest", objs, fmt="csv.gz", created=DAY1))
    rep = reports.write_s3(wd.root / "dest", objs2, fmt="csv.gz", created=DAY2)
    import_json(wd, rep)
    # Another bucket whose keys must never show up.
    import_json(wd, reports.write_s3(wd.root / "dest",
                                     reports.make_objects(30, seed=83, bucket="list-bucket-2"),
                                     fmt="csv.gz", created=DAY1))
    return wd, rep


def test_ls_pages_every_key_once_in_order(listed):
    wd, rep = listed
    want = utf8_sorted(r["key"] for r in rep.rows)
    for limit in (1000, 37, 1):
        if limit == 1:
            # One key per page over the first few pages only (the walk is the same code path).
            keys, token = [], None
            for _ in range(12):
                extra = ["--continuation-token", token] if token else []
                k, _, token = ls_page(wd, "list-bucket", "--limit", "1", *extra)
                assert len(k) == 1
                keys += k
            assert keys == want[:12]
            continue
        keys, prefixes, pages = ls_walk(wd, "list-bucket", limit=limit)
        assert prefixes == []
        assert len(keys) == len(set(keys)), "a key came twice"
        assert keys == want, "keys missing, extra or out of UTF-8 byte order"
        assert pages == -(-len(want) // limit) or pages == -(-len(want) // limit) + 1


def test_ls_prefix_and_non_recursive(listed):
    wd, rep = listed
    all_keys = [r["key"] for r in rep.rows]
    for prefix in ("a", "prefix", "photos/", "日本/", "deep/level01/level02/"):
        want = utf8_sorted(k for k in all_keys if k.startswith(prefix))
        keys, _, _ = ls_walk(wd, "list-bucket", "--prefix", prefix, limit=7)
        assert keys == want, prefix
    for prefix in ("", "photos/", "a/", "deep/"):
        objs, folders = set(), set()
        for k in all_keys:
            if not k.startswith(prefix):
                continue
            rest = k[len(prefix):]
            if "/" in rest:
                folders.add(prefix + rest[: rest.index("/") + 1])
            else:
                objs.add(k)
        keys, prefixes, _ = ls_walk(wd, "list-bucket", "--prefix", prefix, "--non-recursive",
                                    limit=5)
        assert len(keys) == len(set(keys)) and len(prefixes) == len(set(prefixes)), prefix
        assert keys == utf8_sorted(objs), prefix
        assert prefixes == utf8_sorted(folders), prefix


def test_ls_bad_token_is_an_error(listed):
    wd, _ = listed
    r = wd.lakeport("ls", "list-bucket", "--continuation-token", "not-a-token!!")
    assert r.code in (1, 2), r


def du_groups(doc, leaves_only=False):
    """[(label, count, bytes)] of every dict in a du --json document that carries a count
    and a byte total (label: its first string value); with leaves_only, only dicts that hold
    no further dicts or lists (the groups, not a total that wraps them)."""
    out = []

    def walk(x):
        if isinstance(x, dict):
            c = _pick(x, ["count", "objects", "rows"])
            b = _pick(x, ["bytes", "size", "total_bytes"])
            leaf = not any(isinstance(v, (dict, list)) for v in x.values())
            if isinstance(c, int) and isinstance(b, int) and (leaf or not leaves_only):
                label = next((v for k, v in x.items() if isinstance(v, str)), None)
                out.append((label, c, b))
            for v in x.values():
                if isinstance(v, (dict, list)):
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(doc)
    return out


def test_du_against_truth(listed):
    wd, rep = listed
    rows = rep.rows
    total = (len(rows), sum(r["size"] or 0 for r in rows))

    def du(*args):
        r = wd.lakeport("du", "list-bucket", "--json", *args, expect=0)
        return du_groups(json.loads(r.out), leaves_only="--by" in args)

    def totals(groups):
        """A total the output states, or the sum of its groups."""
        leaves = [(c, b) for _, c, b in groups]
        return {(c, b) for c, b in leaves} | {(sum(c for c, _ in leaves),
                                              sum(b for _, b in leaves))}

    groups = du()
    assert total in totals(groups), (groups, total)
    sub = [r for r in rows if r["key"].startswith("photos/")]
    groups = du("--prefix", "photos/")
    assert (len(sub), sum(r["size"] or 0 for r in sub)) in totals(groups), groups

    by_class = Counter()
    bytes_by_class = Counter()
    for r in rows:
        by_class[r["storage_class"]] += 1
        bytes_by_class[r["storage_class"]] += r["size"] or 0
    groups = du("--by", "storage_class")
    got = {lab: (c, b) for lab, c, b in groups if lab in by_class}
    assert got == {k: (by_class[k], bytes_by_class[k]) for k in by_class}, groups

    for by in ("prefix", "size_bucket", "month"):
        groups = du("--by", by)
        labelled = [(lab, c, b) for lab, c, b in groups if lab is not None]
        assert sum(c for _, c, _ in labelled) == total[0], (by, groups)
        assert sum(b for _, _, b in labelled) == total[1], (by, groups)
    months = Counter((reports.EPOCH + dt.timedelta(milliseconds=r["last_modified"])).strftime("%Y-%m")
                     for r in rows)
    groups = du("--by", "month")
    assert sorted(c for lab, c, _ in groups if lab is not None) == sorted(months.values())


# -- native snapshot of a local folder ------------------------------------------------------

SNAP_FILES = {
    "top.txt": b"top",
    "docs/readme.md": b"# readme\n",
    "docs/sub dir/naïve café.txt": b"x" * 1000,
    "docs/sub dir/a+b & c.txt": b"plus and ampersand",
    "日本/写真 1.jpg": b"\xff\xd8" + b"j" * 500,
    "emoji 😀/file.bin": bytes(range(256)),
    "sub/keep-1.dat": b"1",
    "sub/keep-2.dat": b"22",
    "sub/deep/er/file.dat": b"333",
    "empty.txt": b"",
}


def _write_tree(root, files):
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _snapshot(wd, url, *args):
    r = wd.lakeport("snapshot", url, "--json", *args, expect=0)
    try:
        return json.loads(r.out)
    except ValueError:
        pytest.fail(f"snapshot --json did not print one JSON object\n{r}")


def test_snapshot_of_a_local_folder(wd):
    bucket_dir = wd.root / "bucket-dir"
    _write_tree(bucket_dir, SNAP_FILES)
    url = bucket_dir.as_uri()
    rec = _snapshot(wd, url)
    assert (rec["inserted"], rec["updated"], rec["deleted"]) == (len(SNAP_FILES), 0, 0), rec
    live = db_rows(wd)
    buckets = {b for b, _, _ in live}
    assert len(buckets) == 1, f"one bucket expected, found {buckets}"
    assert {k for _, k, _ in live} == set(SNAP_FILES)
    for (b, k, v), row in live.items():
        st = (bucket_dir / k).stat()
        assert v == "" and row["size"] == st.st_size, row
        assert row["prefix"] == reports.parent_folder(k), row
        assert abs(row["last_modified"] - st.st_mtime_ns // 1_000_000) < 1000, row
    seq1 = {k: r["_seq"] for k, r in db_rows(wd, live_only=False).items()}

    # Second snapshot: two added, one removed, one rewritten with another size.
    (bucket_dir / "top.txt").unlink()
    (bucket_dir / "docs/readme.md").write_bytes(b"# readme, longer now\n")
    _write_tree(bucket_dir, {"new/one.txt": b"1", "new/two words.txt": b"22"})
    rec = _snapshot(wd, url)
    assert (rec["inserted"], rec["updated"], rec["deleted"]) == (2, 1, 1), rec
    assert rec["unchanged"] == len(SNAP_FILES) - 2, rec
    after = db_rows(wd, live_only=False)
    (bucket,) = buckets
    assert after[(bucket, "top.txt", "")]["_deleted"] == 1
    assert after[(bucket, "docs/readme.md", "")]["size"] == len(b"# readme, longer now\n")
    for k in set(SNAP_FILES) - {"top.txt", "docs/readme.md"}:
        assert after[(bucket, k, "")]["_seq"] == seq1[(bucket, k, "")], k

    # A snapshot limited to a prefix deletes only inside it.
    (bucket_dir / "sub/keep-1.dat").unlink()
    (bucket_dir / "empty.txt").unlink()          # outside the prefix: stays in the store
    rec = _snapshot(wd, url, "--prefix", "sub/")
    assert (rec["inserted"], rec["updated"], rec["deleted"]) == (0, 0, 1), rec
    live = db_rows(wd, bucket)
    assert (bucket, "sub/keep-1.dat", "") not in live
    assert (bucket, "empty.txt", "") in live


# -- inventory watch --once -----------------------------------------------------------------

def test_watch_once_imports_in_creation_order(wd):
    root = wd.root / "reports-root"
    a1 = reports.make_objects(60, seed=91, bucket="watch-a")
    a3, _ = reports.mutate(a1, seed=93, add=4, change=3, remove=2)
    # Written newest first, so the file system order is not the creation order.
    ra3 = reports.write_s3(root, a3, fmt="csv.gz", created=DAY3)
    rb2 = reports.write_s3(root, reports.make_objects(40, seed=92, bucket="watch-b"),
                           fmt="parquet", created=DAY2)
    ra1 = reports.write_s3(root, a1, fmt="csv.gz", created=DAY1)
    # (ISO dates: the OSS date form has its own case in test_import_equals_truth.)
    rc = reports.write_oss(root, reports.make_objects(30, seed=94, bucket="watch-c",
                                                      provider="oss"), created=DAY2,
                           date_style="iso")
    # A bad report (corrupt gzip) in its own bucket, and an incomplete one (no checksum yet).
    bad = reports.write_s3(root, reports.make_objects(30, seed=95, bucket="watch-bad"),
                           fmt="csv.gz", created=DAY1)
    bad_corrupt_gzip(bad)
    a4, _ = reports.mutate(a3, seed=96, add=2, change=0, remove=0)
    ra4 = reports.write_s3(root, a4, fmt="csv.gz", created=DAY4)
    checksum = (ra4.folder / "manifest.checksum").read_text()
    (ra4.folder / "manifest.checksum").unlink()

    r = wd.lakeport("inventory", "watch", root.as_uri(), "--once")
    assert r.code in (0, 1), r
    assert bad.files[1].name in (r.out + r.err) or "watch-bad" in (r.out + r.err), (
        f"the bad report must be reported\n{r}")
    imports = status_imports(wd)
    done = sorted(imports, key=lambda i: i["import_id"])
    urls = [i["manifest_url"] for i in done]
    assert all(bad.manifest.as_posix() not in u for u in urls), "the bad report was applied"
    assert all(ra4.manifest.as_posix() not in u for u in urls), "an incomplete report was applied"
    assert len(done) == 4, urls
    assert [i["created_ms"] for i in done] == sorted(i["created_ms"] for i in done), (
        "imports not in creation order")
    assert [i["created_ms"] for i in done if i["scope_bucket"] == "watch-a"] == [
        ra1.created_ms, ra3.created_ms]
    assert_store_equals(wd, ra3)
    assert_store_equals(wd, rb2)
    assert_store_equals(wd, rc)
    assert db_rows(wd, "watch-bad") == {}

    # The report completes; the next pass imports it and nothing else again.
    (ra4.folder / "manifest.checksum").write_text(checksum)
    r = wd.lakeport("inventory", "watch", root.as_uri(), "--once")
    assert r.code in (0, 1), r
    imports = status_imports(wd)
    assert len(imports) == 5, [i["manifest_url"] for i in imports]
    assert imports[0]["created_ms"] == ra4.created_ms and imports[0]["inserted"] == 2
    assert_store_equals(wd, ra4)


# -- end to end: import, deliver, count with DuckDB -----------------------------------------

def test_import_then_deliver(wd):
    objs = reports.make_objects(500, seed=101, bucket="e2e-bucket", versioned=True)
    rep = reports.write_s3(wd.root / "dest", objs, fmt="csv.gz", created=DAY1)
    rec = import_json(wd, rep)
    assert rec["rows"] == rep.count
    wd.write_task("inv-e2e", destination="lake/inv", prefix="dt=$yyyy-$MM-$dd",
                  partition_time={"from": "column", "column": "last_modified",
                                  "timezone": "UTC"}, concurrency=2)
    _, summary = wd.run("inv-e2e")
    verify_delivery(wd, "inv-e2e", summary)
    dest = wd.destination("inv-e2e")
    con = duckdb.connect()
    n, keys, versions = con.execute(
        f"SELECT count(*), count(DISTINCT key), count(DISTINCT (key, version_id)) "
        f"FROM read_parquet('{dest}/**/*.parquet', hive_partitioning=false)").fetchone()
    assert n == rep.count and versions == rep.count
    assert keys == len({o["key"] for o in objs})
    want_bytes = sum(r["size"] or 0 for r in rep.rows)
    got_bytes = con.execute(f"SELECT sum(size) FROM read_parquet('{dest}/**/*.parquet', "
                            f"hive_partitioning=false)").fetchone()[0]
    assert got_bytes == want_bytes
    con.close()
