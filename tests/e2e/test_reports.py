"""The report generator (tests/reports.py) checked on its own, without lakeport: every report
it writes is read back by independent readers (csv + gzip + urllib for CSV, pyarrow for
Parquet and ORC, json for manifests) and must equal its truth; manifests carry the right
checksums, sizes and shapes. A broken generator would make test_inventory.py prove nothing."""

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import re
import sys
import urllib.parse
from pathlib import Path

import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tests"))
import reports  # noqa: E402

EPOCH = reports.EPOCH


def parse_date(text):
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", text):      # OSS
        t = dt.datetime.strptime(text, "%Y-%m-%dT%H-%M-%SZ").replace(tzinfo=dt.timezone.utc)
    else:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return reports.ms_of(t)


def read_back(rep, root):
    """Rows of a report read with independent code, in truth form."""
    text = rep.manifest.read_text(encoding="utf-8")
    if rep.provider == "obs":
        text = re.sub(r",(\s*[}\]])", r"\1", text)        # OBS's trailing commas
    doc = json.loads(text)
    checksum = rep.folder / "manifest.checksum"
    if rep.provider == "obs":
        assert not checksum.exists()
    else:
        assert checksum.read_text().strip().lower() == hashlib.md5(
            rep.manifest.read_bytes()).hexdigest()
    rows = []
    for e in doc["files"]:
        key = urllib.parse.unquote(e["key"]) if rep.provider == "obs" else e["key"]
        path = Path(root) / key
        data = path.read_bytes()
        assert e["size"] == len(data)
        if rep.provider == "obs":
            assert "MD5checksum" not in e
        else:
            assert e["MD5checksum"].lower() == hashlib.md5(data).hexdigest()
        if doc["fileFormat"] == "CSV":
            fields = [f.strip() for f in doc["fileSchema"].split(",")]
            table = reports.S3_BY_FIELD if rep.provider == "s3" else (
                reports.OSS_FIELDS if rep.provider == "oss" else reports.OBS_FIELDS)
            if key.endswith(".gz"):
                data = gzip.decompress(data)
            recs = list(csv.reader(io.StringIO(data.decode("utf-8"))))
            if rep.provider == "obs":
                assert e["inventoriedRecord"] == len(recs)
            for rec in recs:
                assert len(rec) == len(fields)
                row = {c: None for c in reports.INVENTORY_COLUMNS}
                row["version_id"] = ""
                for f, v in zip(fields, rec):
                    col, kind = (table[f][1], table[f][2]) if rep.provider == "s3" else table[f]
                    if f == "Key":
                        v = (urllib.parse.unquote_plus(v) if rep.provider == "s3"
                             else urllib.parse.unquote(v))
                    elif v == "":
                        v = None
                    elif kind == "int":
                        v = int(v)
                    elif kind == "bool":
                        v = {"true": 1, "false": 0}[v]
                    elif kind == "ts":
                        v = parse_date(v)
                    if v is not None or f != "VersionId":
                        row[col] = v
                row["prefix"] = reports.parent_folder(row["key"])
                rows.append(row)
        else:
            table = (pq.read_table(path) if doc["fileFormat"] == "Parquet"
                     else orc.ORCFile(path).read())
            by_name = {p: (c, k) for _, p, c, k in reports.S3_FIELDS}
            for rec in table.to_pylist():
                row = {c: None for c in reports.INVENTORY_COLUMNS}
                row["version_id"] = ""
                for name, v in rec.items():
                    col, kind = by_name[name]
                    if v is not None and kind == "ts":
                        if v.tzinfo is None:
                            v = v.replace(tzinfo=dt.timezone.utc)
                        v = reports.ms_of(v)
                    if v is not None and kind == "bool":
                        v = int(v)
                    if v is not None or name != "version_id":
                        row[col] = v
                row["prefix"] = reports.parent_folder(row["key"])
                rows.append(row)
    return doc, rows


