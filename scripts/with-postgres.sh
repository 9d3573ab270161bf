#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster on a free loopback port, and stops and
# removes the cluster when the command ends, whatever its outcome.
#
#   scripts/with-postgres.sh <command> [args…]
#
# The command sees LAKEPORT_TEST_POSTGRES=postgresql://postgres@127.0.0.1:<port>/postgres
# (trust authentication on 127.0.0.1 only, fsync off: a test server, never a real one).
# PostgreSQL comes from Debian's packages; `make test` installs it (target `postgresql`).
set -euo pipefail

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "with-postgres: PostgreSQL is not installed (make postgresql installs it)" >&2
  exit 2
fi
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
  # initdb refuses to run as root.
  RUN_AS=(runuser -u postgres --)
fi

PGDATA=$(mktemp -d "${TMPDIR:-/tmp}/lakeport-pg.XXXXXX")
[ "${#RUN_AS[@]}" -gt 0 ] && chown postgres:postgres "$PGDATA"
stop() {
  "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PGDATA"
}
trap stop EXIT

"${RUN_AS[@]}" "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --no-sync >"$PGDATA.initdb.log" 2>&1 ||
  { cat "$PGDATA.initdb.log" >&2; rm -f "$PGDATA.initdb.log"; exit 1; }
rm -f "$PGDATA.initdb.log"

# TLS for the tests that ask for it (sslmode=require): a throwaway CA and a server
# certificate for 127.0.0.1 signed by it; the CA's file is exported as
# LAKEPORT_TEST_POSTGRES_CA. Connections that do not ask for TLS stay plain.
TLS=()
if command -v openssl >/dev/null; then
  tls_dir="$PGDATA/tls"
  mkdir -p "$tls_dir"
  (
    cd "$tls_dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=lakeport test CA" \
      -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.crt
  ) >/dev/null 2>&1
  chmod 600 "$tls_dir/server.key"
  [ "${#RUN_AS[@]}" -gt 0 ] && chown -R postgres:postgres "$tls_dir"
  TLS=(-c ssl=on -c "ssl_cert_file=$tls_dir/server.crt" -c "ssl_key_file=$tls_dir/server.key")
  export LAKEPORT_TEST_POSTGRES_CA="$tls_dir/ca.crt"
fi

# A free port: ask the kernel for one, then start on it (retried if another process took it).
for attempt in 1 2 3 4 5; do
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  if "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 \
      -o "-p $PORT -k $PGDATA -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 ${TLS[*]}" \
      start >/dev/null; then
    break
  fi
  [ "$attempt" = 5 ] && { cat "$PGDATA/server.log" >&2; exit 1; }
done

export LAKEPORT_TEST_POSTGRES="postgresql://postgres@127.0.0.1:$PORT/postgres"
echo "with-postgres: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (data $PGDATA)" >&2
set +e
"$@"
status=$?
exit $status
