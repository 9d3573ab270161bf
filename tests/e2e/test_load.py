"""`lakeport load`: NDJSON and CSV values of every store type reach the store exactly (read
back with Python's sqlite3), formats come from the extension or --format, and the counts,
_seq and _write_time follow DESIGN.md (a write that changes nothing bumps nothing).

Refusals (issue 18, point 8): every refused value names `file:line: column`, on CRLF files and
after blank lines too; NaN is refused and ±infinity stored alike in both formats and on both
backends (SQLite here, PostgreSQL in the last test); a JSON object naming a field twice is
refused; `.ndjson.gz` and `.csv.gz` load as their uncompressed forms and a corrupt one names
the file; a 0-byte CSV is "empty file, no header". A refused file leaves nothing of itself in
the store (read back with sqlite3 / psql), files before it stay applied, files after it are
not read."""

import gzip
import math
import subprocess
import time

from conftest import duck, load_counts, ms_of
from test_postgres import pg_url, psql  # noqa: F401  (pg_url is a fixture)

TYPES = [("id", "int64"), ("s", "string"), ("i", "int64"), ("d", "double"), ("b", "bool"),
         ("bin", "binary"), ("ts", "timestamp_ms")]


def test_values_of_every_type_in_both_formats(wd):
    wd.write_table("all_types", ["id"], TYPES)
    wd.write("a.csv", (
        'id,s,i,d,b,bin,ts\n'
        '1,"comma, and ""quotes""",-9223372036854775808,1.5e-7,true,AAEC,2024-01-01T12:00:00Z\n'
        '2,Grüße,9223372036854775807,-0.25,false,,1700000000123\n'
        '3,,,,,,\n'
        '4,x,0,3,true,aGk=,1969-12-31T23:59:59.999+00:00\n'))
    wd.write_ndjson("b.jsonl", [
        {"id": 5, "s": "", "i": 1, "d": 2, "b": True, "bin": "",
         "ts": "2024-06-30T23:00:00-02:00"},
        {"id": 6, "s": None, "i": None, "ts": 0}])
    wd.write_ndjson("c.json", [{"id": 7, "s": "json ext", "d": 1e300}])
    wd.write_ndjson("d.txt", [{"id": 8, "s": "forced ndjson"}])
    wd.write("e.data", "id,s\n9,forced csv\n")
    r = wd.ok("load", "all_types", "a.csv", "b.jsonl", "c.json")
    counts = load_counts(r)
    assert [counts[f]["inserted"] for f in ("a.csv", "b.jsonl", "c.json")] == [4, 2, 1], r
    assert load_counts(wd.ok("load", "all_types", "d.txt", "--format", "ndjson"))["d.txt"]["inserted"] == 1
    assert load_counts(wd.ok("load", "all_types", "e.data", "--format", "csv"))["e.data"]["inserted"] == 1

    got = {r["id"]: r for r in wd.store_rows("all_types")}
    assert set(got) == set(range(1, 10))
    assert got[1]["s"] == 'comma, and "quotes"' and got[1]["i"] == -(2**63)
    assert got[1]["d"] == 1.5e-7 and got[1]["b"] == 1
    assert got[1]["bin"] == b"\x00\x01\x02" and got[1]["ts"] == ms_of("2024-01-01T12:00:00Z")
    assert got[2]["s"] == "Grüße" and got[2]["i"] == 2**63 - 1 and got[2]["d"] == -0.25
    assert got[2]["b"] == 0 and got[2]["bin"] is None and got[2]["ts"] == 1700000000123
    # An empty CSV field of a non-key column is NULL (strings too).
    assert all(got[3][c] is None for c in ("s", "i", "d", "b", "bin", "ts")), got[3]
    assert got[4]["b"] == 1 and got[4]["bin"] == b"hi" and got[4]["ts"] == -1
    assert got[4]["d"] == 3.0
    # JSON: "" stays an empty string, missing and null are NULL, integers fit doubles.
    assert got[5]["s"] == "" and got[5]["bin"] == b"" and got[5]["d"] == 2.0
    assert got[5]["ts"] == ms_of("2024-07-01T01:00:00Z")
    assert got[6]["s"] is None and got[6]["i"] is None and got[6]["ts"] == 0
    assert got[6]["bin"] is None and got[6]["b"] is None
    assert got[7]["d"] == 1e300 and got[8]["s"] == "forced ndjson" and got[9]["s"] == "forced csv"


