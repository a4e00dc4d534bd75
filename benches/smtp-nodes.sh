#!/usr/bin/env bash
# SMTP delivery throughput of letterbox with one node and with two nodes on one PostgreSQL
# database, and with one node on SQLite for reference, on this machine, in one run.
#
# SESSIONS concurrent persistent SMTP sessions (benches/smtp_load.rs) send MESSAGES messages
# of 5 KB each to you@localhost, the same load as benches/smtp-vs-postfix.sh; with ACCOUNTS=N
# the messages go round-robin to N accounts (you@localhost, bench2@localhost, ...), one
# recipient per message, which is what a company's inbound mail looks like to the store.
# Every reply must be 250 (354 for DATA). Three cases, each on a fresh store:
#   sqlite-1-node      one node, SQLite in a new directory under BENCH_TMPDIR
#   postgres-1-node    one node on a new PostgreSQL database
#   postgres-2-nodes   two nodes on another new database, each with its own data_dir and
#                      SMTP port; the load generator connects its sessions round-robin to
#                      both ports (one client, one clock) and the nodes share one message
#                      counter, so the faster node takes more messages (printed per node)
# Printed: delivered messages per second for each case, and the ratios. "Delivered" is
# "accepted": letterbox sends the 250 after DATA only once the message is committed and
# durable (SQLite: WAL fsynced, synchronous=FULL; PostgreSQL: the commit is flushed to its
# WAL, with the server's fsync and synchronous_commit as printed). After each case the
# script checks that the store holds exactly MESSAGES messages (SELECT count(*) FROM
# mailbox_messages).
#
# Read the two-node figure with care: on a 2-core machine both nodes, PostgreSQL and the
# load generator (one thread) all compete for the same two cores, so a second node adds
# processes, not hardware. Write transactions lock the accounts they change
# (storage/src/writer.rs, storage/src/locks.rs): with one recipient every delivery of
# every node takes turns on one account's lock; with ACCOUNTS=8 they run side by side. PostgreSQL's data directory is wherever
# its server keeps it (printed), not BENCH_TMPDIR: check that both are on the same disk.
#
# letterbox checks SPF, DKIM, DMARC and ARC on every message with DNS in offline mode
# (`[dns] offline`: every lookup answers "no record" at once).
#
# Run from anywhere, with a PostgreSQL server that lets POSTGRES create databases:
#   benches/smtp-nodes.sh
#   SESSIONS=32 MESSAGES=20000 benches/smtp-nodes.sh
# Environment:
#   SESSIONS (16), MESSAGES (5000)   the load, the same in every case
#   ACCOUNTS (1)                     recipients (accounts) the messages are spread over
#   TARGETS ("sqlite postgres-1 postgres-2")   run only some cases, e.g. TARGETS=postgres-2
#   POSTGRES (postgres://postgres@127.0.0.1:5432)   the PostgreSQL server, without a database;
#                                    the script connects to its `postgres` database to
#                                    CREATE and DROP lbbench_<pid>_1 and lbbench_<pid>_2
#   BENCH_TMPDIR (/var/tmp)          SQLite data, logs and configs; on a tmpfs fsync costs
#                                    nothing and the SQLite figure is moot
#   KEEP=1                           keep the temporary directory and the databases
#   CARGO_TARGET_DIR                 where cargo builds (as cargo itself reads it)
# The exit trap stops the nodes it started and drops the databases it made (unless KEEP=1).
set -euo pipefail

