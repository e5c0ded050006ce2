#!/usr/bin/env bash
# A local PostgreSQL for the catalog tests (tests/test_postgres.py), on a Debian machine, as root.
#
# Installs Debian's `postgresql` if missing, starts its `main` cluster (listening on 127.0.0.1 only),
# creates the role and database, checks a password login over TCP and prints the SQLAlchemy URL as the
# last line of stdout; everything else goes to stderr. Idempotent: a second run only checks and starts.
#
#   MMSEARCH_TEST_PG_URL="$(.ci/postgres.sh | tail -n 1)"
#
# MMSEARCH_PG_USER, MMSEARCH_PG_PASSWORD (URL-safe characters only) and MMSEARCH_PG_DB override the names.
set -euo pipefail

PG_USER=${MMSEARCH_PG_USER:-mmsearch}
PG_PASSWORD=${MMSEARCH_PG_PASSWORD:-mmsearch}
PG_DB=${MMSEARCH_PG_DB:-mmsearch_test}
CLUSTER=main

log() { echo "postgres.sh: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root (installs packages and starts the server)"
command -v dpkg-query >/dev/null || die "needs a Debian-based machine (dpkg, apt-get)"

if ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q 'install ok installed'; then
    log "installing PostgreSQL with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends postgresql >&2 || die "apt-get install postgresql failed"
fi
command -v pg_lsclusters >/dev/null || die "postgresql-common is missing after the install"

# The newest server version installed; a `main` cluster of any version is reused.
version=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null |
    awk -F/ '{print $5}' | sort -V | tail -n 1)
[ -n "$version" ] || die "no PostgreSQL server binaries under /usr/lib/postgresql"
existing=$(pg_lsclusters -h | awk -v c="$CLUSTER" '$2 == c {print $1}' | sort -V | tail -n 1)
if [ -n "$existing" ]; then
    version=$existing
else
    log "creating cluster $version/$CLUSTER"
    pg_createcluster "$version" "$CLUSTER" >&2 || die "pg_createcluster $version $CLUSTER failed"
fi

# A drop-in (Debian's postgresql.conf ends with include_dir 'conf.d'): 127.0.0.1 only.
dropin=/etc/postgresql/$version/$CLUSTER/conf.d/mmsearch-test.conf
want="listen_addresses = '127.0.0.1'"
restart=no
if [ "$(cat "$dropin" 2>/dev/null || true)" != "$want" ]; then
    install -d -o postgres -g postgres "$(dirname "$dropin")"
    echo "$want" >"$dropin"
    chown postgres:postgres "$dropin"
    restart=yes
fi

read -r port status < <(pg_lsclusters -h | awk -v v="$version" -v c="$CLUSTER" '$1 == v && $2 == c {print $3, $4}') ||
    die "cluster $version/$CLUSTER is not listed by pg_lsclusters"
case "$status" in
    online*)
        if [ "$restart" = yes ]; then
            log "restarting cluster $version/$CLUSTER on 127.0.0.1:$port"
            pg_ctlcluster "$version" "$CLUSTER" restart >&2 || die "cannot restart cluster $version/$CLUSTER"
        fi
        ;;
    *)
        log "starting cluster $version/$CLUSTER on 127.0.0.1:$port"
        install -d -o postgres -g postgres -m 2775 /var/run/postgresql
        pg_ctlcluster "$version" "$CLUSTER" start >&2 ||
            die "cannot start cluster $version/$CLUSTER; see /var/log/postgresql/postgresql-$version-$CLUSTER.log"
        ;;
esac
pg_isready -q -h 127.0.0.1 -p "$port" -t 30 || die "the server on 127.0.0.1:$port does not answer"

# Role (password always reset, so the URL below is right) and database owned by it, as the superuser.
(cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres \
    -v user="$PG_USER" -v pw="$PG_PASSWORD" -v db="$PG_DB") >&2 <<'SQL' || die "cannot create role/database"
SELECT format('CREATE ROLE %I LOGIN', :'user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" WITH LOGIN PASSWORD :'pw';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL

PGPASSWORD=$PG_PASSWORD psql -X -q -w -h 127.0.0.1 -p "$port" -U "$PG_USER" -d "$PG_DB" -c 'SELECT 1' >/dev/null ||
    die "cannot log in as $PG_USER to $PG_DB on 127.0.0.1:$port with the password"
log "PostgreSQL $version ready on 127.0.0.1:$port, database $PG_DB"
echo "postgresql+psycopg://$PG_USER:$PG_PASSWORD@127.0.0.1:$port/$PG_DB"
