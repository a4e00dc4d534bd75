#!/usr/bin/env bash
# SMTP throughput, letterbox against Postfix, on this machine, in one run.
#
# SESSIONS concurrent SMTP sessions (benches/smtp_load.rs) send MESSAGES messages of 5 KB
# each, first to letterbox, then to Postfix, each on a fresh instance listening on a
# free 127.0.0.1 port with its data in one new temporary directory. Every reply must be 250
# (354 for DATA). Printed per server: messages per second accepted, and messages per second
# delivered durably into the mailbox; then the ratios letterbox/Postfix.
#
# What "durable" means on each side:
#   letterbox: the 250 after DATA is sent only after the message is committed to its SQLite
#              store and the WAL is fsynced (synchronous=FULL); the message is then in the
#              INBOX. So delivered = accepted, and both figures are the same. (Concurrent
#              deliveries share one commit and one fsync: group commit.)
#   Postfix:   the 250 is sent after cleanup has fsynced the queue file; delivery into the
#              Maildir (virtual(8): write, fsync, rename into new/) happens later, so the
#              script also waits until every message is a file in new/ and reports
#              delivered/s = MESSAGES / (newest file's mtime - start of the load).
#              Postfix keeps its default fsync behaviour; nothing is tuned for speed.
#   letterbox checks SPF, DKIM, DMARC and ARC on every message with DNS in offline mode
#              (`[dns] offline`: every lookup answers "no record" at once); Postfix checks none.
# Two modes (MODE):
#   persistent              each session keeps one connection for all its messages (the
#                           default: 16 sessions); both clocks start once every session is
#                           connected and has said EHLO.
#   connection-per-message  each message comes on a new connection (connect, EHLO, MAIL,
#                           RCPT, DATA, QUIT), as most Internet mail arrives and as Postfix's
#                           smtp-source sends by default (10 sessions); both clocks start
#                           before the first connection.
#
# Run as root (Postfix needs it), from anywhere:
#   benches/smtp-vs-postfix.sh
#   MODE=connection-per-message benches/smtp-vs-postfix.sh
#   SESSIONS=32 MESSAGES=20000 benches/smtp-vs-postfix.sh
# Environment:
#   MODE (persistent)                persistent or connection-per-message, as above
#   SESSIONS (16, or 10 with a connection per message), MESSAGES (5000)   the load
#   TARGETS ("letterbox postfix")    run only one side, e.g. TARGETS=postfix
#   BENCH_TMPDIR (/var/tmp)          where the data of both servers lives: the same disk for
#                                    both; on a tmpfs fsync costs nothing and the test is moot
#   DELIVERY_TIMEOUT (600)           seconds to wait for Postfix to fill the Maildir
#   KEEP=1                           keep the temporary directory (logs, Maildir, SQLite)
#   CARGO_TARGET_DIR                 where cargo builds (as cargo itself reads it)
#
# Postfix runs as a private instance (`postfix -c DIR`, as root it needs no
# /etc/postfix/main.cf nor alternate_config_directories): chroot off in master.cf, its log
# in DIR/maillog through the postlog service (maillog_file, Postfix >= 3.4), which must
# match maillog_file_prefixes (default "/var, /dev/stdout": anything else is fatal), the
# queue directory made before `postfix check`, which creates its subdirectories. Postfix
# reports errors only to syslog (absent here), that log, or a terminal: on failure the
# script prints the log's tail.
set -euo pipefail

MODE=${MODE:-persistent}
case $MODE in
    persistent) SESSIONS=${SESSIONS:-16} ;;
    connection-per-message) SESSIONS=${SESSIONS:-10} ;;
    *) echo "smtp-vs-postfix: MODE must be persistent or connection-per-message" >&2; exit 1 ;;
esac
MESSAGES=${MESSAGES:-5000}
TARGETS=${TARGETS:-"letterbox postfix"}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}
DELIVERY_TIMEOUT=${DELIVERY_TIMEOUT:-600}
KEEP=${KEEP:-0}
MESSAGE_SIZE=5120
# How long a server may take to start listening.
STARTUP_TIMEOUT=60

BENCH_NAME=smtp-vs-postfix
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

positive_integers SESSIONS MESSAGES
wants letterbox || wants postfix || die "TARGETS names neither letterbox nor postfix"
[[ $(id -u) == 0 ]] || die "run as root: Postfix's master and delivery agents need it"

# --- Postfix from Debian -------------------------------------------------------------------
if wants postfix && [[ ! -x /usr/sbin/postfix ]]; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt_install postfix
fi

