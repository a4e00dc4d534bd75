#!/usr/bin/env bash
# IMAP throughput, letterbox against Dovecot, on this machine, in one run.
#
# CLIENTS concurrent IMAP clients (benches/imap_load.rs, built on async-imap) run the same
# fixed command mix, first against letterbox, then against Dovecot, each a fresh instance
# listening on a free 127.0.0.1 port with its data in one new temporary directory: LOGIN
# (a new connection every 10 iterations), SELECT INBOX, FETCH 1:* of flags, UID, envelope and
# three header fields, UID FETCH of three full bodies, SEARCH by subject, by sender and
# UNSEEN, UID STORE +FLAGS and -FLAGS (\Seen), APPEND, UID STORE +FLAGS (\Deleted) and UID
# EXPUNGE of the appended message, LOGOUT. Before the clock, MESSAGES messages of about 5 KB
# are APPENDed to the INBOX. Every command must end in OK with the expected result. Printed
# per server: IMAP commands per second; then the ratio letterbox/Dovecot.
#
# MIX=login-heavy: every iteration is a whole session, as mail checkers and phones make
# them: connect, LOGIN, SELECT, FETCH, SEARCH, STORE, APPEND, EXPUNGE, LOGOUT, again and
# again (imap_load --reconnect-every 1), so the password hash and the session setup weigh
# as much as the commands.
#
# Same password scheme on both: argon2id with the same cost. Letterbox stores argon2id PHC
# strings (the argon2 crate's default cost, m=19456 KiB, t=2, p=1); Dovecot's passwd-file
# gets an {ARGON2ID} hash of the same password with the cost read from letterbox's store
# (that default when letterbox is not run), made with the argon2 reference CLI (Debian
# package argon2) and checked with `doveadm pw -t`. `doveadm pw -s ARGON2ID` itself cannot
# make it: Debian's Dovecot 2.3 takes its cost from libsodium's presets, at least m=65536 KiB
# and t=3, about four times letterbox's work per LOGIN; DOVECOT_HASH=doveadm uses that hash
# instead. Neither server caches authentication (Dovecot's auth_cache_size is 0 by default),
# so every LOGIN verifies the hash. Plain LOGIN without TLS on loopback on both.
#
# Dovecot keeps its defaults apart from what a private instance needs (paths, port, users,
# ssl = no, plaintext auth) and process and per-user connection limits raised above CLIENTS:
# its mail_fsync stays `optimized`, Maildir under the temporary directory.
#
# Run as root (Dovecot's master needs it), from anywhere:
#   benches/imap-vs-dovecot.sh
#   CLIENTS=16 DURATION=60 benches/imap-vs-dovecot.sh
# Environment:
#   CLIENTS (8)                      concurrent IMAP clients
#   DURATION (30) or OPS             seconds of load per server, or IMAP commands per server
#   MESSAGES (200)                   messages in the INBOX
#   MIX (default)                    `login-heavy`: a new connection and LOGIN every iteration
#   TARGETS ("letterbox dovecot")    run only one side, e.g. TARGETS=dovecot
#   BENCH_TMPDIR (/var/tmp)          where the data of both servers lives: the same disk for
#                                    both; on a tmpfs fsync costs nothing and the test is moot
#   DOVECOT_HASH (same)              `doveadm`: Dovecot's own ARGON2ID cost instead (see above)
#   IMAP_LOAD                        a prebuilt imap_load binary instead of building one
#   KEEP=1                           keep the temporary directory (logs, Maildir, SQLite)
#   CARGO_TARGET_DIR                 where cargo builds (as cargo itself reads it)
set -euo pipefail