SESSIONS=${SESSIONS:-16}
MESSAGES=${MESSAGES:-5000}
ACCOUNTS=${ACCOUNTS:-1}
TARGETS=${TARGETS:-"sqlite postgres-1 postgres-2"}
POSTGRES=${POSTGRES:-postgres://postgres@127.0.0.1:5432}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}
KEEP=${KEEP:-0}
MESSAGE_SIZE=5120
RECIPIENT=you@localhost
# How long a node may take to start listening.
STARTUP_TIMEOUT=60

BENCH_NAME=smtp-nodes
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

positive_integers SESSIONS MESSAGES ACCOUNTS
# The recipients: the account every node makes at its first start, then bench2..benchN.
RECIPIENTS=$RECIPIENT
for ((i = 2; i <= ACCOUNTS; i++)); do
    RECIPIENTS+=",bench$i@localhost"
done
wants sqlite || wants postgres-1 || wants postgres-2 ||
    die "TARGETS names none of sqlite, postgres-1, postgres-2"
POSTGRES=${POSTGRES%/}

# --- PostgreSQL ----------------------------------------------------------------------------

# pg DATABASE SQL: runs SQL in DATABASE on the POSTGRES server, prints the bare result.
pg() {
    psql -X -q -A -t -v ON_ERROR_STOP=1 "$POSTGRES/$1" -c "$2"
}

if wants postgres-1 || wants postgres-2; then
    command -v psql >/dev/null || die "psql not found (Debian: postgresql-client)"
    pg postgres "SELECT 1" >/dev/null || die "cannot connect to $POSTGRES/postgres"
    PG_SETTINGS="postgres $(pg postgres "SHOW server_version" | cut -d' ' -f1)"
    PG_SETTINGS+=" fsync=$(pg postgres "SHOW fsync")"
    PG_SETTINGS+=" synchronous_commit=$(pg postgres "SHOW synchronous_commit")"
    PG_SETTINGS+=" data in $(pg postgres "SHOW data_directory" 2>/dev/null || echo '(not shown)')"
fi

# The databases this run made, dropped by the exit trap.
DATABASES=()

# create_database NAME: a new, empty database.
create_database() {
    DATABASES+=("$1")
    log "creating database $1"
    pg postgres "CREATE DATABASE $1" || die "cannot create database $1"
}

drop_databases() {
    local db
    for db in "${DATABASES[@]}"; do
        if [[ $KEEP == 1 ]]; then
            log "kept database $db"
        else
            # FORCE (PostgreSQL >= 13): a node that did not stop must not keep it alive.
            pg postgres "DROP DATABASE IF EXISTS $db WITH (FORCE)" || log "could not drop database $db"
        fi
    done
    DATABASES=()
}

# --- Nodes ---------------------------------------------------------------------------------

# The nodes running now. lib.sh's start_letterbox tracks one LETTERBOX_PID; each pid is
# moved here at once, so the exit trap stops every node, not only the last one.
NODE_PIDS=()

stop_servers() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${NODE_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    NODE_PIDS=()
    drop_databases
}

make_workdir letterbox-nodes
build_letterbox
LOAD=$(build_load smtp_load)

# start_node DIR: starts letterbox on DIR/letterbox.toml until `ready`; its SMTP address in
# NODE_ADDRESS. Nodes start one after another: the first makes the first account, the
# next ones find it.
start_node() {
    start_letterbox "$1"
    NODE_PIDS+=("$LETTERBOX_PID")
    LETTERBOX_PID=
    NODE_ADDRESS=$(sed -n 's/^listening smtp //p' "$1/stdout" | head -n 1)
    [[ -n $NODE_ADDRESS ]] || die "letterbox printed no 'listening smtp' line ($1/stdout)"
}

# add_accounts DIR: bench2..benchACCOUNTS@localhost in the store of the node configured in
# DIR (once per store: nodes on one database share them).
add_accounts() {
    local i
    for ((i = 2; i <= ACCOUNTS; i++)); do
        echo "bench-password-$i" | "$WORK/bin/letterbox" --config "$1/letterbox.toml" \
            user add "bench$i@localhost" --password-stdin >/dev/null ||
            die "cannot add bench$i@localhost"
    done
}

# stop_nodes: SIGTERM to every node, and a clean exit is required of each.
stop_nodes() {
    local pid status
    for pid in "${NODE_PIDS[@]}"; do
        kill -TERM "$pid"
    done
    for pid in "${NODE_PIDS[@]}"; do
        status=0
        wait "$pid" || status=$?
        ((status == 0)) || die "letterbox (pid $pid) exited with status $status on SIGTERM"
    done
    NODE_PIDS=()
}

# --- Load ----------------------------------------------------------------------------------

# field KEY FILE: the value of KEY=value in the load generator's report line.
field() {
    sed -n "/^messages=/ { s/^.* $1=\([^ ]*\).*/\1/p; s/^$1=\([^ ]*\).*/\1/p }" "$2" | head -n 1
}

# run_load NAME ADDRESS...: drives the load over the addresses (sessions round-robin), keeps
# its report in $WORK/NAME.load.
run_load() {
    local name=$1 address
    local addrs=()
    shift
    for address in "$@"; do
        addrs+=(--addr "$address")
    done
    log "$name: $SESSIONS sessions, $MESSAGES messages of $MESSAGE_SIZE bytes to $RECIPIENTS at $*"
    "$LOAD" "${addrs[@]}" --to "$RECIPIENTS" --from "bench@example.org" \
        --sessions "$SESSIONS" --messages "$MESSAGES" --message-size "$MESSAGE_SIZE" |
        tee "$WORK/$name.load"
    [[ $(field messages "$WORK/$name.load") == "$MESSAGES" ]] ||
        die "$name: the load generator did not report $MESSAGES messages"
}

# check_stored NAME COUNT: a check, not a measurement: the store holds every accepted
# message and nothing else.
check_stored() {
    [[ -n $2 ]] || die "$1: could not count the stored messages"
    (($2 == MESSAGES)) || die "$1: accepted $MESSAGES messages but the store holds $2"
    log "$1: the store holds $2 messages"
    STORED[$1]=$2
}

declare -A DELIVERED SECONDS_TAKEN STORED PER_NODE

# record NAME: the figures of the load report $WORK/NAME.load.
record() {
    DELIVERED[$1]=$(field messages_per_second "$WORK/$1.load")
    SECONDS_TAKEN[$1]=$(field seconds "$WORK/$1.load")
    # With several nodes: "127.0.0.1:P 8 sessions 2504 messages, ..." from the addr= lines.
    PER_NODE[$1]=$(sed -n 's/^addr=\([^ ]*\) sessions=\([0-9]*\) messages=\([0-9]*\)$/\1 \2 sessions \3 messages/p' \
        "$WORK/$1.load" | paste -sd, - | sed 's/,/, /g')
}

# --- Cases ---------------------------------------------------------------------------------

run_sqlite() {
    local name=sqlite-1-node dir=$WORK/sqlite-1-node/node1 db stored query
    write_smtp_config "$dir" ""
    start_node "$dir"
    add_accounts "$dir"
    run_load "$name" "$NODE_ADDRESS"
    stop_nodes
    query="SELECT count(*) FROM mailbox_messages"
    db=$dir/data/letterbox.sqlite
    if command -v sqlite3 >/dev/null; then
        stored=$(sqlite3 "$db" "$query" 2>/dev/null || true)
    else
        stored=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' \
            "$db" "$query" 2>/dev/null || true)
    fi
    check_stored "$name" "$stored"
    record "$name"
}

# run_postgres NAME NODES DATABASE: NODES nodes on the new DATABASE, the load over all.
run_postgres() {
    local name=$1 nodes=$2 db=$3 i
    local addresses=()
    create_database "$db"
    for i in $(seq 1 "$nodes"); do
        write_smtp_config "$WORK/$name/node$i" "$POSTGRES/$db"
        start_node "$WORK/$name/node$i"
        if ((i == 1)); then add_accounts "$WORK/$name/node$i"; fi
        addresses+=("$NODE_ADDRESS")
    done
    run_load "$name" "${addresses[@]}"
    stop_nodes
    check_stored "$name" "$(pg "$db" "SELECT count(*) FROM mailbox_messages" || true)"
    record "$name"
}

# --- Run -----------------------------------------------------------------------------------
# Other work on this machine (and on the PostgreSQL server) skews every figure: the load
# average is printed with them.
LOADAVG_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
if wants sqlite; then run_sqlite; fi
if wants postgres-1; then run_postgres postgres-1-node 1 "lbbench_$$_1"; fi
if wants postgres-2; then run_postgres postgres-2-nodes 2 "lbbench_$$_2"; fi

filesystem=$(df -T "$WORK" | awk 'NR == 2 { print $2 }')
echo
echo "SESSIONS=$SESSIONS MESSAGES=$MESSAGES ACCOUNTS=$ACCOUNTS message_bytes=$MESSAGE_SIZE cores=$(nproc)" \
    "loadavg_1min before=$LOADAVG_BEFORE after=$(cut -d' ' -f1 /proc/loadavg)"
echo "sqlite data on $filesystem ($BENCH_TMPDIR)${PG_SETTINGS:+; $PG_SETTINGS}"
for name in sqlite-1-node postgres-1-node postgres-2-nodes; do
    [[ -n ${DELIVERED[$name]:-} ]] || continue
    printf '%-17s delivered_per_second=%s (%ss; %s messages in the store%s)\n' "$name:" \
        "${DELIVERED[$name]}" "${SECONDS_TAKEN[$name]}" "${STORED[$name]}" \
        "${PER_NODE[$name]:+; per node: ${PER_NODE[$name]}}"
done
if wants postgres-1 && wants postgres-2; then
    echo "ratio postgres-2-nodes/postgres-1-node: delivered=$(ratio "${DELIVERED[postgres-2-nodes]}" "${DELIVERED[postgres-1-node]}")"
fi
if wants sqlite && wants postgres-1; then
    echo "ratio postgres-1-node/sqlite-1-node: delivered=$(ratio "${DELIVERED[postgres-1-node]}" "${DELIVERED[sqlite-1-node]}")"
fi
if wants sqlite && wants postgres-2; then
    echo "ratio postgres-2-nodes/sqlite-1-node: delivered=$(ratio "${DELIVERED[postgres-2-nodes]}" "${DELIVERED[sqlite-1-node]}")"
fi