# --- Build ---------------------------------------------------------------------------------
POSTFIX_CONF=
stop_servers() {
    if [[ -n $POSTFIX_CONF ]]; then
        stop_postfix
    fi
}
# The postfix user and the Maildir owner must be able to walk into it.
make_workdir letterbox-bench
if wants letterbox; then
    build_letterbox
fi
LOAD=$(build_load smtp_load)

# --- Helpers -------------------------------------------------------------------------------

# field KEY FILE: the value of KEY=value in the load generator's report line.
field() {
    sed -n "s/^messages=.* $1=\([^ ]*\).*/\1/p; s/^$1=\([^ ]*\).*/\1/p" "$2" | head -n 1
}

# run_load NAME ADDRESS RECIPIENT: drives the load, keeps its report in $WORK/NAME.load.
run_load() {
    local per_message=()
    if [[ $MODE == connection-per-message ]]; then
        per_message=(--connection-per-message)
    fi
    log "$1: $SESSIONS sessions ($MODE), $MESSAGES messages of $MESSAGE_SIZE bytes to $3 at $2"
    "$LOAD" --addr "$2" --to "$3" --from "bench@example.org" \
        --sessions "$SESSIONS" --messages "$MESSAGES" --message-size "$MESSAGE_SIZE" "${per_message[@]}" |
        tee "$WORK/$1.load"
    [[ $(field messages "$WORK/$1.load") == "$MESSAGES" ]] ||
        die "$1: the load generator did not report $MESSAGES messages"
}

# divide A B: A/B with one decimal.
divide() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

# --- letterbox -----------------------------------------------------------------------------
run_letterbox() {
    local dir=$WORK/letterbox address stored
    write_smtp_config "$dir" ""
    start_letterbox "$dir"
    address=$(sed -n 's/^listening smtp //p' "$dir/stdout" | head -n 1)
    [[ -n $address ]] || die "letterbox printed no 'listening smtp' line"

    run_load letterbox "$address" you@localhost
    stop_letterbox "$dir"

    # A check, not a measurement: every accepted message is in the store.
    local query="SELECT count(*) FROM mailbox_messages"
    local db=$dir/data/letterbox.sqlite
    if command -v sqlite3 >/dev/null; then
        stored=$(sqlite3 "$db" "$query" 2>/dev/null || true)
    else
        stored=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' \
            "$db" "$query" 2>/dev/null || true)
    fi
    if [[ -z $stored ]]; then
        log "letterbox: could not count the stored messages ($query)"
    elif ((stored < MESSAGES)); then
        die "letterbox: accepted $MESSAGES messages but its store holds $stored"
    else
        log "letterbox: its store holds $stored messages"
    fi

    LETTERBOX_ACCEPTED=$(field messages_per_second "$WORK/letterbox.load")
    # Durable at 250: delivered is accepted.
    LETTERBOX_DELIVERED=$LETTERBOX_ACCEPTED
}

# --- Postfix -------------------------------------------------------------------------------
stop_postfix() {
    local conf=$POSTFIX_CONF pidfile pid _
    POSTFIX_CONF=
    pidfile=$(postconf -c "$conf" -h queue_directory)/pid/master.pid
    pid=$(tr -d ' \n' <"$pidfile" 2>/dev/null || true)
    postfix -c "$conf" stop >/dev/null 2>&1 || true
    # The master's children are gone when it is: wait for it before removing its files.
    for _ in $(seq 1 100); do
        [[ -n $pid ]] && running "$pid" || return 0
        sleep 0.1
    done
    log "postfix master $pid still running after stop"
}