@pytest.mark.parametrize("provider,fmt,versioned", [
    ("s3", "csv", False), ("s3", "csv.gz", True), ("s3", "parquet", False),
    ("s3", "parquet", True), ("s3", "orc", True), ("oss", "csv.gz", False),
    ("oss", "csv.gz", True), ("obs", "csv", False), ("obs", "csv", True)])
def test_reports_read_back_equal_truth(tmp_path, provider, fmt, versioned):
    objs = reports.make_objects(120, seed=4, bucket="gen", provider=provider,
                                versioned=versioned)
    if provider == "s3":
        rep = reports.write_s3(tmp_path, objs, fmt=fmt)
    elif provider == "oss":
        rep = reports.write_oss(tmp_path, objs)
    else:
        rep = reports.write_obs(tmp_path, objs)
    doc, rows = read_back(rep, tmp_path)
    key = lambda r: (r["key"], r["version_id"])  # noqa: E731
    assert sorted(rows, key=key) == sorted(rep.rows, key=key)
    assert len(rep.rows) == len(objs) and {r["key"] for r in rep.rows} >= set(
        reports.TRICKY_KEYS[:40])
    # Provider shapes.
    if provider == "s3":
        assert doc["version"] == "2016-11-30" and doc["creationTimestamp"] == str(rep.created_ms)
        assert doc["destinationBucket"].startswith("arn:aws:s3:::")
        assert re.search(r"/\d{4}-\d\d-\d\dT\d\d-\d\dZ/manifest\.json$", rep.manifest.as_posix())
        if fmt == "parquet":
            assert doc["fileSchema"].startswith("message s3.inventory {")
        if fmt == "orc":
            assert doc["fileSchema"].startswith("struct<bucket:string,key:string,")
    elif provider == "oss":
        assert doc["version"] == "2019-09-01"
        assert doc["creationTimestamp"] == str(rep.created_ms // 1000)
        assert all(e["MD5checksum"] == e["MD5checksum"].upper() for e in doc["files"])
        assert all("/data/" in e["key"] and e["key"].endswith(".csv.gz") for e in doc["files"])
    else:
        assert "creationTimestamp" not in doc
        assert re.search(r"\"inventoriedRecord\":\d+,\s*}", rep.manifest.read_text())
        assert all("%2Ffiles%2F" in e["key"] for e in doc["files"])


def test_mutate_diff_is_exact():
    objs = reports.make_objects(100, seed=8)
    new, diff = reports.mutate(objs, add=4, change=6, remove=5)
    old = {(o["key"], o["version_id"]): o for o in objs}
    cur = {(o["key"], o["version_id"]): o for o in new}
    assert set(old) - set(cur) == diff["removed"] and len(diff["removed"]) == 5
    assert set(cur) - set(old) == diff["added"] and len(diff["added"]) == 4
    assert {k for k in cur if k in old and cur[k] != old[k]} == diff["changed"]
    assert len(diff["changed"]) == 6 and len(diff["unchanged"]) == 100 - 11


def test_big_report_is_streamed_and_consistent(tmp_path):
    rep = reports.write_s3_big(tmp_path, n=25_000, files=4)
    doc, _ = json.loads(rep.manifest.read_text()), None
    total = 0
    keys = set()
    for e in doc["files"]:
        data = (tmp_path / e["key"]).read_bytes()
        assert len(data) == e["size"] and hashlib.md5(data).hexdigest() == e["MD5checksum"]
        recs = list(csv.reader(io.StringIO(gzip.decompress(data).decode())))
        assert all(len(r) == len(reports.BIG_FIELDS) for r in recs)
        keys |= {urllib.parse.unquote_plus(r[1]) for r in recs}
        for r in recs[:50]:
            parse_date(r[3])
        total += len(recs)
    assert total == 25_000 == len(keys)
    nxt = reports.next_day_manifest(rep, tmp_path)
    assert nxt.manifest != rep.manifest and json.loads(nxt.manifest.read_text())["files"] == \
        doc["files"]
