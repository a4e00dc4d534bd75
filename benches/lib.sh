# Shared by the bench scripts (benches/imap-vs-dovecot.sh, benches/imap-stress.sh,
# benches/smtp-vs-postfix.sh, benches/smtp-nodes.sh): sourced, not run. The script sets
# BENCH_NAME (for messages), TARGETS, KEEP and STARTUP_TIMEOUT first, and may define
# stop_servers, which the exit trap calls to stop what it started besides letterbox and
# Dovecot (start_dovecot).
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '== %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }

# wants NAME: NAME is one of TARGETS.
wants() { [[ " $TARGETS " == *" $1 "* ]]; }

# apt_install PACKAGE...: from Debian, running `apt-get update` first only when the
# package lists are too old to have them.
apt_install() {
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" || {
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
    }
}

# make_workdir PREFIX: WORK, a new directory under BENCH_TMPDIR that the servers'
# unprivileged users can walk into; removed at exit unless KEEP=1 or the run failed.
LETTERBOX_PID=
DOVECOT_PID=
make_workdir() {
    WORK=$(mktemp -d "$BENCH_TMPDIR/$1.XXXXXX")
    chmod 755 "$WORK"
    mkdir "$WORK/bin"
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local status=$?
    if [[ -n $LETTERBOX_PID ]] && kill -0 "$LETTERBOX_PID" 2>/dev/null; then
        kill -TERM "$LETTERBOX_PID" 2>/dev/null || true
        wait "$LETTERBOX_PID" 2>/dev/null || true
    fi
    if [[ -n $DOVECOT_PID ]]; then
        stop_dovecot || true
    fi
    if declare -F stop_servers >/dev/null; then
        stop_servers || true
    fi
    if [[ $KEEP == 1 || $status != 0 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}

# Cargo's target directory: CARGO_TARGET_DIR, a target-dir in a cargo config, or target/.
target_dir() {
    cargo metadata --format-version 1 --no-deps |
        grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4
}

# build_letterbox: a release letterbox in $WORK/bin. Copied at once: a later
# `cargo bench` build puts its own letterbox binary at the same path.
# LETTERBOX_BIN: a prebuilt binary to use instead (to compare two builds in one run).
build_letterbox() {
    local target
    if [[ -n ${LETTERBOX_BIN:-} ]]; then
        log "using $LETTERBOX_BIN"
        cp "$LETTERBOX_BIN" "$WORK/bin/letterbox"
        return
    fi
    log "building letterbox (release)"
    (cd "$ROOT" && cargo build --release --bin letterbox)
    target=$(cd "$ROOT" && target_dir) || die "cargo metadata failed"
    cp "$target/release/letterbox" "$WORK/bin/letterbox"
}

# positive_integers NAME...: dies unless each variable NAME holds a whole number from 1 up.
positive_integers() {
    local name
    for name in "$@"; do
        [[ ${!name} =~ ^[1-9][0-9]*$ ]] || die "$name must be a positive integer"
    done
}

# build_load NAME [PREBUILT]: builds the load generator benches/NAME.rs and prints its
# executable. PREBUILT, or else LOAD_BIN, when not empty: a prebuilt one instead (no cargo
# run while another build holds the target); it must be executable.
build_load() {
    local load prebuilt=${2:-${LOAD_BIN:-}}
    if [[ -n $prebuilt ]]; then
        [[ -x $prebuilt ]] || die "cannot find the $1 executable"
        echo "$prebuilt"
        return
    fi
    log "building the load generator (cargo bench --no-run --bench $1)"
    load=$(cd "$ROOT" && cargo bench --no-run --bench "$1" --message-format=json |
        grep -o "\"executable\":\"[^\"]*$1-[^\"]*\"" | tail -n 1 | cut -d'"' -f4)
    [[ -x $load ]] || die "cannot find the $1 executable"
    echo "$load"
}

# A 127.0.0.1 port nobody accepts on.
free_port() {
    local port _
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# running PID: the process exists and is not a zombie (a daemon whose parent is gone may
# wait unreaped here).
running() {
    local state
    state=$(sed -E 's/^.*\) (.).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# write_smtp_config DIR STORAGE: DIR/letterbox.toml for the SMTP benchmarks (only an SMTP
# listener, connection limits above the sessions, DNS offline), on STORAGE (a storage URL,
# or empty for SQLite in DIR/data).
write_smtp_config() {
    local dir=$1 storage=$2
    mkdir -p "$dir"
    {
        echo 'hostname = "localhost"'
        echo "data_dir = \"$dir/data\""
        if [[ -n $storage ]]; then
            echo "storage = \"$storage\""
        fi
        cat <<EOF

[listen]
smtp = ["127.0.0.1:0"]
submission = []
submissions = []
imap = []
imaps = []
http = []
managesieve = []

[limits]
max_connections = $((SESSIONS > 1000 ? SESSIONS : 1000))
max_connections_per_ip = $((SESSIONS > 1000 ? SESSIONS : 1000))

# SPF, DKIM, DMARC and ARC still run on every message (Postfix, as set up by
# smtp-vs-postfix.sh, checks none), but answer from the machine: no lookup waits on a
# network this sandbox may lack.
[dns]
offline = true
EOF
    } >"$dir/letterbox.toml"
}

# write_imap_config DIR CONNECTIONS [smtp]: DIR/letterbox.toml for the IMAP benchmarks
# (an IMAP listener, connection limits of at least CONNECTIONS), SQLite in DIR/data. With
# `smtp`, port 25 too (for deliveries during the run), answering from the machine (DNS
# offline: no lookup waits on a network), and a total limit twice as high, so that the
# tenth port 25 keeps for itself takes nothing from IMAP.
write_imap_config() {
    local dir=$1 limit=$(($2 > 1000 ? $2 : 1000)) with_smtp=${3:-}
    local smtp="" total=$limit
    if [[ $with_smtp == smtp ]]; then
        smtp='"127.0.0.1:0"'
        total=$((limit * 2))
    fi
    mkdir -p "$dir"
    cat >"$dir/letterbox.toml" <<EOF
hostname = "localhost"
data_dir = "$dir/data"

[listen]
smtp = [$smtp]
submission = []
submissions = []
imap = ["127.0.0.1:0"]
imaps = []
http = []
managesieve = []

[limits]
max_connections = $total
max_connections_per_ip = $limit
# Every client logs in from 127.0.0.1, many at once: each login in flight counts as a
# failure until it succeeds, and only so many may be in flight per address.
max_auth_failures = $limit
max_auth_in_flight_per_ip = $limit
EOF
    if [[ $with_smtp == smtp ]]; then
        printf '\n[dns]\noffline = true\n' >>"$dir/letterbox.toml"
    fi
}

# start_letterbox DIR [WRAPPER...]: runs $WORK/bin/letterbox with DIR/letterbox.toml until it
# says `ready`; its stdout (listening addresses, the first account's password) in DIR/stdout.
# WRAPPER, if given, is a command that runs it (`valgrind --tool=callgrind`): LETTERBOX_PID
# is then the wrapper's pid (valgrind runs the program in its own process).
start_letterbox() {
    local dir=$1 waited=0
    shift
    log "starting letterbox${*:+ under $*}"
    "$@" "$WORK/bin/letterbox" --config "$dir/letterbox.toml" serve >"$dir/stdout" 2>"$dir/letterbox.log" &
    LETTERBOX_PID=$!
    # The shell may not have made DIR/stdout yet on the first look.
    until grep -qx ready "$dir/stdout" 2>/dev/null; do
        kill -0 "$LETTERBOX_PID" 2>/dev/null || {
            tail -n 20 "$dir/letterbox.log" >&2
            die "letterbox exited before it was ready"
        }
        ((waited++ < STARTUP_TIMEOUT * 10)) || die "letterbox not ready after ${STARTUP_TIMEOUT}s"
        sleep 0.1
    done
}

# start_letterbox_imap DIR CONNECTIONS: letterbox with the IMAP benchmarks' config
# (write_imap_config) in DIR, started; LETTERBOX_IMAP is its IMAP address and
# LETTERBOX_PASSWORD the first account's password, as it printed them.
start_letterbox_imap() {
    write_imap_config "$1" "$2"
    start_letterbox "$1"
    LETTERBOX_IMAP=$(sed -n 's/^listening imap //p' "$1/stdout" | head -n 1)
    [[ -n $LETTERBOX_IMAP ]] || die "letterbox printed no 'listening imap' line"
    LETTERBOX_PASSWORD=$(sed -n 's/^  Password: *//p' "$1/stdout" | head -n 1)
    [[ -n $LETTERBOX_PASSWORD ]] || die "letterbox printed no password for the first account"
}

# stop_letterbox DIR: SIGTERM, and a clean exit is required.
stop_letterbox() {
    kill -TERM "$LETTERBOX_PID"
    wait "$LETTERBOX_PID" || die "letterbox exited with status $? on SIGTERM (see $1/letterbox.log)"
    LETTERBOX_PID=
}

# An existing unprivileged user for Dovecot's internal and login processes: Debian's
# dovecot and dovenull when the package made them, else nobody.
system_user() { if getent passwd "$1" >/dev/null; then echo "$1"; else echo nobody; fi; }

# start_dovecot DIR CONNECTIONS USER HASH: a private Dovecot (its config, state, log and
# Maildir under DIR) with the one account USER, whose passwd-file password is HASH
# (`{SCHEME}...`), and room for CONNECTIONS sessions of it; everything else at Dovecot's
# defaults. Listens on a free 127.0.0.1 port, DOVECOT_PORT; the master is DOVECOT_PID,
# which stop_dovecot stops.
start_dovecot() {
    local dir=$1 connections=$2 user=$3 hash=$4
    local internal_user login_user uid gid waited=0
    internal_user=$(system_user dovecot)
    login_user=$(system_user dovenull)
    uid=$(id -u nobody)
    gid=$(id -g nobody)
    DOVECOT_PORT=$(free_port) || die "no free port on 127.0.0.1"
    mkdir -p "$dir/run" "$dir/state" "$dir/mail"
    chown "$uid:$gid" "$dir/mail"
    printf '%s:%s\n' "$user" "$hash" >"$dir/passwd"
    chown "$internal_user" "$dir/passwd"
    chmod 600 "$dir/passwd"
    cat >"$dir/dovecot.conf" <<EOF
# A private instance for benches/$BENCH_NAME.sh; everything else at Dovecot's defaults.
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = $internal_user
default_login_user = $login_user
# Room for every client and its reconnections (defaults 100 processes and 10 connections).
default_process_limit = $((connections > 100 ? connections : 100))
mail_location = maildir:$dir/mail/%u
passdb {
  driver = passwd-file
  args = username_format=%u $dir/passwd
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$dir/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DOVECOT_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
protocol imap {
  mail_max_userip_connections = $connections
}
EOF
    log "starting dovecot $(dovecot --version | cut -d' ' -f1) on 127.0.0.1:$DOVECOT_PORT"
    dovecot -F -c "$dir/dovecot.conf" >"$dir/stdout" 2>&1 &
    DOVECOT_PID=$!
    until (exec 3<>"/dev/tcp/127.0.0.1/$DOVECOT_PORT") 2>/dev/null; do
        running "$DOVECOT_PID" || {
            cat "$dir/stdout" >&2
            tail -n 20 "$dir/dovecot.log" >&2 2>/dev/null || true
            die "dovecot exited before it listened"
        }
        ((waited++ < STARTUP_TIMEOUT * 10)) || {
            tail -n 20 "$dir/dovecot.log" >&2 2>/dev/null || true
            die "dovecot is not listening on 127.0.0.1:$DOVECOT_PORT after ${STARTUP_TIMEOUT}s"
        }
        sleep 0.1
    done
}

stop_dovecot() {
    local pid=$DOVECOT_PID _
    DOVECOT_PID=
    kill -TERM "$pid" 2>/dev/null || true
    # The master stops its children before it exits: wait for it before removing its files.
    for _ in $(seq 1 100); do
        running "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    log "dovecot master $pid still running after SIGTERM"
}
