#!/usr/bin/env python3
"""Realistic bucket-inventory reports of S3, Alibaba OSS and Huawei OBS, plus their truth.

Each writer lays a report out the way its provider does, under a folder that plays the
destination bucket (`root`), and returns a `Report`: where the manifest is, the data files, and
`rows`, the `object_inventory` rows (schemas/object_inventory.yaml) an import must leave in the
store, in SQLite form (booleans 0/1, timestamps epoch ms, absent fields None, `version_id` ""
for unversioned reports, `prefix` the key's parent folder with its trailing "/").

- **S3** (`write_s3`, formats csv, csv.gz, parquet, orc):
  `<dest-prefix>/<bucket>/<config>/<YYYY-MM-DDTHH-MMZ>/manifest.json` + `manifest.checksum`
  (hex MD5 of manifest.json), data in `<dest-prefix>/<bucket>/<config>/data/<uuid>.<ext>`;
  file keys relative to the destination bucket, each file's `size` and `MD5checksum`.
  CSV: no header, every field double-quoted, `Key` form-encoded as AWS does (Java URLEncoder:
  space is `+`, `+` is `%2B`, `/` is `%2F`, non-ASCII percent-encoded UTF-8). Parquet and ORC
  (written by pyarrow) carry keys raw; `fileSchema` is a Parquet message type
  (`message s3.inventory { required binary bucket (STRING); ... }`) or an ORC
  `struct<bucket:string,...>`.
- **OSS** (`write_oss`): the same folders, `version` "2019-09-01", `creationTimestamp` in
  seconds, destinationBucket a plain name, upper-case hex MD5s (manifest.checksum too), data
  in `data/<uuid>.csv.gz` with Bucket unquoted and every other field quoted, Key
  percent-encoded (`dir%2Fbody.xml`), dates like `2025-04-14T07-06-00Z`, and OSS-only fields
  ObjectAcl, TaggingCount, ObjectType, Crc64 (spelled as given, "Crc64" or "CRC64").
- **OBS** (`write_obs`): `<destinationPrefix>/<bucket>/<inventoryId>/<yyyy-MM-ddTHH-mmZ>/`
  `manifest.json` with `files/<UUID>_<index>.csv` beside it, file keys URL-encoded in the
  manifest, `inventoriedRecord` per file, no creationTimestamp, no MD5, no checksum file, and a
  trailing comma after the last field of each file entry (as in Huawei's documentation).

`make_objects` builds a deterministic bucket of objects with tricky keys (spaces, `+`, `%`,
`&`, quotes, commas, é, 日本, emoji, deep folders, top-level keys, keys that are prefixes of
others, a folder marker); `versioned=True` adds older versions and delete markers.
`write_s3_big` streams a large S3 CSV.gz report (1,000,000 objects in 10 files in a few
seconds) without keeping rows in memory; its truth is only its count.

    python tests/reports.py s3 --format parquet --objects 500 --out /tmp/r      # one report
    python tests/reports.py big --objects 1000000 --files 10 --out /tmp/big     # benchmark
"""

import argparse
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import random
import sys
import urllib.parse
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# (S3 CSV field, Parquet/ORC column, object_inventory column, kind)
S3_FIELDS = [
    ("Bucket", "bucket", "bucket", "str"),
    ("Key", "key", "key", "str"),
    ("VersionId", "version_id", "version_id", "str"),
    ("IsLatest", "is_latest", "is_latest", "bool"),
    ("IsDeleteMarker", "is_delete_marker", "is_delete_marker", "bool"),
    ("Size", "size", "size", "int"),
    ("LastModifiedDate", "last_modified_date", "last_modified", "ts"),
    ("ETag", "e_tag", "etag", "str"),
    ("StorageClass", "storage_class", "storage_class", "str"),
    ("IsMultipartUploaded", "is_multipart_uploaded", "is_multipart_uploaded", "bool"),
    ("ReplicationStatus", "replication_status", "replication_status", "str"),
    ("EncryptionStatus", "encryption_status", "encryption_status", "str"),
    ("ObjectLockRetainUntilDate", "object_lock_retain_until_date",
     "object_lock_retain_until_date", "ts"),
    ("ObjectLockMode", "object_lock_mode", "object_lock_mode", "str"),
    ("ObjectLockLegalHoldStatus", "object_lock_legal_hold_status",
     "object_lock_legal_hold_status", "str"),
    ("IntelligentTieringAccessTier", "intelligent_tiering_access_tier",
     "intelligent_tiering_access_tier", "str"),
    ("BucketKeyStatus", "bucket_key_status", "bucket_key_status", "str"),
    ("ChecksumAlgorithm", "checksum_algorithm", "checksum_algorithm", "str"),
    ("ObjectAccessControlList", "object_access_control_list", "object_access_control_list",
     "str"),
    ("ObjectOwner", "object_owner", "object_owner", "str"),
    ("LifecycleExpirationDate", "lifecycle_expiration_date", "lifecycle_expiration_date", "ts"),
]
S3_BY_FIELD = {f: (p, c, k) for f, p, c, k in S3_FIELDS}
VERSION_FIELDS = ["VersionId", "IsLatest", "IsDeleteMarker"]
# What the AWS console's "all fields" gives, in AWS order (Parquet/ORC: without the lifecycle
# date, which AWS documents for CSV).
S3_DEFAULT = [f for f, *_ in S3_FIELDS]
S3_COLUMNAR_DEFAULT = [f for f in S3_DEFAULT if f != "LifecycleExpirationDate"]

