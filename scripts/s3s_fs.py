"""s3s-fs (crates.io; `make s3s-fs` builds it into the tools cache, env `LAKEPORT_S3S_FS`) as a
local S3-compatible server on 127.0.0.1, for the end-to-end tests (`tests/e2e/conftest.py`) and
the PostgreSQL benchmark (`scripts/bench_postgres.py`).

Buckets are folders under the served root and objects plain files; the server's own
bookkeeping sits beside them as `.bucket-*.json` (an object's ETag: `<md5>-<parts>` after a
multipart upload) and `.upload-<id>.json` plus `.upload_id-<id>.part-<n>` (a multipart upload in
progress)."""

import os
import socket
import subprocess
import time
from pathlib import Path

REGION = "us-east-1"


def binary():
    """Where s3s-fs is: env LAKEPORT_S3S_FS, else the tools cache `make s3s-fs` fills."""
    env = os.environ.get("LAKEPORT_S3S_FS")
    if env:
        return Path(env)
    base = os.environ.get("LAKEPORT_TOOLS_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lakeport-tools")
    return Path(base) / "s3s-fs-0.14.1" / "bin" / "s3s-fs"


def free_port():
    """A port no one listens on now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StartError(Exception):
    """The server did not start (the message holds the end of its log)."""


class S3sFs:
    """One s3s-fs process serving `root` on 127.0.0.1:`port` (a free port when `None`, tried
    again on another if taken meanwhile) with one access key; its output goes to `log`."""

    def __init__(self, binary, root, port, log, access_key, secret_key, preexec_fn=None):
        self.binary, self.root, self.port, self.log = Path(binary), Path(root), port, Path(log)
        self.access_key, self.secret_key = access_key, secret_key
        self.preexec_fn = preexec_fn
        self.process = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def running(self):
        return self.process is not None and self.process.poll() is None

    def start(self, timeout=15):
        """Starts the server and waits until it accepts connections; StartError if it cannot."""
        assert not self.running(), "already running"
        self.root.mkdir(parents=True, exist_ok=True)
        fixed = self.port is not None
        for _ in range(1 if fixed else 5):
            if not fixed:
                self.port = free_port()
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [str(self.binary), "--host", "127.0.0.1", "--port", str(self.port),
                     "--access-key", self.access_key, "--secret-key", self.secret_key,
                     str(self.root)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    preexec_fn=self.preexec_fn)
            deadline = time.time() + timeout
            while time.time() < deadline and self.process.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                        return
                except OSError:
                    time.sleep(0.05)
            self.stop()  # it exited (the port was taken meanwhile?) or did not listen in time
        raise StartError(f"s3s-fs did not listen on {self.endpoint} within {timeout}s (exit "
                         f"{self.process.returncode}):\n"
                         f"{self.log.read_text(errors='replace')[-3000:]}")

    def kill(self):
        """SIGKILL, as a crash would."""
        if self.running():
            self.process.kill()
            self.process.wait()

    def stop(self):
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def fs(self, request_timeout=30):
        """A pyarrow S3FileSystem on the server (pyarrow's own S3 client, not lakeport's)."""
        from pyarrow import fs as pafs
        return pafs.S3FileSystem(
            access_key=self.access_key, secret_key=self.secret_key, region=REGION,
            endpoint_override=f"127.0.0.1:{self.port}", scheme="http",
            allow_bucket_creation=True, connect_timeout=5, request_timeout=request_timeout)
