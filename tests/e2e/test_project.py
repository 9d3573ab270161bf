"""Where lakeport looks, and what it never does by accident (issue 18, points 2, 3 and 5),
against the real binary with the default options (no --store unless a test gives one).

- The default store is `lakeport.db` in the project folder (the parent of the pipelines
  folder): a command run from a subfolder finds the same store and creates none of its own.
- Reading commands (`validate`, `tables`, `status`, `ls`, `du`, `ddl`) never create a store;
  a missing store is exit 2 naming where it was looked for. A missing `--pipelines` or
  `--schemas` folder is exit 2 for every command that reads it.
- A store on a read-only file system (a read-only bind mount) or another user's read-only file
  still answers reads; writing commands fail naming the cause, and the store is as it was.
- `run <task>` needs only its own task file and what it uses: another broken file is a warning
  naming it; `validate` and `serve` stay strict.
"""

import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import Workdir, duck

ROWS = 200


def inventory_rows(n, start=0):
    return [{"bucket": "b", "key": f"k/{i:05d}", "version_id": "", "size": i,
             "last_modified": 1_717_000_000_000 + i} for i in range(start, start + n)]


def project(wd):
    """A project with the task `inv` (full, into lake/inv) and a loaded store at its root,
    made with the default options."""
    wd.write_task("inv", concurrency=1)
    wd.write_ndjson("in/rows.ndjson", inventory_rows(ROWS))
    wd.bare("load", "object_inventory", "in/rows.ndjson", expect=0)
    assert wd.store_path.is_file()


def lake_count(dest):
    con = duck()
    try:
        return con.execute(f"SELECT count(*) FROM read_parquet('{dest}/**/*.parquet', "
                           "hive_partitioning=false)").fetchone()[0]
    finally:
        con.close()


def test_commands_from_a_subfolder_use_the_project_store(wd):
    project(wd)
    sub = wd.root / "sub" / "deeper"
    sub.mkdir(parents=True)
    r = wd.bare("--pipelines", "../../pipelines", "run", "inv", cwd=sub, expect=0)
    assert r.lines[-1].startswith(f"inv: {ROWS} rows"), r
    assert not (sub / "lakeport.db").exists() and not (wd.root / "sub/lakeport.db").exists()
    assert lake_count(wd.destination("inv")) == ROWS
    r = wd.bare("--pipelines", "../../pipelines", "status", "inv", cwd=sub, expect=0)
    assert "succeeded" in r.out and f"{ROWS} rows" in r.out, r
    # The store of the project root is the one that ran it.
    con = sqlite3.connect(wd.store_path)
    assert con.execute("SELECT count(*) FROM _lakeport_runs").fetchone()[0] == 1
    con.close()


def test_reading_commands_never_create_a_store(wd):
    wd.write_task("inv")
    r = wd.bare("validate", expect=0)
    assert r.out.startswith("ok: 1 tasks"), r
    for args in (("tables",), ("status",), ("status", "inv"), ("ddl", "inv"),
                 ("ls", "b"), ("du", "b")):
        r = wd.bare(*args, expect=2)
        assert f"no store at {wd.store_path}" in r.err and "default store" in r.err, r
        assert not wd.store_path.exists(), f"{args} created the store"
    r = wd.bare("--store", "sqlite:elsewhere/x.db", "tables", expect=2)
    assert f"no store at {wd.root / 'elsewhere/x.db'}" in r.err, r


def test_missing_folders_are_errors(wd):
    project(wd)
    for args in (("validate",), ("run", "inv"), ("status",), ("ddl", "inv"),
                 ("serve", "--listen", "127.0.0.1:0")):
        r = wd.bare("--pipelines", "pipelnes", *args, expect=2)
        assert "--pipelines pipelnes: no such folder" in r.err, r
        r = wd.bare("--schemas", "schemaz", *args, expect=2)
        assert "--schemas schemaz: no such folder" in r.err, r
    r = wd.bare("--schemas", "schemaz", "load", "object_inventory", "in/rows.ndjson", expect=2)
    assert "--schemas schemaz: no such folder" in r.err, r