OSS_FIELDS = {  # OSS field -> (column, kind)
    "Bucket": ("bucket", "str"), "Key": ("key", "str"), "VersionId": ("version_id", "str"),
    "IsLatest": ("is_latest", "bool"), "IsDeleteMarker": ("is_delete_marker", "bool"),
    "Size": ("size", "int"), "StorageClass": ("storage_class", "str"),
    "LastModifiedDate": ("last_modified", "ts"), "ETag": ("etag", "str"),
    "IsMultipartUploaded": ("is_multipart_uploaded", "bool"),
    "EncryptionStatus": ("encryption_status", "str"), "ObjectAcl": ("object_acl", "str"),
    "TaggingCount": ("tagging_count", "int"), "ObjectType": ("object_type", "str"),
    "Crc64": ("crc64", "str"), "CRC64": ("crc64", "str"),
}
OSS_DEFAULT = ["Bucket", "Key", "Size", "StorageClass", "LastModifiedDate", "ETag",
               "IsMultipartUploaded", "EncryptionStatus", "ObjectAcl", "TaggingCount",
               "ObjectType", "Crc64"]
OBS_FIELDS = {
    "Bucket": ("bucket", "str"), "Key": ("key", "str"), "VersionId": ("version_id", "str"),
    "IsLatest": ("is_latest", "bool"), "IsDeleteMarker": ("is_delete_marker", "bool"),
    "Size": ("size", "int"), "LastModifiedDate": ("last_modified", "ts"),
    "ETag": ("etag", "str"), "StorageClass": ("storage_class", "str"),
    "IsMultipartUploaded": ("is_multipart_uploaded", "bool"),
    "ReplicationStatus": ("replication_status", "str"),
    "EncryptionStatus": ("encryption_status", "str"),
}
OBS_DEFAULT = ["Bucket", "Key", "Size", "LastModifiedDate", "ETag", "StorageClass",
               "IsMultipartUploaded", "ReplicationStatus", "EncryptionStatus"]

INVENTORY_COLUMNS = [
    "bucket", "key", "version_id", "prefix", "is_latest", "is_delete_marker", "size",
    "last_modified", "etag", "storage_class", "is_multipart_uploaded", "replication_status",
    "encryption_status", "object_lock_retain_until_date", "object_lock_mode",
    "object_lock_legal_hold_status", "intelligent_tiering_access_tier", "bucket_key_status",
    "checksum_algorithm", "object_access_control_list", "object_owner",
    "lifecycle_expiration_date", "object_acl", "object_type", "tagging_count", "crc64",
    "transition_time",
]

# Keys that break naive encoders, CSV writers and prefix logic.
TRICKY_KEYS = [
    "top-level.txt",
    "README",
    "a", "a/b", "a/b/c.txt", "a/b/c.txt.bak", "ab", "ab/c",          # prefixes of each other
    "prefix", "prefix-longer", "prefix/child", "prefix/child/grandchild.bin",
    "photos/",                                                          # a folder marker
    "photos/2024/summer trip/IMG 0001.jpg",                             # spaces
    "photos/2024/summer trip/IMG+0002.jpg",                             # a literal plus
    "math/1+1=2 & 2+2=4.txt",                                           # plus, space, &
    "percent/100% sure.txt", "percent/%41 is not A.txt", "percent/%2B stays.txt",
    "R&D/Q&A?.md", "hash/#1 file.txt", "semi;colon/eq=als.txt",
    'quotes/say "hello".txt', "quotes/it's.txt",
    "commas/a,b,c.csv", 'commas/"quoted, with comma".csv',
    "café/menu.pdf", "Ünïcödé/Grüße.txt", "日本/東京/写真.jpg", "日本語ファイル.txt",
    "emoji/😀 smile.png", "emoji/🚀/launch 🚀.mov",
    "tilde~and*star(1)[2]{3}.txt", "back\\slash.txt", " leading space.txt",
    "trailing space ", "double//slash/x", "dots/../not-parent.txt",
    "deep/" + "/".join(f"level{i:02d}" for i in range(1, 21)) + "/leaf.dat",
]

