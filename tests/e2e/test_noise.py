"""What a failure prints: lakeport's own error, once, and no third-party or follow-on lines
about things that never happened (issue 18, point 11)."""

import socket

import pytest


def nothing_listens():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", [["tables"], ["status"]])
def test_refused_postgres_connection_is_one_lakeport_error(wd, command):
    """A PostgreSQL server that refuses the connection: stderr is lakeport's one error line
    naming the store and the reason, without r2d2's own `ERROR r2d2` line beside it."""
    port = nothing_listens()
    wd.store = f"postgres://postgres@127.0.0.1:{port}/x"
    r = wd.lakeport(*command, expect=1)
    assert "r2d2" not in r.err, r
    assert len(r.err_lines) == 1, r
    line = r.err_lines[0]
    assert line.startswith(f"error: store: connecting to postgres://postgres@127.0.0.1:{port}/x: "
                           "error connecting to server: "), r
    assert "refused" in line.lower(), r


def test_refused_upload_warns_about_no_object_it_never_wrote(wd):
    """A run whose every upload the destination refuses (a plain file stands where the
    partition folder must go): it fails with the upload's error, and says nothing about
    removing objects, since none was ever written."""
    wd.write_task("blocked", prefix="dt=$yyyy-$MM-$dd",
                  partition_time={"from": "column", "column": "last_modified"})
    wd.load("object_inventory", [
        {"bucket": "b", "key": f"k{n}", "version_id": "", "size": n,
         "last_modified": "2024-01-02T03:04:05Z"} for n in range(20)])
    lake = wd.destination("blocked")
    lake.mkdir(parents=True)
    (lake / "dt=2024-01-02").write_text("not a folder")
    r = wd.lakeport("run", "blocked", expect=1)
    assert "error: object storage: upload " in r.err and "Not a directory" in r.err, r
    assert "could not remove" not in r.err, r
    assert " WARN " not in r.err, r
    assert (lake / "dt=2024-01-02").read_text() == "not a folder"
    assert wd.objects("blocked") == []
