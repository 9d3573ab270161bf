"""The files of deploy/: the example task set passes `lakeport validate`, and the systemd unit
passes `systemd-analyze verify` (where systemd is installed) with its ExecStart pointed at the
binary under test."""

import shutil
import subprocess
import pytest

from conftest import REPO

DEPLOY = REPO / "deploy"


def test_example_tasks_validate(tmp_path, binary):
    p = subprocess.run([str(binary), "--store", f"sqlite:{tmp_path / 'store.db'}",
                        "--pipelines", str(DEPLOY / "example" / "pipelines"),
                        "--schemas", str(DEPLOY / "example" / "schemas"), "validate"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "ok: 3 tasks, 1 watchers, 2 tables" in p.stdout, p.stdout + p.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_systemd_unit_verifies(tmp_path, binary):
    unit = (DEPLOY / "systemd" / "lakeport.service").read_text()
    assert "ExecStart=/usr/local/bin/lakeport " in unit
    copy = tmp_path / "lakeport.service"
    copy.write_text(unit.replace("/usr/local/bin/lakeport", str(binary)))
    p = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    problems = [line for line in (p.stdout + p.stderr).splitlines() if "lakeport" in line]
    assert p.returncode == 0 and not problems, p.stdout + p.stderr
