"""Bad configuration and bad input files: every problem is reported where it is (file, line,
key or column) with the right exit code, and nothing is applied or delivered."""

import re

import pytest
import yaml

from conftest import task_yaml


def dump(task):
    return yaml.safe_dump(task, sort_keys=False)


def test_validate_reports_every_problem_at_once(wd):
    # A good task whose schema uses allowed conversions (string -> int64, bool -> int32, ...).
    wd.write_schema("good_lake", [("key", "key", "string"), ("etag", "etag_num", "int64"),
                                  ("is_latest", "latest_num", "int32"),
                                  ("last_modified", "day", "date"),
                                  ("size", "size_text", "string")])
    wd.write_task("good-task", schema="schemas/good_lake.yaml")
    # 1. Malformed YAML: the error is on line 4.
    wd.write("pipelines/broken-yaml.yaml", """\
        name: broken-yaml
        source: object_inventory
        destination: lake/broken
          prefix: "dt=$yyyy"
        mode: full
        """)
    # 2. An unknown key.
    wd.write("pipelines/unknown-key.yaml", dump(task_yaml("unknown-key", colour="blue")))
    # 3. A bad task name.
    wd.write("pipelines/bad-name.yaml", dump(task_yaml("Bad_Name!")))
    # 4. An unknown $word in the prefix.
    wd.write("pipelines/bad-prefix.yaml",
             dump(task_yaml("bad-prefix", prefix="dt=$yyyy-$MM-$week")))
    # 5. A source table that does not exist.
    wd.write("pipelines/no-table.yaml", dump(task_yaml("no-table", source="nosuch_table")))
    # 6. A schema column that the table does not have.
    wd.write_schema("missing_col", [("key", "key", "string"), ("nosuch_col", "x", "string")])
    wd.write("pipelines/no-column.yaml",
             dump(task_yaml("no-column", schema="schemas/missing_col.yaml")))
    # 7. A partition-time column that the table does not have.
    wd.write("pipelines/no-time-col.yaml", dump(task_yaml(
        "no-time-col", partition_time={"from": "column", "column": "nosuch_time"})))
    # 8. A lake type that cannot hold the source type (bool -> date).
    wd.write_schema("bad_type", [("key", "key", "string"), ("is_latest", "latest_day", "date")])
    wd.write("pipelines/bad-type.yaml", dump(task_yaml("bad-type", schema="schemas/bad_type.yaml")))
    # 9. A table declaration with a type the store does not have.
    wd.write("schemas/bad_table.yaml", """\
        table: bad_table
        primary_key: [id]
        columns:
          - { name: id, type: varchar }
        """)

    r = wd.lakeport("validate", expect=2)
    text = r.out + r.err
    lines = [ln for ln in text.splitlines() if ln.strip()]

    def problem(file, *parts):
        hits = [ln for ln in lines if file in ln and all(p in ln for p in parts)]
        assert hits, f"no problem line with {file} and {parts}\n{r}"
        return hits[0]

    assert re.search(r"line 4\b", problem("broken-yaml.yaml")), r
    problem("unknown-key.yaml", "colour")
    problem("bad-name.yaml", "name", "Bad_Name!")
    problem("bad-prefix.yaml", "prefix", "$week")
    problem("no-table.yaml", "source", "nosuch_table")
    assert any("nosuch_col" in ln and ("missing_col.yaml" in ln or "no-column.yaml" in ln)
               for ln in lines), r
    problem("no-time-col.yaml", "nosuch_time")
    problem("bad_table.yaml", "varchar")
    assert any("date" in ln and "bool" in ln and ("bad_type.yaml" in ln or "bad-type.yaml" in ln)
               for ln in lines), r
    # The good task and its allowed conversions are not reported.
    assert not any("good-task" in ln or "good_lake" in ln for ln in lines), r
    # Every line is one problem of the shape FILE: KEY: message (nothing before FILE).
    for ln in lines:
        assert re.match(r"^[^\s:]+\.yaml: [^:]+: .+", ln), f"not FILE: KEY: message: {ln!r}\n{r}"

    # A broken task does not run and delivers nothing.
    for task in ("bad-prefix", "no-table", "no-column", "bad-type"):
        r = wd.lakeport("run", task, expect=2)
        assert not (wd.root / "lake" / task).exists(), r
    # The good task still validates alone once the others are gone.
    for f in (wd.root / "pipelines").glob("*.yaml"):
        if f.name != "good-task.yaml":
            f.unlink()
    for f in ("missing_col", "bad_type", "bad_table"):
        (wd.root / "schemas" / f"{f}.yaml").unlink()
    r = wd.ok("validate")
    assert r.lines[-1] == "ok: 1 tasks, 0 watchers, 1 tables", r