STORAGE_S3 = ["STANDARD", "STANDARD", "STANDARD", "STANDARD_IA", "INTELLIGENT_TIERING",
              "GLACIER", "DEEP_ARCHIVE", "ONEZONE_IA", "GLACIER_IR"]
STORAGE_OSS = ["Standard", "Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive"]
STORAGE_OBS = ["STANDARD", "STANDARD", "WARM", "COLD", "DEEP_ARCHIVE"]


# -- encodings ------------------------------------------------------------------------------

_FORM_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*_")


def form_encode(key):
    """Java's URLEncoder.encode(key, "UTF-8"), as S3 Inventory CSV writes keys: letters, digits
    and `.-*_` stay, a space becomes `+`, every other byte `%XX` (upper-case hex)."""
    out = []
    for b in key.encode("utf-8"):
        if b in _FORM_SAFE:
            out.append(chr(b))
        elif b == 0x20:
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def percent_encode(key):
    """Percent-encoding of every byte but unreserved ones (`%20` for a space, `%2F` for `/`):
    how OSS and OBS keys arrive; decodes the same with or without `+` handling."""
    return urllib.parse.quote(key, safe="")


def parent_folder(key):
    i = key.rfind("/")
    return key[: i + 1] if i >= 0 else ""


def iso_ms(ms):
    """S3's date format: 2024-03-05T10:20:30.000Z."""
    t = EPOCH + dt.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def oss_date(ms):
    """OSS's date format in its CSV: 2025-04-14T07-06-00Z (seconds, dashes in the time)."""
    t = EPOCH + dt.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H-%M-%SZ")


def ms_of(t):
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


def folder_stamp(t):
    return t.strftime("%Y-%m-%dT%H-%MZ")


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def file_url(path):
    return Path(path).resolve().as_uri()


# -- objects --------------------------------------------------------------------------------

def make_objects(n=200, seed=1, bucket="src-bucket", provider="s3", versioned=False,
                 tricky=True, now=dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)):
    """Objects of one bucket as full `object_inventory` rows (every column a provider can fill;
    `write_*` then keep the ones their fileSchema has). The tricky keys come first, then
    generated keys up to `n` objects (keys; versions come on top when `versioned`)."""
    rng = random.Random(seed)
    keys = list(TRICKY_KEYS if tricky else [])
    folders = ["logs/app-1/", "logs/app-2/", "data/2024/01/", "data/2024/02/", "media/",
               "backups/db/", "", "exports/équipe/", "客户/报告/", "team a/docs/"]
    i = 0
    while len(keys) < n:
        keys.append(f"{folders[i % len(folders)]}obj-{seed}-{i:06d}"
                    f"{['.json', '.gz', ' copy.txt', '', '.parquet'][i % 5]}")
        i += 1
    keys = keys[:n]
    objs = []
    for key in keys:
        versions = 1
        if versioned and rng.random() < 0.3:
            versions = rng.randint(2, 4)
        for v in range(versions):
            latest = v == versions - 1
            marker = versioned and latest and versions > 1 and rng.random() < 0.3
            objs.append(_object(rng, bucket, key, provider, now, versioned, latest, marker))
    return objs


