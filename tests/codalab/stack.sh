#!/usr/bin/env bash
# A real CodaLab 1.7.5 stack on loopback, without docker-compose: MariaDB, cl-ws-server, cl-server,
# cl-bundle-manager and cl-worker (Docker runtime), from codalab==1.7.5 in its own Python 3.9 venv.
#
#   tests/codalab/stack.sh start     install what is missing, build what is missing, start, wait for the worker
#   tests/codalab/stack.sh stop      stop every process it started (state kept: the next start is fast)
#   tests/codalab/stack.sh purge     stop and delete the DB, bundle store and worker state (venv/image kept)
#   tests/codalab/stack.sh docker    only dockerd + the test image (for tests/docker)
#   tests/codalab/stack.sh env       print the variables a `cl` client needs (source it: eval "$(... env)")
#
# Idempotent: what is built (venv, rootfs, image, DB) is kept in $CODALITE_STACK_DIR
# (default /var/cache/codalite-stack) and reused; running processes are left alone.
# Facts and pitfalls: shared/reference/codalab-stack.md.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STACK_DIR="${CODALITE_STACK_DIR:-/var/cache/codalite-stack}"
REST_PORT="${CLSTACK_REST_PORT:-2900}"
WS_PORT="${CLSTACK_WS_PORT:-2901}"
DB_PORT="${CLSTACK_DB_PORT:-3307}"
ROOT_PASSWORD="${CLSTACK_ROOT_PASSWORD:-codalab}"
TEST_USER="${CLSTACK_TEST_USER:-tester}"
TEST_PASSWORD="${CLSTACK_TEST_PASSWORD:-tester}"
IMAGE="${CLSTACK_IMAGE:-codalite-test/py3-bookworm:latest}"
VENV="$STACK_DIR/venv"
PY="$VENV/bin/python"
export PYTHONWARNINGS=ignore

log() { echo "[stack $(date +%H:%M:%S)] $*" >&2; }
die() { echo "stack.sh: $*" >&2; exit 1; }

alive() { [ -f "$STACK_DIR/pids/$1.pid" ] && kill -0 "$(cat "$STACK_DIR/pids/$1.pid")" 2>/dev/null; }

# Start a daemon detached from our stdout (a held pipe would keep callers waiting forever).
daemon() {
  local name=$1; shift
  if alive "$name"; then return 0; fi
  (cd "$STACK_DIR"; exec setsid "$@") </dev/null >>"$STACK_DIR/logs/$name.log" 2>&1 &
  echo $! >"$STACK_DIR/pids/$name.pid"
}

server_env() {
  export CODALAB_HOME="$STACK_DIR/home"
  export CODALAB_WS_SERVER_URL="ws://127.0.0.1:$WS_PORT"
}

install_packages() {
  local need=()
  for p in mariadb-server mariadb-client libmariadb-dev libmariadb-dev-compat pkg-config debootstrap rsync docker.io; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  log "apt-get install ${need[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null
}

build_venv() {
  if [ -f "$VENV/.complete" ]; then return 0; fi
  log "creating the codalab 1.7.5 venv (Python 3.9; about 3 min)"
  local py39
  py39="${CLSTACK_PYTHON39:-$( (pyenv root 2>/dev/null || echo "$HOME/.pyenv") )/versions/3.9.18/bin/python}"
  [ -x "$py39" ] || py39="$(command -v python3.9 || true)"
  [ -x "$py39" ] || die "no Python 3.9 found (pyenv 3.9.18 or python3.9); set CLSTACK_PYTHON39"
  [ -x "$PY" ] || "$py39" -m venv "$VENV"
  "$VENV/bin/pip" install -q codalab==1.7.5 gunicorn==20.0.4 alembic==1.4.3 mysqlclient==1.4.1 2>&1 \
    | grep -v -e "is ignored: it is neither" -e DEPRECATION || true
  "$PY" -c "import codalab, MySQLdb, gunicorn" || die "the codalab venv is incomplete ($VENV)"
  # ws://ws-server:<port> is hard-coded (the compose host name): read it from the environment instead
  local mgr
  mgr="$("$PY" -c 'import codalab.lib.codalab_manager as m; print(m.__file__)')"
  sed -i 's|return f"ws://ws-server:{ws_port}"|return os.environ.get("CODALAB_WS_SERVER_URL", f"ws://ws-server:{ws_port}")|' "$mgr"
  grep -q CODALAB_WS_SERVER_URL "$mgr" || die "could not patch $mgr"
  touch "$VENV/.complete"
}

