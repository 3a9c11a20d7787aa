# Shared by scripts/up and scripts/test: make sure Postgres and Redis are installed, running and reachable,
# and that the application's database role exists. Safe to run again and again.
set -euo pipefail

PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
DB_USER=${DB_USER:-crm}
DB_PASSWORD=${DB_PASSWORD:-crm}
DB_NAME=${DB_NAME:-crm}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root to run: $*"; fi
}

# Runs SQL as the Postgres superuser: over the local socket with peer auth (a fresh Debian install), or
# over TCP as postgres where that is trusted.
psql_super() {
    if command -v runuser >/dev/null && id postgres >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qAt "$@"
    else
        psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"
    fi
}

install_missing_packages() {
    local missing=()
    command -v pg_ctlcluster >/dev/null || missing+=(postgresql postgresql-contrib)
    command -v psql >/dev/null || missing+=(postgresql-client)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v curl >/dev/null || missing+=(curl)
    command -v cc >/dev/null || missing+=(build-essential)
    # PDF exports: their fonts (Latin with accents and CJK), and pdftotext for the tests that read them back.
    [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
    [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || missing+=(fonts-dejavu-core)
    command -v pdftotext >/dev/null || missing+=(poppler-utils)
    # The tests' SMTP server (aiosmtpd, storing what it receives in a Maildir the tests read).
    /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
    # The console's browser tests: Debian's Chromium driven over WebDriver by chromedriver.
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    command -v cargo >/dev/null || die "cargo is not installed: install Rust with rustup (the project pins its version in rust-toolchain.toml)"
}

start_postgres() {
    if pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then return; fi
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    [ -n "$version" ] || die "no Postgres cluster found under /etc/postgresql"
    say "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && return; sleep 0.5; done
    die "PostgreSQL did not become ready on port $PG_PORT"
}

start_redis() {
    if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then return; fi
    say "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    # Postgres is the source of truth for jobs, so Redis needs no persistence of its own.
    as_root redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/crm.log
    for _ in $(seq 1 40); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.25; done
    die "Redis did not become ready on port $REDIS_PORT"
}

# The owner role that migrates and connects (CREATEDB for the test suite's per-test databases), and the
# non-owner crm_app role it switches into for row-level security.
ensure_database() {
    psql_super -d postgres <<SQL
SET client_min_messages TO warning;
DO \$\$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER') THEN
        CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD' CREATEDB;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crm_app') THEN
        CREATE ROLE crm_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    END IF;
END \$\$;
GRANT crm_app TO $DB_USER;
SQL
    if [ "$(psql_super -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
        psql_super -d postgres -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
    fi
}

ensure_services() {
    install_missing_packages
    start_postgres
    start_redis
    ensure_database
}

database_url() { echo "postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/${1:-$DB_NAME}"; }
redis_url() { echo "redis://127.0.0.1:$REDIS_PORT"; }