def test_validate_points_at_unterminated_quotes_and_flows(wd):
    """A quote, `{` or `[` left open is reported where it opens, with what is not closed and
    where the parser gave up (libyaml notices only at the end of the file or the next key)."""
    wd.write("pipelines/double.yaml", """\
        name: double
        source: object_inventory
        destination: lake/double
        prefix: "dt=$yyyy-$MM-$dd
        mode: full
        """)
    wd.write("pipelines/single.yaml", """\
        name: single
        source: object_inventory
        destination: 'lake/single
        mode: full
        """)
    wd.write("pipelines/sequence.yaml", """\
        name: sequence
        source: object_inventory
        destination: lake/sequence
        catalog: [hive, sequence
        mode: full
        """)
    wd.write("schemas/mapping.yaml", """\
        table: mapping
        primary_key: [id]
        columns:
          - { name: n, type: string }
          - { name: id, type: int64
        """)
    # A delivery schema is read for the (otherwise valid) task that names it.
    wd.write("schemas/lake_cols.yaml", """\
        columns:
          - { source: key, name: 'object_key, type: string }
        """)
    wd.write_task("uses-lake", schema="schemas/lake_cols.yaml")

    r = wd.lakeport("validate", expect=2)
    lines = [ln for ln in (r.out + r.err).splitlines() if ln.strip()]
    expected = [
        "pipelines/double.yaml: line 4 column 9: quoted string is not closed "
        "(found unexpected end of stream at line 6 column 1)",
        "pipelines/single.yaml: line 3 column 14: quoted string is not closed "
        "(found unexpected end of stream at line 5 column 1)",
        "pipelines/sequence.yaml: line 4 column 10: flow sequence '[' is not closed "
        "(did not find expected ',' or ']' at line 5 column 5)",
        "schemas/mapping.yaml: line 5 column 5: flow mapping '{' is not closed "
        "(did not find expected ',' or '}' at line 6 column 1)",
        "schemas/lake_cols.yaml: line 2 column 26: quoted string is not closed "
        "(found unexpected end of stream at line 3 column 1)",
    ]
    for want in expected:
        assert any(ln.endswith(want) for ln in lines), f"no line ending {want!r}\n{r}"
    assert not any("unexpected end of stream" in ln and "is not closed" not in ln
                   for ln in lines), r


@pytest.mark.parametrize("command", [["run"], ["ddl"], ["status", "--json"]])
def test_unknown_task_is_bad_usage(wd, command):
    wd.write_task("real-task")
    r = wd.lakeport(command[0], "nosuch-task", *command[1:], expect=2)
    assert "nosuch-task" in r.err, r


def test_bad_usage(wd):
    wd.lakeport("load", "object_inventory", "in.ndjson", "--format", "xml", expect=2)
    wd.lakeport("frobnicate", expect=2)
    wd.lakeport("run", expect=2)


GOOD = [{"bucket": "b", "key": f"k{n}", "version_id": "", "size": n} for n in range(5)]


@pytest.fixture
def seeded(wd):
    wd.load("object_inventory", GOOD)
    return wd


def snapshot(wd):
    return wd.tables_json(), sorted(map(repr, wd.store_rows("object_inventory", live_only=False)))


BAD_NDJSON = {
    # file: (content lines, line, column or None)
    "bad-int.ndjson": ([{"bucket": "b", "key": "n1", "version_id": "", "size": 1},
                        {"bucket": "b", "key": "n2", "version_id": "", "size": "a lot"}],
                       2, "size"),
    "bad-float-int.ndjson": ([{"bucket": "b", "key": "f1", "version_id": "", "size": 1.5}],
                             1, "size"),
    "bad-ts.ndjson": ([{"bucket": "b", "key": "t1", "version_id": ""},
                       {"bucket": "b", "key": "t2", "version_id": "",
                        "last_modified": "2024-01-01T00:00:00Z"},
                       {"bucket": "b", "key": "t3", "version_id": "",
                        "last_modified": "2024-13-45T00:00:00Z"}], 3, "last_modified"),
    "bad-bool.ndjson": ([{"bucket": "b", "key": "b1", "version_id": "", "is_latest": "yes"}],
                        1, "is_latest"),
    "null-key.ndjson": ([{"bucket": "b", "key": None, "version_id": ""}], 1, "key"),
    "missing-key.ndjson": ([{"bucket": "b", "version_id": "", "size": 3}], 1, "key"),
    # prefix is the key's folder: it may be left out, not given otherwise.
    "wrong-prefix.ndjson": ([{"bucket": "b", "key": "a/p1", "version_id": ""},
                             {"bucket": "b", "key": "a/p2", "version_id": "", "prefix": "a/"},
                             {"bucket": "b", "key": "a/p3", "version_id": "", "prefix": "b/"}],
                            3, "prefix"),
}