def test_counts_sequence_and_write_time(wd):
    rows = [{"bucket": "b", "key": f"k{n}", "version_id": "", "size": n} for n in range(3)]
    before = int(time.time() * 1000)
    c1 = load_counts(wd.load("object_inventory", rows, name="one.ndjson"))["one.ndjson"]
    after = int(time.time() * 1000)
    assert (c1["inserted"], c1["updated"], c1["deleted"], c1["unchanged"]) == (3, 0, 0, 0)
    store = wd.store_rows("object_inventory")
    seq_by_key = {r["key"]: r["_seq"] for r in store}
    seqs = sorted(seq_by_key.values())
    assert len(set(seqs)) == 3 and seqs[-1] == c1["seq"], (seqs, c1)
    assert all(before <= r["_write_time"] <= after for r in store), (before, after, store)
    assert all(r["_deleted"] == 0 for r in store)

    # One changed row: one update, one new _seq; the others keep theirs.
    rows[1]["size"] = 100
    c2 = load_counts(wd.load("object_inventory", rows, name="two.ndjson"))["two.ndjson"]
    assert (c2["inserted"], c2["updated"], c2["unchanged"]) == (0, 1, 2), c2
    assert c2["seq"] == c1["seq"] + 1
    by_key = {r["key"]: r for r in wd.store_rows("object_inventory")}
    assert by_key["k1"]["_seq"] == c2["seq"] and by_key["k1"]["size"] == 100
    assert by_key["k0"]["_seq"] == seq_by_key["k0"] and by_key["k2"]["_seq"] == seq_by_key["k2"]

    # Nothing changed: nothing bumped.
    c3 = load_counts(wd.load("object_inventory", rows, name="three.ndjson"))["three.ndjson"]
    assert (c3["inserted"], c3["updated"], c3["unchanged"], c3["seq"]) == (0, 0, 3, c2["seq"])

    # A delete leaves a tombstone with its own _seq.
    wd.write_ndjson("del.ndjson", [{"bucket": "b", "key": "k2", "version_id": ""}])
    c4 = load_counts(wd.ok("load", "object_inventory", "del.ndjson", "--delete"))["del.ndjson"]
    assert c4["deleted"] == 1 and c4["seq"] == c2["seq"] + 1, c4
    tomb = [r for r in wd.store_rows("object_inventory", live_only=False) if r["_deleted"]]
    assert len(tomb) == 1 and tomb[0]["key"] == "k2" and tomb[0]["_seq"] == c4["seq"], tomb
    t = {x["table"]: x for x in wd.tables_json()}["object_inventory"]
    assert (t["rows"], t["tombstones"], t["max_seq"]) == (2, 1, c4["seq"]), t


def test_binary_and_inventory_csv(wd):
    # Inventory-style CSV: booleans, sizes, timestamps, keys with spaces and non-ASCII.
    wd.write("inv.csv", (
        "bucket,key,version_id,size,last_modified,is_latest,etag\n"
        "b,folder one/Überblick.pdf,,10,2024-02-03T04:05:06.789Z,true,abc\n"
        "b,日本/x,v1,0,2024-02-03T04:05:06Z,false,\n"))
    wd.ok("load", "object_inventory", "inv.csv")
    got = {(r["key"], r["version_id"]): r for r in wd.store_rows("object_inventory")}
    a = got[("folder one/Überblick.pdf", "")]
    assert a["size"] == 10 and a["last_modified"] == ms_of("2024-02-03T04:05:06.789Z")
    assert a["is_latest"] == 1 and a["etag"] == "abc"
    b = got[("日本/x", "v1")]
    assert b["is_latest"] == 0 and b["etag"] is None and b["size"] == 0


NUMS = [("id", "int64"), ("d", "double"), ("s", "string")]


def refused(wd, *args):
    """`lakeport load ARGS` that must fail as bad input (exit 1): its stderr."""
    r = wd.lakeport("load", *args, expect=1)
    assert "panicked" not in r.err, r
    return r.err


def nums(wd):
    """The rows of table nums from the SQLite store, by id (live rows and tombstones)."""
    return {r["id"]: r for r in wd.store_rows("nums", live_only=False)}