def _object(rng, bucket, key, provider, now, versioned, latest, marker):
    size = 0 if rng.random() < 0.05 else int(2 ** (rng.random() * 34))
    lm = ms_of(now) - rng.randint(0, 400 * 86_400_000)
    if provider == "oss":
        lm -= lm % 1000                          # OSS dates have seconds only
    multipart = size > 64 * 1024 * 1024 and rng.random() < 0.8
    etag = f"{rng.getrandbits(128):032x}" + (f"-{rng.randint(2, 900)}" if multipart else "")
    o = {c: None for c in INVENTORY_COLUMNS}
    o.update(bucket=bucket, key=key, prefix=parent_folder(key), version_id="")
    if versioned:
        vid = ("CAEQ" if provider == "oss" else "") + "".join(
            rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._")
            for _ in range(32))
        o.update(version_id=vid, is_latest=int(latest), is_delete_marker=int(marker))
    else:
        o.update(is_latest=1, is_delete_marker=0)
    o.update(last_modified=lm)
    if not marker:
        o.update(size=size, etag=etag, is_multipart_uploaded=int(multipart))
    if provider == "s3":
        sc = rng.choice(STORAGE_S3)
        o.update(
            storage_class=None if marker else sc,
            replication_status=rng.choice([None, None, "COMPLETED", "PENDING", "FAILED",
                                           "REPLICA"]),
            encryption_status=rng.choice(["SSE-S3", "SSE-KMS", "NOT-SSE", "SSE-C"]),
            bucket_key_status=rng.choice(["ENABLED", "DISABLED"]),
            checksum_algorithm=rng.choice([None, "CRC32", "CRC32C", "SHA1", "SHA256",
                                           "CRC64NVME"]),
            object_owner=rng.choice(["79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be",
                                     "a1b2c3d4e5f6"]),
            object_access_control_list=rng.choice([
                None, "W3siZ3JhbnRlZSI6eyJpZCI6IjEifSwicGVybWlzc2lvbiI6IkZVTExfQ09OVFJPTCJ9XQ=="]),
        )
        if sc == "INTELLIGENT_TIERING" and not marker:
            o["intelligent_tiering_access_tier"] = rng.choice(
                ["FREQUENT", "INFREQUENT", "ARCHIVE_INSTANT_ACCESS"])
        if rng.random() < 0.1:
            o.update(object_lock_mode=rng.choice(["GOVERNANCE", "COMPLIANCE"]),
                     object_lock_retain_until_date=lm + 365 * 86_400_000,
                     object_lock_legal_hold_status=rng.choice(["ON", "OFF"]))
        if rng.random() < 0.15:
            o["lifecycle_expiration_date"] = (lm // 86_400_000 + 90) * 86_400_000
    elif provider == "oss":
        o.update(storage_class=rng.choice(STORAGE_OSS),
                 encryption_status=rng.choice(["true", "false"]),
                 object_acl=rng.choice(["default", "private", "public-read",
                                        "public-read-write"]),
                 tagging_count=rng.randint(0, 10),
                 object_type=rng.choice(["Normal", "Multipart", "Appendable", "Symlink"]),
                 crc64=str(rng.getrandbits(64)))
    else:  # obs
        o.update(storage_class=rng.choice(STORAGE_OBS),
                 replication_status=rng.choice([None, "COMPLETE", "PENDING", "FAILED",
                                                "REPLICA"]),
                 encryption_status=rng.choice(["SSE-KMS", "SSE-OBS", "NOT-SSE"]))
    return o


def mutate(objs, seed=2, add=10, change=10, remove=10, provider="s3"):
    """The next day's bucket: `remove` objects gone, `change` with a new size/etag/date,
    `add` new keys. Returns (new objects, {"added", "changed", "removed", "unchanged"} as
    sets of (key, version_id))."""
    rng = random.Random(seed)
    objs = [dict(o) for o in objs]
    idx = list(range(len(objs)))
    rng.shuffle(idx)
    removed = set(idx[:remove])
    changed = set(idx[remove:remove + change])
    out, diff = [], {"added": set(), "changed": set(), "removed": set(), "unchanged": set()}
    for i, o in enumerate(objs):
        k = (o["key"], o["version_id"])
        if i in removed:
            diff["removed"].add(k)
            continue
        if i in changed:
            o["size"] = (o["size"] or 0) + 1 + rng.randint(0, 1000)
            o["etag"] = f"{rng.getrandbits(128):032x}"
            o["last_modified"] = (o["last_modified"] or 0) + 86_400_000
            diff["changed"].add(k)
        else:
            diff["unchanged"].add(k)
        out.append(o)
    bucket = objs[0]["bucket"] if objs else "src-bucket"
    for j in range(add):
        o = _object(rng, bucket, f"added/day2 file {seed}-{j:04d}.txt", provider,
                    dt.datetime(2024, 6, 2, tzinfo=dt.timezone.utc), False, True, False)
        if any(x["version_id"] for x in objs):
            o["version_id"] = f"newver{seed}x{j:04d}"
        out.append(o)
        diff["added"].add((o["key"], o["version_id"]))
    return out, diff


# -- reports --------------------------------------------------------------------------------

@dataclass
class Report:
    provider: str
    fmt: str
    bucket: str
    created: dt.datetime
    manifest: Path
    files: list
    rows: list = field(default_factory=list)
    count: int = 0

    @property
    def url(self):
        return file_url(self.manifest)

    @property
    def folder(self):
        return self.manifest.parent

    @property
    def created_ms(self):
        return ms_of(self.created)

    def truth_by_key(self):
        return {(r["bucket"], r["key"], r["version_id"]): r for r in self.rows}

    def write_truth(self, path):
        """The expected rows as NDJSON (one object per line, SQLite form)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            for r in self.rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        return path


def _truth(objs, columns, versioned_schema):
    """Rows as the store must hold them: columns not filled by the report are NULL."""
    keep = set(columns) | {"bucket", "key", "prefix"}
    rows = []
    for o in objs:
        r = {c: (o[c] if c in keep else None) for c in INVENTORY_COLUMNS}
        r["prefix"] = parent_folder(o["key"])
        if not versioned_schema:
            r["version_id"] = ""
        rows.append(r)
    return rows


def _split(items, files, seed):
    """Deterministically shuffled into `files` non-empty parts (reports are not sorted)."""
    items = list(items)
    random.Random(seed).shuffle(items)
    files = max(1, min(files, len(items) or 1))
    return [items[i::files] for i in range(files)]


def _uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _write_manifest(folder, doc_text, checksum, upper=False):
    folder.mkdir(parents=True, exist_ok=True)
    m = folder / "manifest.json"
    m.write_bytes(doc_text.encode("utf-8"))
    if checksum:
        h = md5_hex(doc_text.encode("utf-8"))
        (folder / "manifest.checksum").write_text((h.upper() if upper else h) + "\n")
    return m


def _json_manifest(doc):
    """Pretty-printed like AWS writes it (`"key" : value`)."""
    return json.dumps(doc, indent=2, ensure_ascii=False).replace('": ', '" : ')


def _cell(kind, v, date=iso_ms):
    if v is None:
        return ""
    if kind == "bool":
        return "true" if v else "false"
    if kind == "ts":
        return date(v)
    return str(v)


def write_s3(root, objs, fmt="csv.gz", created=dt.datetime(2024, 6, 2, 1, 0,
                                                            tzinfo=dt.timezone.utc),
             bucket=None, fields=None, files=3, dest_bucket="inventory-dest",
             dest_prefix="inventory", config_id="daily-all", checksum=True, seed=7):
    """An S3 Inventory report of `objs` in `fmt` (csv, csv.gz, parquet, orc)."""
    root = Path(root)
    bucket = bucket or (objs[0]["bucket"] if objs else "src-bucket")
    versioned = any(o["version_id"] for o in objs)
    if fields is None:
        fields = list(S3_DEFAULT if fmt.startswith("csv") else S3_COLUMNAR_DEFAULT)
        if not versioned:
            fields = [f for f in fields if f not in VERSION_FIELDS]
    # Data file names differ between reports of the same bucket (S3 never reuses them).
    rng = random.Random(f"{seed}/{ms_of(created)}/{fmt}/{config_id}")
    base = f"{dest_prefix}/{bucket}/{config_id}" if dest_prefix else f"{bucket}/{config_id}"
    ext = {"csv": "csv", "csv.gz": "csv.gz", "parquet": "parquet", "orc": "orc"}[fmt]
    entries, paths = [], []
    for part in _split(objs, files, seed):
        key = f"{base}/data/{_uuid(rng)}.{ext}"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt.startswith("csv"):
            data = _s3_csv(part, fields)
            if fmt == "csv.gz":
                data = gzip.compress(data, mtime=0)
            path.write_bytes(data)
        else:
            _s3_columnar(path, part, fields, fmt)
            data = path.read_bytes()
        entries.append({"key": key, "size": len(data), "MD5checksum": md5_hex(data)})
        paths.append(path)
    if fmt.startswith("csv"):
        schema = ", ".join(fields)
        file_format = "CSV"
    elif fmt == "parquet":
        schema = _parquet_message(fields)
        file_format = "Parquet"
    else:
        schema = _orc_struct(fields)
        file_format = "ORC"
    doc = {"sourceBucket": bucket, "destinationBucket": f"arn:aws:s3:::{dest_bucket}",
           "version": "2016-11-30", "creationTimestamp": str(ms_of(created)),
           "fileFormat": file_format, "fileSchema": schema, "files": entries}
    m = _write_manifest(root / base / folder_stamp(created), _json_manifest(doc), checksum)
    cols = [S3_BY_FIELD[f][1] for f in fields]
    rows = _truth(objs, cols, "VersionId" in fields)
    return Report("s3", fmt, bucket, created, m, paths, rows, len(rows))


def _s3_csv(objs, fields):
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    plan = [(S3_BY_FIELD[f][1], S3_BY_FIELD[f][2], f == "Key") for f in fields]
    for o in objs:
        w.writerow([form_encode(o[c]) if is_key else _cell(kind, o[c])
                    for c, kind, is_key in plan])
    return buf.getvalue().encode("utf-8")


def _arrow_type(kind, fmt):
    import pyarrow as pa
    return {"str": pa.string(), "bool": pa.bool_(), "int": pa.int64(),
            "ts": pa.timestamp("ms", tz="UTC") if fmt == "parquet" else pa.timestamp("ms")}[kind]


def _s3_columnar(path, objs, fields, fmt):
    import pyarrow as pa
    arrays, schema_fields = [], []
    for f in fields:
        name, col, kind = S3_BY_FIELD[f]
        values = [o[col] for o in objs]
        if kind == "bool":
            values = [None if v is None else bool(v) for v in values]
        if kind == "ts":
            values = [None if v is None else EPOCH + dt.timedelta(milliseconds=v)
                      for v in values]
            if fmt == "orc":
                values = [None if v is None else v.replace(tzinfo=None) for v in values]
        t = _arrow_type(kind, fmt)
        arrays.append(pa.array(values, type=t))
        schema_fields.append(pa.field(name, t, nullable=f not in ("Bucket", "Key")))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(schema_fields))
    if fmt == "parquet":
        import pyarrow.parquet as pq
        pq.write_table(table, path, compression="snappy")
    else:
        import pyarrow.orc as orc
        orc.write_table(table, str(path), compression="zlib")


def _parquet_message(fields):
    parts = []
    for f in fields:
        name, _, kind = S3_BY_FIELD[f]
        rep = "required" if f in ("Bucket", "Key") else "optional"
        parts.append({
            "str": f"{rep} binary {name} (STRING);", "bool": f"{rep} boolean {name};",
            "int": f"{rep} int64 {name};",
            "ts": f"{rep} int64 {name} (TIMESTAMP(MILLIS,true));"}[kind])
    return "message s3.inventory {  " + "  ".join(parts) + "}"


def _orc_struct(fields):
    t = {"str": "string", "bool": "boolean", "int": "bigint", "ts": "timestamp"}
    return "struct<" + ",".join(f"{S3_BY_FIELD[f][0]}:{t[S3_BY_FIELD[f][2]]}"
                                for f in fields) + ">"


def write_oss(root, objs, created=dt.datetime(2024, 6, 2, 16, 0, tzinfo=dt.timezone.utc),
              bucket=None, fields=None, files=2, dest_bucket="oss-inventory-dest",
              dest_prefix="oss-inv", inventory_id="rule-1", checksum=True, seed=11,
              date_style="oss"):
    """An Alibaba OSS inventory report (CSV.gz only, as OSS writes). Dates as OSS documents
    them (`2025-04-14T07-06-00Z`), or `date_style="iso"` for `2025-04-14T07:06:00.000Z`."""
    root = Path(root)
    bucket = bucket or (objs[0]["bucket"] if objs else "src-bucket")
    versioned = any(o["version_id"] for o in objs)
    if fields is None:
        fields = list(OSS_DEFAULT)
        if versioned:
            fields[2:2] = ["VersionId", "IsLatest", "IsDeleteMarker"]
    rng = random.Random(f"{seed}/{ms_of(created)}/{inventory_id}")
    base = f"{dest_prefix}/{bucket}/{inventory_id}" if dest_prefix else f"{bucket}/{inventory_id}"
    entries, paths = [], []
    first = _uuid(rng)
    for i, part in enumerate(_split(objs, files, seed)):
        # OSS names the parts uuid.csv.gz, uuid-1.csv.gz, uuid-2.csv.gz, ...
        key = f"{base}/data/{first}{'' if i == 0 else f'-{i}'}.csv.gz"
        data = gzip.compress(_oss_csv(part, fields, oss_date if date_style == "oss" else iso_ms),
                             mtime=0)
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        entries.append({"MD5checksum": md5_hex(data).upper(), "key": key, "size": len(data)})
        paths.append(path)
    doc = {"creationTimestamp": str(ms_of(created) // 1000), "destinationBucket": dest_bucket,
           "fileFormat": "CSV", "fileSchema": ", ".join(fields), "files": entries,
           "sourceBucket": bucket, "version": "2019-09-01"}
    m = _write_manifest(root / base / folder_stamp(created), json.dumps(doc, ensure_ascii=False),
                        checksum, upper=True)
    rows = _truth(objs, [OSS_FIELDS[f][0] for f in fields], "VersionId" in fields)
    return Report("oss", "csv.gz", bucket, created, m, paths, rows, len(rows))


def _oss_csv(objs, fields, date=oss_date):
    lines = []
    plan = [(f, *OSS_FIELDS[f]) for f in fields]
    for o in objs:
        cells = []
        for f, col, kind in plan:
            if f == "Bucket":
                cells.append(o[col])
                continue
            v = percent_encode(o[col]) if f == "Key" else _cell(kind, o[col], date)
            cells.append('"' + v.replace('"', '""') + '"')
        lines.append(",".join(cells) + "\n")
    return "".join(lines).encode("utf-8")


def write_obs(root, objs, created=dt.datetime(2024, 6, 2, 12, 28, tzinfo=dt.timezone.utc),
              bucket=None, fields=None, files=2, dest_bucket="obs-inventory-dest",
              dest_prefix="BucketInventory", inventory_id="test_id", seed=13):
    """A Huawei OBS inventory report: plain CSV files under <timestamp>/files/."""
    root = Path(root)
    bucket = bucket or (objs[0]["bucket"] if objs else "src-bucket")
    versioned = any(o["version_id"] for o in objs)
    if fields is None:
        fields = list(OBS_DEFAULT)
        if versioned:
            fields[2:2] = ["VersionId", "IsLatest", "IsDeleteMarker"]
    rng = random.Random(seed)
    folder = f"{dest_prefix}/{bucket}/{inventory_id}/{folder_stamp(created)}"
    stem = f"{rng.getrandbits(128):032X}"
    plan = [(f, *OBS_FIELDS[f]) for f in fields]
    entry_texts, paths = [], []
    for i, part in enumerate(_split(objs, files, seed), start=1):
        key = f"{folder}/files/{stem}_{i}.csv"
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for o in part:
            w.writerow([percent_encode(o[c]) if f == "Key" else _cell(k, o[c])
                        for f, c, k in plan])
        data = buf.getvalue().encode("utf-8")
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
        # The trailing comma after inventoriedRecord is what OBS writes.
        entry_texts.append(
            "\t\t{\n"
            f"\t\t\t\"key\":{json.dumps(percent_encode(key))},\n"
            f"\t\t\t\"size\":{len(data)},\n"
            f"\t\t\t\"inventoriedRecord\":{len(part)},\n"
            "\t\t}")
    text = ("{\n"
            f"\t\"sourceBucket\":{json.dumps(bucket)},\n"
            f"\t\"destinationBucket\":{json.dumps(dest_bucket)},\n"
            f"\t\"version\":\"2019-01-03\",\n"
            f"\t\"fileFormat\":\"CSV\",\n"
            f"\t\"fileSchema\":{json.dumps(','.join(fields))},\n"
            "\t\"files\":[\n" + ",\n".join(entry_texts) + "\n\t]\n}\n")
    m = _write_manifest(root / folder, text, checksum=False)
    rows = _truth(objs, [OBS_FIELDS[f][0] for f in fields], "VersionId" in fields)
    return Report("obs", "csv", bucket, created, m, paths, rows, len(rows))


# -- big reports for the benchmark ----------------------------------------------------------

BIG_FIELDS = ["Bucket", "Key", "Size", "LastModifiedDate", "ETag", "StorageClass",
              "IsMultipartUploaded", "ReplicationStatus", "EncryptionStatus",
              "BucketKeyStatus", "ChecksumAlgorithm", "ObjectOwner"]


def _big_vocab():
    tops = ["logs", "photos", "backups", "datasets", "données clients", "日本語", "media",
            "archive 2019", "R&D", "tmp"]
    subs = ["app-1", "app-2", "web", "équipe", "客户", "team a", "q1+q2", "eu-west", "2024",
            "2023"]
    names = ["part", "IMG", "report", "export", "résumé", "写真", "data set", "log"]
    exts = [".json.gz", ".jpg", ".parquet", ".csv", ".pdf", "", ".txt", ".tar.zst"]
    folders = [""] + [t + "/" for t in tops] + [f"{t}/{s}/" for t in tops for s in subs]
    enc = form_encode
    return ([(f, enc(f)) for f in folders], [(n, enc(n)) for n in names],
            [(e, enc(e)) for e in exts])


def big_rows(n, seed=42, bucket="big-bucket", now_ms=None):
    """Yields the CSV line of object i in 0..n; the same arguments give the same rows. Keys
    are unique (they carry i) and form-encoded; values are cheap to make."""
    folders, names, exts = _big_vocab()
    rng = random.Random(seed)
    rnd, bits = rng.random, rng.getrandbits
    now_ms = now_ms or ms_of(dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc))
    storage = ["STANDARD"] * 6 + ["STANDARD_IA", "GLACIER", "INTELLIGENT_TIERING",
                                  "DEEP_ARCHIVE"]
    enc = ["SSE-S3", "SSE-KMS", "NOT-SSE"]
    nf, nn, ne = len(folders), len(names), len(exts)
    # Dates from tables (strftime per row would dominate): day strings and times of day.
    first_day = now_ms // 86_400_000 - 400
    days = [(EPOCH + dt.timedelta(days=first_day + d)).strftime("%Y-%m-%dT") for d in range(401)]
    hms = [f"{h:02d}:{m:02d}:{s:02d}." for h in range(24) for m in range(60) for s in range(60)]
    ms3 = [f"{m:03d}Z" for m in range(1000)]
    for i in range(n):
        f_enc = folders[int(rnd() * nf)][1]
        n_enc = names[int(rnd() * nn)][1]
        e_enc = exts[int(rnd() * ne)][1]
        size = int(2 ** (rnd() * 32))
        lm = now_ms - int(rnd() * 400 * 86_400_000)
        day, rest = divmod(lm, 86_400_000)
        sec, msr = divmod(rest, 1000)
        date = days[day - first_day] + hms[sec] + ms3[msr]
        yield (f'"{bucket}","{f_enc}{n_enc}-{i:08d}{e_enc}","{size}","{date}",'
               f'"{bits(128):032x}","{storage[i % 10]}","{"true" if size > 2**30 else "false"}",'
               f'"{"COMPLETED" if i % 4 == 0 else ""}","{enc[i % 3]}",'
               f'"{"ENABLED" if i % 7 == 0 else "DISABLED"}","{"CRC32" if i % 5 == 0 else ""}",'
               f'"owner-{i % 3}"\n')


def write_s3_big(root, n=1_000_000, files=10, seed=42, bucket="big-bucket",
                 created=dt.datetime(2024, 6, 2, 1, 0, tzinfo=dt.timezone.utc),
                 dest_prefix="inventory", config_id="daily-all", level=1):
    """A large S3 CSV.gz report streamed file by file (gzip level `level`); returns a Report
    without rows (count only). The same arguments give the same data files, so a second call
    with another `created` is the unchanged next-day report."""
    root = Path(root)
    base = f"{dest_prefix}/{bucket}/{config_id}"
    rng = random.Random(seed * 7919 + 1)
    per = (n + files - 1) // files
    gen = big_rows(n, seed, bucket)
    entries, paths = [], []
    for fi in range(files):
        count = min(per, n - fi * per)
        if count <= 0:
            break
        key = f"{base}/data/{_uuid(rng)}.csv.gz"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        comp = zlib.compressobj(level, zlib.DEFLATED, 31)  # gzip container
        md5 = hashlib.md5()
        size = 0
        with open(path, "wb") as out:
            chunk = []
            for j in range(count):
                chunk.append(next(gen))
                if len(chunk) == 20_000 or j == count - 1:
                    data = comp.compress("".join(chunk).encode("utf-8"))
                    chunk = []
                    if data:
                        out.write(data)
                        md5.update(data)
                        size += len(data)
            data = comp.flush()
            out.write(data)
            md5.update(data)
            size += len(data)
        entries.append({"key": key, "size": size, "MD5checksum": md5.hexdigest()})
        paths.append(path)
    doc = {"sourceBucket": bucket, "destinationBucket": "arn:aws:s3:::bench-inventory",
           "version": "2016-11-30", "creationTimestamp": str(ms_of(created)),
           "fileFormat": "CSV", "fileSchema": ", ".join(BIG_FIELDS), "files": entries}
    m = _write_manifest(root / base / folder_stamp(created), _json_manifest(doc), True)
    return Report("s3", "csv.gz", bucket, created, m, paths, [], n)


def next_day_manifest(report, root, days=1):
    """The unchanged next-day report of `report`: the same data files listed by a new
    manifest (new creation time and folder). Returns a Report with the same rows."""
    created = report.created + dt.timedelta(days=days)
    doc = json.loads(report.manifest.read_text(encoding="utf-8"))
    doc["creationTimestamp"] = str(ms_of(created))
    folder = report.manifest.parent.parent / folder_stamp(created)
    m = _write_manifest(folder, _json_manifest(doc), True)
    return Report(report.provider, report.fmt, report.bucket, created, m, report.files,
                  report.rows, report.count)


# -- CLI ------------------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("provider", choices=["s3", "oss", "obs", "big"])
    p.add_argument("--format", default="csv.gz", choices=["csv", "csv.gz", "parquet", "orc"])
    p.add_argument("--objects", type=int, default=200)
    p.add_argument("--files", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bucket", default=None)
    p.add_argument("--versioned", action="store_true")
    p.add_argument("--created", default="2024-06-02T01:00:00Z",
                   help="creation time (RFC 3339, default 2024-06-02T01:00:00Z)")
    p.add_argument("--out", required=True, help="folder playing the destination bucket")
    p.add_argument("--truth", help="write the expected rows here (NDJSON)")
    a = p.parse_args(argv)
    created = dt.datetime.fromisoformat(a.created.replace("Z", "+00:00"))
    if a.provider == "big":
        r = write_s3_big(a.out, a.objects, a.files, a.seed, a.bucket or "big-bucket", created)
    else:
        objs = make_objects(a.objects, a.seed, a.bucket or f"{a.provider}-src-bucket",
                            a.provider, a.versioned)
        writer = {"s3": write_s3, "oss": write_oss, "obs": write_obs}[a.provider]
        kw = {"fmt": a.format} if a.provider == "s3" else {}
        r = writer(a.out, objs, created=created, files=a.files, **kw)
        if a.truth:
            r.write_truth(a.truth)
    print(r.url)
    print(f"{r.count} rows in {len(r.files)} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
