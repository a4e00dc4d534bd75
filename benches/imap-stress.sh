#!/usr/bin/env bash
# IMAP state-tracking stress test (issue 14), letterbox and Dovecot in one run.
#
# CLIENTS concurrent sessions of one account (benches/imap_stress), all on three shared
# mailboxes created and seeded at setup, send random commands for DURATION seconds
# (SELECT/EXAMINE, NOOP, CHECK, FETCH, STORE of flags and keywords, APPEND, COPY/MOVE,
# EXPUNGE, SEARCH, STATUS, IDLE, CLOSE/UNSELECT, LOGOUT; some sessions ENABLE CONDSTORE or
# QRESYNC). Each session keeps a model of its view of the selected mailbox and reports every
# untagged response that contradicts it. First against letterbox, then against Dovecot,
# each a fresh instance on a free 127.0.0.1 port with its data in one new temporary
# directory (the same scheme as benches/imap-vs-dovecot.sh). Dovecot is the reference: it
# must show 0 model errors, or the model is wrong.
#
# Printed per server: commands per name, model errors per kind; on stderr the first
# transcripts of each kind.
#
# Run as root (Dovecot's master needs it), from anywhere:
#   benches/imap-stress.sh
#   CLIENTS=10 DURATION=60 benches/imap-stress.sh
# Environment:
#   CLIENTS (10)                     concurrent sessions
#   DURATION (60)                    seconds of commands per server
#   TARGETS ("letterbox dovecot")    run only one side, e.g. TARGETS=dovecot
#   STRESS_ARGS                      more options for the client, e.g. "--check-recent"
#   BENCH_TMPDIR (/var/tmp)          where the data of both servers lives
#   IMAP_STRESS                      a prebuilt imap_stress binary instead of building one
#   KEEP=1                           keep the temporary directory (logs, Maildir, SQLite)
set -euo pipefail

CLIENTS=${CLIENTS:-10}
DURATION=${DURATION:-60}
TARGETS=${TARGETS:-"letterbox dovecot"}
STRESS_ARGS=${STRESS_ARGS:-}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}
IMAP_STRESS=${IMAP_STRESS:-}
KEEP=${KEEP:-0}
IMAP_USER=you@localhost
# How long a server may take to start listening.
STARTUP_TIMEOUT=60

BENCH_NAME=imap-stress
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

positive_integers CLIENTS DURATION
wants letterbox || wants dovecot || die "TARGETS names neither letterbox nor dovecot"
if wants dovecot; then
    [[ $(id -u) == 0 ]] || die "run as root: Dovecot's master needs it"
    [[ -x /usr/sbin/dovecot && -x /usr/lib/dovecot/imap ]] || apt_install dovecot-imapd
fi

make_workdir letterbox-imap-stress
if wants letterbox; then
    build_letterbox
fi
STRESS=$(build_load imap_stress "$IMAP_STRESS")

# run_stress NAME ADDRESS: the stress client against one server; its report in
# $WORK/NAME.report (and on stdout), its transcripts in $WORK/NAME.stderr.
run_stress() {
    log "$1: $CLIENTS clients, ${DURATION}s, at $2"
    # shellcheck disable=SC2086 # STRESS_ARGS is a list of options
    IMAP_PASSWORD=$PASSWORD "$STRESS" --addr "$2" --user "$IMAP_USER" --name "$1" \
        --clients "$CLIENTS" --duration "$DURATION" $STRESS_ARGS \
        >"$WORK/$1.report" 2>"$WORK/$1.stderr" || {
        cat "$WORK/$1.stderr" >&2
        die "$1: the stress client failed"
    }
    cat "$WORK/$1.stderr" >&2
    cat "$WORK/$1.report"
}

# --- letterbox -----------------------------------------------------------------------------
run_letterbox() {
    local dir=$WORK/letterbox
    start_letterbox_imap "$dir" $((CLIENTS + 10))
    PASSWORD=$LETTERBOX_PASSWORD
    run_stress letterbox "$LETTERBOX_IMAP"
    stop_letterbox "$dir"
}

# --- Dovecot -------------------------------------------------------------------------------
run_dovecot() {
    [[ -n ${PASSWORD:-} ]] || PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    # No password hashing cost is measured here: a plain passwd-file entry will do.
    start_dovecot "$WORK/dovecot" $((CLIENTS + 10)) "$IMAP_USER" "{PLAIN}$PASSWORD"
    run_stress dovecot "127.0.0.1:$DOVECOT_PORT"
    stop_dovecot
}

# --- Run -----------------------------------------------------------------------------------
if wants letterbox; then run_letterbox; fi
if wants dovecot; then run_dovecot; fi

echo
echo "CLIENTS=$CLIENTS DURATION=$DURATION cores=$(nproc) loadavg_1min=$(cut -d' ' -f1 /proc/loadavg)"
for name in letterbox dovecot; do
    wants "$name" || continue
    printf '%-10s %s\n' "$name:" "$(grep -o 'commands=[0-9]* model_errors=[0-9]* failures=[0-9]*' "$WORK/$name.report")"
done