start_dockerd() {
  if docker info >/dev/null 2>&1; then return 0; fi
  log "starting dockerd"
  mkdir -p "$STACK_DIR/logs" "$STACK_DIR/pids"
  if ! alive dockerd; then
    (exec setsid dockerd) </dev/null >>"$STACK_DIR/logs/dockerd.log" 2>&1 &
    echo $! >"$STACK_DIR/pids/dockerd.pid"
  fi
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && return 0; sleep 0.5; done
  tail -20 "$STACK_DIR/logs/dockerd.log" >&2
  die "dockerd did not come up (log: $STACK_DIR/logs/dockerd.log)"
}

build_image() {
  CODALITE_STACK_DIR="$STACK_DIR" bash "$REPO/images/test/build.sh" "$IMAGE" >&2
  docker tag "$IMAGE" codalab/default-cpu:latest
}

start_mariadb() {
  local data="$STACK_DIR/mysql/data" run="$STACK_DIR/mysql/run"
  mkdir -p "$data" "$run"
  chown -R mysql:mysql "$STACK_DIR/mysql"
  if [ ! -d "$data/mysql" ]; then
    log "initializing MariaDB"
    mariadb-install-db --no-defaults --datadir="$data" --user=mysql --auth-root-authentication-method=socket \
      >>"$STACK_DIR/logs/mariadb-install.log" 2>&1
  fi
  daemon mariadb mariadbd --no-defaults --datadir="$data" --socket="$run/mysqld.sock" --pid-file="$run/mysqld.pid" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --user=mysql --sql-mode=NO_ENGINE_SUBSTITUTION \
    --character-set-server=utf8 --innodb-buffer-pool-size=64M --skip-name-resolve
  for _ in $(seq 120); do
    mariadb --no-defaults -S "$run/mysqld.sock" -u root -e "SELECT 1" >/dev/null 2>&1 && break; sleep 0.25
  done
  mariadb --no-defaults -S "$run/mysqld.sock" -u root -e "
    CREATE DATABASE IF NOT EXISTS codalab_bundles;
    CREATE USER IF NOT EXISTS 'codalab'@'%' IDENTIFIED BY 'codalab';
    CREATE USER IF NOT EXISTS 'codalab'@'localhost' IDENTIFIED BY 'codalab';
    GRANT ALL ON codalab_bundles.* TO 'codalab'@'%';
    GRANT ALL ON codalab_bundles.* TO 'codalab'@'localhost';" \
    || die "MariaDB did not come up (log: $STACK_DIR/logs/mariadb.log)"
}