run_postfix() {
    local dir=$WORK/postfix port
    local maildir=$dir/mail/bench
    local uid gid
    uid=$(id -u nobody)
    gid=$(id -g nobody)
    port=$(free_port) || die "no free port on 127.0.0.1"
    mkdir -p "$dir/conf" "$dir/queue" "$dir/data" "$maildir/new" "$maildir/cur" "$maildir/tmp"
    chown postfix "$dir/data"
    chown -R "$uid:$gid" "$dir/mail"

    cat >"$dir/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = bench.localdomain
mydomain = localdomain
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# Every recipient of bench.test goes to the one Maildir $maildir/.
virtual_mailbox_domains = bench.test
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = static:bench/
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
# One smtpd per session (the default limit is 100 processes per service).
default_process_limit = $((SESSIONS + 10 > 100 ? SESSIONS + 10 : 100))
EOF

    # Debian's master.cf without chroot, without its public smtpd, with ours on 127.0.0.1.
    local template=/usr/share/postfix/master.cf.dist
    [[ -f $template ]] || template=/etc/postfix/master.cf
    [[ -f $template ]] || die "no master.cf template (/usr/share/postfix/master.cf.dist)"
    awk -v listen="127.0.0.1:$port" '
        /^#/ || /^[[:space:]]*$/ { print; next }
        /^[[:space:]]/ { if (!dropped) print; next }   # continuation of the line above
        $2 == "inet" { dropped = 1; next }
        { dropped = 0; $5 = "n"; if ($1 == "postlog") postlog = 1; print }
        END {
            if (!postlog) print "postlog unix-dgram n - n - 1 postlogd"
            print listen " inet n - n - - smtpd"
        }' "$template" >"$dir/conf/master.cf"

    POSTFIX_CONF=$dir/conf
    log "starting postfix on 127.0.0.1:$port"
    postfix -c "$dir/conf" check || {
        tail -n 20 "$dir/maillog" >&2 2>/dev/null || true
        die "postfix check failed"
    }
    postfix -c "$dir/conf" start || {
        tail -n 20 "$dir/maillog" >&2 2>/dev/null || true
        die "postfix start failed"
    }
    local waited=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        ((waited++ < STARTUP_TIMEOUT * 10)) || {
            tail -n 20 "$dir/maillog" >&2 2>/dev/null || true
            die "postfix is not listening on 127.0.0.1:$port after ${STARTUP_TIMEOUT}s"
        }
        sleep 0.1
    done

    run_load postfix "127.0.0.1:$port" bench@bench.test

    log "postfix: waiting for $MESSAGES messages in $maildir/new"
    local delivered=0 deadline=$((SECONDS + DELIVERY_TIMEOUT))
    while :; do
        delivered=$(find "$maildir/new" -maxdepth 1 -type f | wc -l)
        ((delivered < MESSAGES)) || break
        ((SECONDS < deadline)) || {
            tail -n 20 "$dir/maillog" >&2
            die "postfix: only $delivered of $MESSAGES messages delivered after ${DELIVERY_TIMEOUT}s"
        }
        sleep 0.2
    done
    ((delivered == MESSAGES)) || die "postfix: $delivered messages in the Maildir, expected $MESSAGES"
    # virtual(8) writes and fsyncs each file in tmp/ and then renames it into new/, so the
    # newest mtime is when the last message was complete.
    local last started
    last=$(find "$maildir/new" -maxdepth 1 -type f -printf '%T@\n' | sort -n | tail -n 1)
    started=$(field started_unix "$WORK/postfix.load")
    POSTFIX_DELIVERY_SECONDS=$(awk -v a="$last" -v b="$started" 'BEGIN { printf "%.3f", a - b }')
    stop_postfix

    POSTFIX_ACCEPTED=$(field messages_per_second "$WORK/postfix.load")
    POSTFIX_DELIVERED=$(divide "$MESSAGES" "$POSTFIX_DELIVERY_SECONDS")
}

# --- Run -----------------------------------------------------------------------------------
# Other work on this machine skews both figures: the load average is printed with them.
LOADAVG_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
if wants letterbox; then run_letterbox; fi
if wants postfix; then run_postfix; fi

filesystem=$(df -T "$WORK" | awk 'NR == 2 { print $2 }')
echo
echo "MODE=$MODE SESSIONS=$SESSIONS MESSAGES=$MESSAGES message_bytes=$MESSAGE_SIZE cores=$(nproc)" \
    "data on $filesystem ($BENCH_TMPDIR) loadavg_1min before=$LOADAVG_BEFORE after=$(cut -d' ' -f1 /proc/loadavg)"
if wants letterbox; then
    echo "letterbox: accepted_per_second=$LETTERBOX_ACCEPTED delivered_per_second=$LETTERBOX_DELIVERED" \
        "(250 after the SQLite WAL fsync: delivered at acceptance; $(field seconds "$WORK/letterbox.load")s)"
fi
if wants postfix; then
    echo "postfix:   accepted_per_second=$POSTFIX_ACCEPTED delivered_per_second=$POSTFIX_DELIVERED" \
        "(250 after the queue file fsync: $(field seconds "$WORK/postfix.load")s; all in the Maildir after ${POSTFIX_DELIVERY_SECONDS}s)"
fi
if wants letterbox && wants postfix; then
    echo "ratio letterbox/postfix: delivered=$(ratio "$LETTERBOX_DELIVERED" "$POSTFIX_DELIVERED")" \
        "accepted=$(ratio "$LETTERBOX_ACCEPTED" "$POSTFIX_ACCEPTED")"
fi