CLIENTS=${CLIENTS:-8}
DURATION=${DURATION:-30}
OPS=${OPS:-}
MESSAGES=${MESSAGES:-200}
MIX=${MIX:-default}
TARGETS=${TARGETS:-"letterbox dovecot"}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}
DOVECOT_HASH=${DOVECOT_HASH:-same}
IMAP_LOAD=${IMAP_LOAD:-}
KEEP=${KEEP:-0}
IMAP_USER=you@localhost
# The argon2 crate's default cost, which letterbox uses (storage/src/password.rs).
ARGON2_COST="m=19456,t=2,p=1"
# How long a server may take to start listening.
STARTUP_TIMEOUT=60

BENCH_NAME=imap-vs-dovecot
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

positive_integers CLIENTS MESSAGES
if [[ -n $OPS ]]; then
    positive_integers OPS
else
    positive_integers DURATION
fi
[[ $DOVECOT_HASH == same || $DOVECOT_HASH == doveadm ]] || die "DOVECOT_HASH must be same or doveadm"
case $MIX in
default) MIX_ARGS=() ;;
login-heavy) MIX_ARGS=(--reconnect-every 1) ;;
*) die "MIX must be default or login-heavy" ;;
esac
wants letterbox || wants dovecot || die "TARGETS names neither letterbox nor dovecot"
[[ $(id -u) == 0 ]] || die "run as root: Dovecot's master needs it"

# --- Dovecot and the argon2 CLI from Debian ------------------------------------------------
missing=()
if wants dovecot; then
    [[ -x /usr/sbin/dovecot && -x /usr/lib/dovecot/imap ]] || missing+=(dovecot-imapd)
    [[ $DOVECOT_HASH == doveadm ]] || command -v argon2 >/dev/null || missing+=(argon2)