def test_run_needs_only_its_own_files(wd):
    project(wd)
    wd.write_task("other", concurrency=1)
    wd.write("pipelines/broken.yaml", "name: broken\nsource: [unclosed\n")
    wd.write("pipelines/other.yaml", "name: other\nsource: object_inventory\nmode: sideways\n")
    wd.write("schemas/bad_table.yaml", "table: bad_table\nprimary_key: [id]\ncolumns: 3\n")
    r = wd.bare("run", "inv", expect=0)
    assert r.lines[-1].startswith(f"inv: {ROWS} rows"), r
    for name in ("pipelines/broken.yaml", "pipelines/other.yaml", "schemas/bad_table.yaml"):
        assert name in r.err and "WARN" in r.err, f"{name} not warned about\n{r}"
    assert wd.bare("ddl", "inv", expect=0).out.startswith("CREATE EXTERNAL TABLE")
    assert "inv (full)" in wd.bare("status", "inv", expect=0).out
    # The task's own file broken: an error naming it.
    r = wd.bare("run", "other", expect=2)
    assert "pipelines/other.yaml: mode:" in r.err, r
    # A name no readable file declares: exit 2, naming the files that could not be read.
    r = wd.bare("run", "nope", expect=2)
    assert 'no task named "nope"' in r.err and "pipelines/broken.yaml" in r.err, r
    # validate and serve stay strict: every problem, exit 2.
    r = wd.bare("validate", expect=2)
    for name in ("broken.yaml", "other.yaml", "bad_table.yaml"):
        assert name in r.err, r
    r = wd.bare("serve", "--listen", "127.0.0.1:0", expect=2)
    assert "broken.yaml" in r.err, r


# -- a store that cannot be written -------------------------------------------------------

def read_only_checks(lakeport, cwd):
    """Reads answer from the store in `cwd` (`lakeport(*args, cwd=, expect=)` runs the binary);
    a write fails naming why, and its error text is returned."""
    r = lakeport("tables", "--json", cwd=cwd, expect=0)
    assert f'"rows": {ROWS}' in r.out, r
    r = lakeport("status", "inv", cwd=cwd, expect=0)
    assert "succeeded" in r.out, r
    r = lakeport("ls", "b", "--limit", "3", cwd=cwd, expect=0)
    assert len(r.lines) == 3 and r.lines[0].endswith("k/00000"), r
    r = lakeport("du", "b", cwd=cwd, expect=0)
    assert str(ROWS) in r.out, r
    r = lakeport("ddl", "inv", cwd=cwd, expect=0)
    assert r.out.startswith("CREATE EXTERNAL TABLE"), r
    r = lakeport("load", "object_inventory", "in/rows.ndjson", cwd=cwd, expect=1)
    assert "unable to open database file" not in r.err, r
    return r.err


@pytest.fixture
def delivered_project(wd):
    if os.geteuid() != 0:
        pytest.skip("a read-only mount and another user need root")
    project(wd)
    wd.bare("run", "inv", expect=0)
    return wd


def test_a_store_on_a_read_only_mount_answers_reads(delivered_project):
    wd = delivered_project
    mount = Path(tempfile.mkdtemp(prefix="lakeport-ro-mount-"))
    done = subprocess.run(["mount", "--bind", str(wd.root), str(mount)], capture_output=True)
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"bind mount refused: {done.stderr.decode()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], check=True)
        before = (mount / "lakeport.db").read_bytes()
        err = read_only_checks(wd.bare, mount)
        assert "Read-only file system" in err and "lakeport.db" in err, err
        assert (mount / "lakeport.db").read_bytes() == before
        assert not (wd.root / "lakeport.db-wal").exists()
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def test_another_users_read_only_store_answers_reads(delivered_project):
    wd = delivered_project
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("runuser is not installed")
    # A copy of the project (and of the binary) that `nobody` may read and not write.
    shared = Path(tempfile.mkdtemp(prefix="lakeport-ro-"))
    try:
        copy = shared / "p"
        shutil.copytree(wd.root, copy)
        binary = shared / "lakeport"
        shutil.copy2(wd.binary, binary)
        for path in [shared, *shared.rglob("*")]:
            path.chmod(0o755 if path.is_dir() or path == binary else 0o444)
        as_nobody = Workdir(copy, runuser)

        def lakeport(*args, cwd, expect):
            return as_nobody.bare("-u", "nobody", "--", binary, *args, cwd=cwd, expect=expect)

        err = read_only_checks(lakeport, copy)
        assert "Permission denied" in err and "lakeport.db" in err, err
    finally:
        shutil.rmtree(shared, ignore_errors=True)