@pytest.mark.parametrize("name", sorted(BAD_NDJSON))
def test_load_bad_ndjson_value(seeded, name):
    wd = seeded
    rows, line, column = BAD_NDJSON[name]
    wd.write_ndjson(name, rows)
    before = snapshot(wd)
    r = wd.lakeport("load", "object_inventory", name, expect=1)
    # FILE:LINE: COLUMN: expected ..., found ...
    assert re.search(rf"{re.escape(name)}:{line}: {column}: expected .+, found .+", r.err), r
    assert snapshot(wd) == before


def test_load_malformed_json_line(seeded):
    wd = seeded
    wd.write("wrong.ndjson", '{"bucket": "b", "key": "j1", "version_id": ""}\n'
                             '{"bucket": "b", "key": \n'
                             '{"bucket": "b", "key": "j3", "version_id": ""}\n')
    before = snapshot(wd)
    r = wd.lakeport("load", "object_inventory", "wrong.ndjson", expect=1)
    assert "wrong.ndjson:2:" in r.err, r
    assert snapshot(wd) == before


BAD_CSV = {
    # file: (text, substring expected in stderr)
    "missing-key.csv": ("bucket,version_id,size\nb,,1\n", ("missing-key.csv", "key")),
    "short-row.csv": ("bucket,key,version_id,size\nb,c1,,1\nb,c2\n", ("short-row.csv:3:",)),
    "bad-value.csv": ("bucket,key,version_id,size\nb,c1,,1\nb,c2,,2\nb,c3,,3\nb,c4,,12x\n",
                      ("bad-value.csv:5: size: expected", 'found "12x"')),
    "bad-bool.csv": ("bucket,key,version_id,is_latest\nb,c1,,yes\n",
                     ("bad-bool.csv:2: is_latest: expected", 'found "yes"')),
    "bad-ts.csv": ("bucket,key,version_id,last_modified\nb,c1,,2024-01-01T00:00:00Z\n"
                   "b,c2,,last tuesday\n",
                   ("bad-ts.csv:3: last_modified: expected", 'found "last tuesday"')),
    "unknown-col.csv": ("bucket,key,version_id,colour\nb,c1,,blue\n",
                        ("unknown-col.csv", "colour")),
}


@pytest.mark.parametrize("name", sorted(BAD_CSV))
def test_load_bad_csv(seeded, name):
    wd = seeded
    text, parts = BAD_CSV[name]
    wd.write(name, text)
    before = snapshot(wd)
    r = wd.lakeport("load", "object_inventory", name, expect=1)
    for p in parts:
        assert p in r.err, f"{p!r} not in stderr\n{r}"
    assert snapshot(wd) == before


def test_each_file_is_its_own_transaction(seeded):
    wd = seeded
    wd.write_ndjson("good.ndjson", [{"bucket": "g", "key": "g1", "version_id": ""}])
    wd.write_ndjson("bad.ndjson", [{"bucket": "h", "key": "h1", "version_id": ""},
                                   {"bucket": "h", "key": "h2", "version_id": "", "size": "x"}])
    r = wd.lakeport("load", "object_inventory", "good.ndjson", "bad.ndjson", expect=1)
    assert "bad.ndjson:2: size: expected" in r.err, r
    assert any(re.match(r"^loaded good\.ndjson: 1 inserted, 0 updated, 0 deleted, 0 unchanged "
                        r"\(seq \d+\)$", ln) for ln in r.lines), r
    assert not any("bad.ndjson" in ln for ln in r.lines), r
    buckets = sorted(row["bucket"] for row in wd.store_rows("object_inventory"))
    assert buckets == ["b"] * 5 + ["g"], "the good file must apply, the bad one not at all"


def test_load_unknown_table(wd):
    wd.write_ndjson("x.ndjson", GOOD)
    r = wd.lakeport("load", "nosuch_table", "x.ndjson", expect=2)
    assert "nosuch_table" in r.err, r
