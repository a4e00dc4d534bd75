#!/usr/bin/env bash
# SEARCH TEXT and SEARCH BODY on a large mailbox: letterbox (SQLite and PostgreSQL, with
# the full-text index of storage/src/fulltext.rs) against Dovecot 2.3 from Debian, on
# this machine, in one run (issue 18).
#
# MESSAGES messages (benches/search_corpus.py: real English text from the licences in
# /usr/share/common-licenses, non-ASCII lines, text attachments in base64 and
# quoted-printable, binary attachments, HTML alternatives; made the same way every run)
# are written once as a Maildir with a dovecot-uidlist. Dovecot gets that Maildir as its
# INBOX; letterbox imports it (`letterbox import maildir`, UIDs kept) on each backend.
# Then one imaplib client per server times UID SEARCH TEXT and UID SEARCH BODY, each for
# a rare word (in a few bodies, text attachments and subjects) and a common one: one
# search first (not timed: both servers read from a warm page cache, and Dovecot fills
# its cache), then REPEAT timed searches, the median printed. Printed per server and
# search: seconds and hits; then per backend the ratio Dovecot/letterbox; the script
# fails unless every server found exactly the same UIDs.
#
# Dovecot keeps its defaults (no full-text search plugin: Debian's dovecot-imapd has
# none configured) apart from what a private instance needs; plaintext LOGIN on
# loopback for both.
#
# Run as root (Dovecot's master needs it), from anywhere:
#   benches/search-vs-dovecot.sh
#   MESSAGES=2000 REPEAT=3 benches/search-vs-dovecot.sh
# Environment:
#   MESSAGES (20000)                      messages in the INBOX
#   REPEAT (5)                            timed searches per word and key
#   TARGETS ("sqlite postgres dovecot")   which servers to run
#   POSTGRES_URL (postgres://postgres@127.0.0.1:5432/test)  a server where the script
#                                         makes (and drops) a database of its own
#   BENCH_TMPDIR (/var/tmp)               where the corpus and the servers' data live
#   CORPUS_DIR                            keep the corpus there and reuse it in later
#                                         runs (made when missing; MESSAGES must match)
#   LETTERBOX_BIN                         a prebuilt letterbox instead of building one
#   KEEP=1                                keep the temporary directory
#   CARGO_TARGET_DIR                      where cargo builds (as cargo itself reads it)
set -euo pipefail

MESSAGES=${MESSAGES:-20000}
REPEAT=${REPEAT:-5}
TARGETS=${TARGETS:-"sqlite postgres dovecot"}
POSTGRES_URL=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}
KEEP=${KEEP:-0}
IMAP_USER=you@localhost
PASSWORD=bench-search-password
# How long a server may take to start listening.
STARTUP_TIMEOUT=60

BENCH_NAME=search-vs-dovecot
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

positive_integers MESSAGES REPEAT
[[ $(id -u) == 0 ]] || die "run as root: Dovecot's master needs it"
if wants dovecot && ! [[ -x /usr/sbin/dovecot && -x /usr/lib/dovecot/imap ]]; then
    apt_install dovecot-imapd
fi

DATABASE=
stop_servers() {
    if [[ -n $DATABASE ]]; then
        psql -q "$POSTGRES_URL" -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null || true
    fi
}

make_workdir search-vs-dovecot
if wants sqlite || wants postgres; then
    build_letterbox
fi
CORPUS_DIR=${CORPUS_DIR:-$WORK/corpus}
if [[ -f $CORPUS_DIR/dovecot-uidlist ]]; then
    [[ $(head -n 1 "$CORPUS_DIR/dovecot-uidlist") == *" N$((MESSAGES + 1))" ]] ||
        die "$CORPUS_DIR holds another number of messages than $MESSAGES"
    log "reusing the corpus in $CORPUS_DIR"
else
    log "writing $MESSAGES messages (benches/search_corpus.py)"
    python3 "$ROOT/benches/search_corpus.py" corpus "$CORPUS_DIR" "$MESSAGES"
fi
log "corpus: $(du -sh "$CORPUS_DIR" | cut -f1), $MESSAGES messages"
SEARCH=(python3 "$ROOT/benches/search_corpus.py" search)

# letterbox NAME STORAGE: letterbox on STORAGE (empty: SQLite in its data directory),
# the corpus imported into the first account's INBOX, searched.
letterbox() {
    local name=$1 storage=$2 dir="$WORK/$1" started
    write_imap_config "$dir" 10
    if [[ -n $storage ]]; then
        sed -i "1i storage = \"$storage\"" "$dir/letterbox.toml"
    fi
    start_letterbox "$dir"
    LETTERBOX_IMAP=$(sed -n 's/^listening imap //p' "$dir/stdout" | head -n 1)
    printf '%s\n' "$PASSWORD" | "$WORK/bin/letterbox" --config "$dir/letterbox.toml" \
        user passwd "$IMAP_USER" --password-stdin >/dev/null
    log "$name: importing $MESSAGES messages"
    started=$(date +%s)
    "$WORK/bin/letterbox" --config "$dir/letterbox.toml" import maildir "$CORPUS_DIR" \
        --user "$IMAP_USER" >"$dir/import.out" 2>>"$dir/letterbox.log"
    log "$name: imported in $(($(date +%s) - started)) s"
    (cd "$WORK" && "${SEARCH[@]}" "${LETTERBOX_IMAP%:*}" "${LETTERBOX_IMAP##*:}" \
        "$IMAP_USER" "$PASSWORD" "$name" "$REPEAT") | tee "$WORK/$name.times"
    stop_letterbox "$dir"
}

if wants sqlite; then
    letterbox letterbox-sqlite ""
fi
if wants postgres; then
    DATABASE="lbbench_search_$$"
    psql -q "$POSTGRES_URL" -c "CREATE DATABASE $DATABASE" >/dev/null
    letterbox letterbox-postgres "${POSTGRES_URL%/*}/$DATABASE"
fi
if wants dovecot; then
    start_dovecot "$WORK/dovecot" 10 "$IMAP_USER" "{PLAIN}$PASSWORD"
    mkdir -p "$WORK/dovecot/mail/$IMAP_USER"
    cp -r "$CORPUS_DIR/." "$WORK/dovecot/mail/$IMAP_USER/"
    chown -R nobody:"$(id -gn nobody)" "$WORK/dovecot/mail"
    (cd "$WORK" && "${SEARCH[@]}" 127.0.0.1 "$DOVECOT_PORT" "$IMAP_USER" "$PASSWORD" \
        dovecot "$REPEAT") | tee "$WORK/dovecot.times"
fi

# Same answers everywhere, and the ratios.
status=0
for name in letterbox-sqlite letterbox-postgres; do
    [[ -f $WORK/$name.results && -f $WORK/dovecot.results ]] || continue
    if cmp -s "$WORK/$name.results" "$WORK/dovecot.results"; then
        echo "$name: the same UIDs as Dovecot for every search"
    else
        echo "$name: DIFFERENT UIDs from Dovecot:"
        diff "$WORK/$name.results" "$WORK/dovecot.results" | cut -c1-200 || true
        status=1
    fi
    while read -r _ key word seconds _; do
        dovecot=$(awk -v k="$key" -v w="$word" '$2 == k && $3 == w { print $4 }' "$WORK/dovecot.times")
        printf '%-18s %-4s %-6s Dovecot/letterbox %s\n' "$name" "$key" "$word" "$(ratio "$dovecot" "$seconds")"
    done <"$WORK/$name.times"
done
exit $status