def test_nan_is_refused_and_infinity_stored_in_both_formats(wd):
    wd.write_table("nums", ["id"], NUMS)
    wd.write("inf.csv", "id,d\n1,inf\n2,-inf\n3,Infinity\n4,-INFINITY\n5,1.5\n")
    wd.write_ndjson("inf.ndjson", [{"id": 6, "d": "inf"}, {"id": 7, "d": "-Infinity"},
                                   {"id": 8, "d": 2}])
    counts = load_counts(wd.ok("load", "nums", "inf.csv", "inf.ndjson"))
    assert counts["inf.csv"]["inserted"] == 5 and counts["inf.ndjson"]["inserted"] == 3, counts
    got = nums(wd)
    assert [got[i]["d"] for i in range(1, 9)] == [math.inf, -math.inf, math.inf, -math.inf,
                                                  1.5, math.inf, -math.inf, 2.0], got
    # Loading the same infinities again changes nothing.
    again = load_counts(wd.ok("load", "nums", "inf.csv"))["inf.csv"]
    assert (again["unchanged"], again["updated"], again["seq"]) == (5, 0, counts["inf.ndjson"]["seq"])

    # They reach the lake as the Parquet doubles they are (read by DuckDB).
    wd.write_task("nums-full", source="nums", prefix="", partition_time={"from": "write_time"})
    wd.run("nums-full")
    con = duck()
    try:
        lake = dict(con.execute("SELECT id, d FROM read_parquet(?)",
                                [[str(p) for p in wd.objects("nums-full")]]).fetchall())
    finally:
        con.close()
    assert lake[1] == math.inf and lake[7] == -math.inf and lake[5] == 1.5, lake

    # NaN, in any spelling and either format, is refused at its line; nothing of that file is
    # applied (its good rows before the NaN neither), the file before it in the same command
    # stays applied and the one after it is not read.
    before = nums(wd)
    wd.write("before.csv", "id,d\n20,1\n")
    wd.write("nan.csv", "id,d,s\r\n10,1,a\r\n\r\n11,NaN,b\r\n12,2,c\r\n")
    wd.write("after.csv", "id,d\n21,1\n")
    err = refused(wd, "nums", "before.csv", "nan.csv", "after.csv")
    assert "nan.csv:4: column d: expected double, found double NaN" in err, err
    got = nums(wd)
    assert got.pop(20)["d"] == 1.0 and got == before, got
    wd.write("nan.ndjson", '{"id": 13, "d": 3}\n\n{"id": 14, "s": "x", "d": "-nan"}\n')
    err = refused(wd, "nums", "nan.ndjson")
    assert "nan.ndjson:3: column d: expected double, found double NaN" in err, err
    assert 13 not in nums(wd) and 21 not in nums(wd)


def test_refused_values_name_file_line_and_column(wd):
    wd.write_table("nums", ["id"], NUMS)
    wd.write("ok.csv", "id,d\n1,1\n")
    wd.ok("load", "nums", "ok.csv")
    before = nums(wd)
    cases = [
        # A CRLF file with a quoted field over two lines and blank lines: the row's own line.
        ("crlf.csv", "id,d,s\r\n2,1,\"two\r\nlines\"\r\n\r\n3,x,c\r\n",
         "crlf.csv:5: d: expected a number, found \"x\""),
        ("blank.csv", "id,d\n2,1\n\n\n3,2\n4,1e\n", "blank.csv:6: d: expected a number"),
        ("bad.ndjson", '{"id": 2}\n\n{"id": 3, "d": true}\n',
         "bad.ndjson:3: d: expected a number, found boolean true"),
        ("key.csv", "id,d\n2,1\n\n,2\n",
         "key.csv:4: id: expected a int64 value (a key column cannot be null), found null"),
    ]
    for name, text, message in cases:
        (wd.root / name).write_bytes(text.encode())
        err = refused(wd, "nums", name)
        assert message in err, (name, err)
        assert nums(wd) == before, name
    # A field that is not UTF-8 names its column.
    wd.write_bytes("latin1.csv", b"id,s\n2,ok\n3,Gr\xfc\xdfe\n")
    err = refused(wd, "nums", "latin1.csv")
    assert "latin1.csv:3: s: expected UTF-8 text" in err, err
    assert nums(wd) == before


def test_json_object_naming_a_field_twice_is_refused(wd):
    wd.write_table("nums", ["id"], NUMS)
    wd.write("dup.ndjson", '{"id": 1, "s": "a"}\n{"id": 2, "s": "a", "s": "b"}\n')
    err = refused(wd, "nums", "dup.ndjson")
    assert "dup.ndjson:2: s: the object names this field twice; expected each field once" in err
    # The key twice, even with one value, and in a delete file.
    wd.write("dupkey.ndjson", '{"id": 1, "id": 1}\n')
    err = refused(wd, "nums", "dupkey.ndjson", "--delete")
    assert "dupkey.ndjson:1: id: the object names this field twice" in err, err
    assert nums(wd) == {}