fi
if ((${#missing[@]})); then
    apt_install "${missing[@]}"
fi

# --- Build ---------------------------------------------------------------------------------
# Dovecot's unprivileged processes must be able to walk into it.
make_workdir letterbox-imap-bench
if wants letterbox; then
    build_letterbox
fi
LOAD=$(build_load imap_load "$IMAP_LOAD")

# --- Helpers -------------------------------------------------------------------------------

# field KEY FILE: the value of KEY=value in the load generator's report line.
field() {
    sed -n "/^clients=/ { s/^.* $1=\([^ ]*\).*/\1/p; s/^$1=\([^ ]*\).*/\1/p }" "$2" | head -n 1
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }

# A password like letterbox's generated ones, for a run without letterbox.
random_password() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }

# run_load NAME ADDRESS: drives the load, keeps its report in $WORK/NAME.load.
run_load() {
    local stop=(--duration "$DURATION") what="${DURATION}s"
    if [[ -n $OPS ]]; then
        stop=(--ops "$OPS")
        what="$OPS commands"
    fi
    log "$1: $CLIENTS clients, $what, $MESSAGES messages in the INBOX, at $2 (loadavg_1min $(loadavg))"
    IMAP_PASSWORD=$PASSWORD "$LOAD" --addr "$2" --user "$IMAP_USER" --clients "$CLIENTS" \
        --messages "$MESSAGES" "${stop[@]}" "${MIX_ARGS[@]}" | tee "$WORK/$1.load"
    [[ -n $(field ops_per_second "$WORK/$1.load") ]] ||
        die "$1: the load generator printed no report"
}

# --- letterbox -----------------------------------------------------------------------------
run_letterbox() {
    local dir=$WORK/letterbox stored_hash
    start_letterbox_imap "$dir" $((CLIENTS + 10))
    PASSWORD=$LETTERBOX_PASSWORD

    # The cost of its argon2id hash, for Dovecot's. A PHC string: $argon2id$v=19$m=..,t=..,p=..$salt$hash
    stored_hash=$(sqlite3 "$dir/data/letterbox.sqlite" \
        "SELECT password_hash FROM accounts WHERE email = '$IMAP_USER'" 2>/dev/null || true)
    if [[ $stored_hash == \$argon2id\$v=19\$* ]]; then
        ARGON2_COST=$(cut -d'$' -f4 <<<"$stored_hash")
    else
        log "letterbox: could not read its password hash; assuming argon2id $ARGON2_COST"
    fi
    LETTERBOX_SCHEME="argon2id $ARGON2_COST"

    run_load letterbox "$LETTERBOX_IMAP"
    stop_letterbox "$dir"
    LETTERBOX_RATE=$(field ops_per_second "$WORK/letterbox.load")
}

# --- Dovecot -------------------------------------------------------------------------------
run_dovecot() {
    local dir=$WORK/dovecot hash
    [[ -n ${PASSWORD:-} ]] || PASSWORD=$(random_password)

    if [[ $DOVECOT_HASH == doveadm ]]; then
        hash=$(doveadm pw -s ARGON2ID -p "$PASSWORD")
    else
        local m t p salt
        m=$(sed -n 's/.*m=\([0-9]*\).*/\1/p' <<<"$ARGON2_COST")
        t=$(sed -n 's/.*t=\([0-9]*\).*/\1/p' <<<"$ARGON2_COST")
        p=$(sed -n 's/.*p=\([0-9]*\).*/\1/p' <<<"$ARGON2_COST")
        salt=$(head -c 12 /dev/urandom | base64)
        # A 32-byte hash, as the argon2 crate makes; the salt is the 16 characters as bytes.
        hash="{ARGON2ID}$(printf '%s' "$PASSWORD" | argon2 "$salt" -id -t "$t" -k "$m" -p "$p" -l 32 -e)"
    fi
    doveadm pw -t "$hash" -p "$PASSWORD" >/dev/null || die "doveadm does not verify the hash $hash"
    # shellcheck disable=SC2016 # the $ are the PHC string's, not the shell's
    DOVECOT_SCHEME=$(sed -E 's/^\{([A-Z0-9-]+)\}\$([a-z0-9]+)\$v=[0-9]+\$([^$]*)\$.*/\2 \3/' <<<"$hash")
    start_dovecot "$dir" $((CLIENTS + 10)) "$IMAP_USER" "$hash"

    run_load dovecot "127.0.0.1:$DOVECOT_PORT"

    # A check, not a measurement: the Maildir holds the setup messages and nothing else.
    local files
    files=$(find "$dir/mail/$IMAP_USER/cur" "$dir/mail/$IMAP_USER/new" -maxdepth 1 -type f | wc -l)
    ((files == MESSAGES)) || die "dovecot: $files files in the Maildir, expected $MESSAGES"
    stop_dovecot
    DOVECOT_RATE=$(field ops_per_second "$WORK/dovecot.load")
}

# --- Run -----------------------------------------------------------------------------------
# Other work on this machine skews both figures: the load average is printed with them.
LOADAVG_BEFORE=$(loadavg)
if wants letterbox; then run_letterbox; fi
if wants dovecot; then run_dovecot; fi

summary() {
    printf '%s ops_per_second=%s (%s ops in %ss, client CPU %ss, LOGIN %s)\n' "$1" \
        "$(field ops_per_second "$WORK/$2.load")" "$(field ops "$WORK/$2.load")" \
        "$(field seconds "$WORK/$2.load")" "$(field client_cpu_seconds "$WORK/$2.load")" "$3"
}
filesystem=$(df -T "$WORK" | awk 'NR == 2 { print $2 }')
echo
limit="DURATION=$DURATION"
[[ -z $OPS ]] || limit="OPS=$OPS"
echo "CLIENTS=$CLIENTS $limit MESSAGES=$MESSAGES MIX=$MIX cores=$(nproc)" \
    "data on $filesystem ($BENCH_TMPDIR) loadavg_1min before=$LOADAVG_BEFORE after=$(loadavg)"
if wants letterbox; then summary "letterbox:" letterbox "$LETTERBOX_SCHEME"; fi
if wants dovecot; then summary "dovecot:  " dovecot "$DOVECOT_SCHEME"; fi
if wants letterbox && wants dovecot; then
    echo "ratio letterbox/dovecot: $(ratio "$LETTERBOX_RATE" "$DOVECOT_RATE") (target: at least 1.5)"
fi