write_config() {
  mkdir -p "$STACK_DIR/home" "$STACK_DIR/cli-home" "$STACK_DIR/worker" "$STACK_DIR/worker-home"
  "$PY" - "$STACK_DIR" "$REST_PORT" "$WS_PORT" "$DB_PORT" <<'EOF'
import json, os, sys
d, rest, ws, db = sys.argv[1:]
def merge(path, update):
    cfg = json.load(open(path)) if os.path.exists(path) else {}
    for k, v in update.items():
        cfg.setdefault(k, {}).update(v) if isinstance(v, dict) else cfg.__setitem__(k, v)
    json.dump(cfg, open(path, "w"), indent=2)
url = f"http://127.0.0.1:{rest}"
merge(f"{d}/home/config.json", {
    "server": {"engine_url": f"mysql://codalab:codalab@127.0.0.1:{db}/codalab_bundles",
               "rest_host": "127.0.0.1", "rest_port": int(rest), "class": "MySQLModel",
               "auth": {"class": "RestOAuthHandler"}, "verbose": 1,
               "default_user_info": {"disk_quota": "1t", "time_quota": "1000y", "parallel_run_quota": 100,
                                     "edu_disk_quota": "1t", "edu_time_quota": "1000y"}},
    "ws-server": {"ws_port": int(ws)},
    "cli": {"default_address": url, "verbose": 1},
    "aliases": {"localhost": url},
    "workers": {"default_cpu_image": "codalab/default-cpu:latest", "default_gpu_image": "codalab/default-gpu:latest"},
})
cfg = json.load(open(f"{d}/home/config.json"))
if not cfg["server"].get("secret_key"):  # what CodaLabManager.init_config generates, made once
    import secrets
    cfg["server"]["secret_key"] = secrets.token_urlsafe(36)
    json.dump(cfg, open(f"{d}/home/config.json", "w"), indent=2)
for home in ("cli-home", "worker-home"):
    merge(f"{d}/{home}/config.json", {"cli": {"default_address": url, "verbose": 1},
                                      "aliases": {"localhost": url}, "server": {}})
EOF
}

init_db() {
  [ -f "$STACK_DIR/home/.db-initialized" ] && return 0
  log "creating the CodaLab tables, root user and test user"
  server_env
  (cd "$VENV/lib/python3.9/site-packages" && "$PY" scripts/create-root-user.py "$ROOT_PASSWORD") \
    >>"$STACK_DIR/logs/init.log" 2>&1 || { tail -20 "$STACK_DIR/logs/init.log" >&2; die "create-root-user failed"; }
  # what `alembic stamp head` writes (the migrations are not in the wheel)
  mariadb --no-defaults -S "$STACK_DIR/mysql/run/mysqld.sock" -u root codalab_bundles -e "
    CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
    DELETE FROM alembic_version; INSERT INTO alembic_version VALUES ('db3ca94867b3');"
  "$PY" - "$TEST_USER" "$TEST_PASSWORD" >>"$STACK_DIR/logs/init.log" 2>&1 <<'EOF'
import sys
from codalab.lib.codalab_manager import CodaLabManager
name, password = sys.argv[1:]
model = CodaLabManager().model()
if not model.get_user(username=name, check_active=False):
    model.add_user(name, name + "@localhost", "Test", "User", password, "", is_verified=True, has_access=True)
EOF
  touch "$STACK_DIR/home/.db-initialized"
}

start_servers() {
  server_env
  daemon ws-server "$VENV/bin/cl-ws-server" --port "$WS_PORT"
  daemon rest-server "$VENV/bin/cl-server" --processes 1 --threads 50
  daemon bundle-manager "$VENV/bin/cl-bundle-manager"
  for _ in $(seq 240); do
    curl -s -o /dev/null "http://127.0.0.1:$REST_PORT/rest/worksheets?specs=/" && return 0; sleep 0.25
  done
  tail -30 "$STACK_DIR/logs/rest-server.log" >&2
  die "cl-server did not answer on 127.0.0.1:$REST_PORT"
}