def test_gzip_files_load_as_their_uncompressed_form(wd):
    wd.write_table("nums", ["id"], NUMS)
    # Two gzip members one after the other, as `cat a.gz b.gz` makes them.
    wd.write_bytes("a.ndjson.gz", gzip.compress(b'{"id": 1, "d": 0.5, "s": "x"}\n')
                   + gzip.compress(b'{"id": 2, "d": "-inf"}\n'))
    wd.write_bytes("b.CSV.GZ", gzip.compress("id,d,s\r\n3,2,Grüße\r\n".encode()))
    wd.write_bytes("c.jsonl.gz", gzip.compress(b'{"id": 4}\n'))
    wd.write_bytes("d.data.gz", gzip.compress(b"id,s\n5,forced csv\n"))
    counts = load_counts(wd.ok("load", "nums", "a.ndjson.gz", "b.CSV.GZ", "c.jsonl.gz"))
    assert [counts[f]["inserted"] for f in ("a.ndjson.gz", "b.CSV.GZ", "c.jsonl.gz")] == [2, 1, 1]
    wd.ok("load", "nums", "d.data.gz", "--format", "csv")
    got = nums(wd)
    assert (got[1]["d"], got[1]["s"], got[2]["d"]) == (0.5, "x", -math.inf), got
    assert (got[3]["d"], got[3]["s"], got[4]["d"], got[5]["s"]) == (2.0, "Grüße", None,
                                                                      "forced csv"), got
    # A .gz name without a row format in it still needs --format.
    wd.write_bytes("e.gz", gzip.compress(b"id\n6\n"))
    r = wd.lakeport("load", "nums", "e.gz", expect=2)
    assert "e.gz: cannot tell the format from the extension" in r.err and ".gz" in r.err, r

    # Corrupt gzip data names the file, and nothing of it is applied.
    before = nums(wd)
    good = gzip.compress(("id,d\n" + "".join(f"{i},1\n" for i in range(10, 5000))).encode())
    bad_crc = bytearray(good)
    bad_crc[-8] ^= 0xFF
    for name, data in [("cut.csv.gz", good[: len(good) // 2]), ("crc.csv.gz", bytes(bad_crc)),
                       ("plain.ndjson.gz", b'{"id": 7}\n'), ("zero.csv.gz", b"")]:
        wd.write_bytes(name, data)
        err = refused(wd, "nums", name)
        assert f"{name}:" in err and "not valid gzip data" in err, (name, err)
        assert nums(wd) == before, name


def test_empty_csv_is_an_empty_file_without_header(wd):
    wd.write_table("nums", ["id"], NUMS)
    wd.write("empty.csv", "")
    wd.write_bytes("empty.csv.gz", gzip.compress(b""))
    for name in ("empty.csv", "empty.csv.gz"):
        err = refused(wd, "nums", name)
        assert f"{name}:1: empty file, no header: expected a header line naming the columns" \
            in err, err
        assert "missing" not in err, err
    # A header and no rows is a file of no rows, and so is an empty NDJSON file.
    wd.write("header.csv", "id,d\n")
    wd.write("empty.ndjson", "")
    counts = load_counts(wd.ok("load", "nums", "header.csv", "empty.ndjson"))
    assert counts["header.csv"]["inserted"] == 0 and counts["empty.ndjson"]["inserted"] == 0
    assert nums(wd) == {}


def test_nan_and_infinity_on_postgres(wd, pg_url):
    """The same input as on SQLite loads the same way on PostgreSQL, whose double precision
    could hold NaN: ±infinity is stored, NaN refused at its line with nothing applied."""
    wd.store = pg_url
    wd.write_table("nums", ["id"], NUMS)

    def stored():
        out = subprocess.run([psql(), pg_url, "-At", "-F", "|", "-c",
                              "SELECT id, d::text FROM data_nums ORDER BY id"],
                             check=True, capture_output=True, text=True).stdout
        return [tuple(line.split("|")) for line in out.splitlines()]

    wd.write("inf.csv", "id,d\n1,inf\n2,-Infinity\n")
    wd.write_ndjson("inf.ndjson", [{"id": 3, "d": "INF"}, {"id": 4, "d": 0.25}])
    wd.ok("load", "nums", "inf.csv", "inf.ndjson")
    expected = [("1", "Infinity"), ("2", "-Infinity"), ("3", "Infinity"), ("4", "0.25")]
    assert stored() == expected
    again = load_counts(wd.ok("load", "nums", "inf.csv"))["inf.csv"]
    assert (again["unchanged"], again["updated"]) == (2, 0), again

    wd.write("nan.csv", "id,d\r\n5,1\r\n6,nan\r\n")
    err = refused(wd, "nums", "nan.csv")
    assert "nan.csv:3: column d: expected double, found double NaN" in err, err
    wd.write("nan.ndjson", '{"id": 7, "d": 1}\n{"id": 8, "d": "NaN"}\n')
    err = refused(wd, "nums", "nan.ndjson")
    assert "nan.ndjson:2: column d: expected double, found double NaN" in err, err
    assert stored() == expected