start_worker() {
  printf '%s\n%s\n' codalab "$ROOT_PASSWORD" >"$STACK_DIR/worker.passwd"
  chmod 600 "$STACK_DIR/worker.passwd"
  if ! alive worker; then date +%s >"$STACK_DIR/worker.started"; fi
  CODALAB_HOME="$STACK_DIR/worker-home" daemon worker "$VENV/bin/cl-worker" \
    --server "http://127.0.0.1:$REST_PORT" --ws-server "ws://127.0.0.1:$WS_PORT" \
    --work-dir "$STACK_DIR/worker" --network-prefix clstack_worker_network --id clstack-worker-1 \
    --gpuset NONE --checkin-frequency-seconds 1 --password-file "$STACK_DIR/worker.passwd" --verbose
  # ready when the worker has checked in since it started (worker rows persist across restarts)
  local since; since="$(cat "$STACK_DIR/worker.started")"
  for _ in $(seq 240); do
    if "$PY" - "$REST_PORT" "$ROOT_PASSWORD" "$since" <<'EOF' 2>/dev/null; then return 0; fi
import base64, json, sys, urllib.parse, urllib.request, datetime
port, password, since = sys.argv[1], sys.argv[2], float(sys.argv[3])
base = f"http://127.0.0.1:{port}/rest"
req = urllib.request.Request(base + "/oauth2/token", data=urllib.parse.urlencode(
    {"grant_type": "password", "username": "codalab", "password": password}).encode(),
    headers={"Authorization": "Basic " + base64.b64encode(b"codalab_cli_client:").decode()})
token = json.load(urllib.request.urlopen(req))["access_token"]
req = urllib.request.Request(base + "/workers/info", headers={"Authorization": "Bearer " + token})
workers = json.load(urllib.request.urlopen(req))["data"]
def ts(w):
    c = w.get("checkin_time")
    if isinstance(c, (int, float)):
        return c
    return datetime.datetime.fromisoformat(str(c)).replace(tzinfo=datetime.timezone.utc).timestamp()
ok = any(w["worker_id"] == "clstack-worker-1" and ts(w) >= since - 2 for w in workers)
sys.exit(0 if ok else 1)
EOF
    alive worker || { tail -30 "$STACK_DIR/logs/worker.log" >&2; die "cl-worker exited"; }
    sleep 0.5
  done
  tail -30 "$STACK_DIR/logs/worker.log" >&2
  die "cl-worker did not check in"
}

write_env() {
  cat >"$STACK_DIR/env.sh" <<EOF
export CODALAB_HOME="$STACK_DIR/cli-home"
export CODALAB_SESSION=codalite-tests
export CODALAB_USERNAME="$TEST_USER"
export CODALAB_PASSWORD="$TEST_PASSWORD"
export PYTHONWARNINGS=ignore
export CLSTACK_URL="http://127.0.0.1:$REST_PORT"
export CLSTACK_CL="$VENV/bin/cl"
export CLSTACK_IMAGE="$IMAGE"
EOF
}

start() {
  local t0=$SECONDS
  mkdir -p "$STACK_DIR/logs" "$STACK_DIR/pids"
  install_packages
  build_venv
  start_dockerd
  build_image
  start_mariadb
  write_config
  init_db
  start_servers
  start_worker
  write_env
  log "stack ready in $((SECONDS - t0)) s: REST http://127.0.0.1:$REST_PORT (users codalab, $TEST_USER); env: $STACK_DIR/env.sh"
}

stop_one() {
  local name=$1 pidfile="$STACK_DIR/pids/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

stop() {
  # the worker first (it cleans up its containers and networks), then the servers, then the DB
  stop_one worker
  stop_one bundle-manager
  stop_one rest-server
  stop_one ws-server
  stop_one mariadb
  log "stopped (dockerd, if this script started it, keeps running: stop it with '$0 stop-docker')"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  stop-docker) stop_one dockerd ;;
  purge)
    stop
    rm -rf "$STACK_DIR/mysql" "$STACK_DIR/home" "$STACK_DIR/cli-home" "$STACK_DIR/worker" "$STACK_DIR/worker-home"
    for n in general ext int; do docker network rm "clstack_worker_network_$n" >/dev/null 2>&1 || true; done
    ;;
  env) cat "$STACK_DIR/env.sh" ;;
  docker)  # only what the Docker runtime tests need: an engine and the test image
    mkdir -p "$STACK_DIR/logs" "$STACK_DIR/pids"
    install_packages
    start_dockerd
    build_image
    echo "$IMAGE"
    ;;
  *) die "usage: $0 start|stop|purge|docker|env|stop-docker" ;;
esac
