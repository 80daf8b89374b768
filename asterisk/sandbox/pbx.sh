#!/usr/bin/env bash
# Sandbox PBX: the real Asterisk from Debian sid, in a debootstrap'd chroot, for tests and the demo.
#
# usage: pbx.sh build|start|stop|restart|status|kill
#   build    make the chroot (once; skipped when the root already has /usr/sbin/asterisk)
#   start    copy etc/*.conf into the chroot, start asterisk, wait until fully booted
#   stop     graceful stop (core stop now, then TERM, then KILL)
#   kill     SIGKILL, no clean-up by Asterisk (for crash tests)
# env: CTI_PBX_ROOT (chroot dir, default ~/.cache/cti-bridge/astroot), MIRROR (Debian mirror URL)
# Needs root (debootstrap, chroot). AMI then listens on 127.0.0.1:15038 (see etc/manager.conf).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONF_DIR=$HERE/etc
ROOT=${CTI_PBX_ROOT:-$HOME/.cache/cti-bridge/astroot}
ROOT=${ROOT%/}
PIDFILE=$ROOT.pid            # next to the root, i.e. in the cache dir
LOG=$ROOT.log
# Packages inside the chroot: the PBX, its English prompts as WAV, and the prompt
# transcripts (core-sounds-en.txt) that the speech tests use as ground truth.
PACKAGES=asterisk,asterisk-core-sounds-en,asterisk-core-sounds-en-wav

say() { echo "pbx.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and chroot need it)"

ast() {  # run the asterisk binary inside the chroot (remote console commands)
    chroot "$ROOT" /usr/sbin/asterisk "$@"
}

# The Debian mirror the host's apt already uses (reachable from here); deb.debian.org otherwise
# (e.g. on Ubuntu hosts, whose mirrors have no sid).
host_mirror() {
    local m=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        m=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' /etc/apt/sources.list.d/debian.sources |
            grep -v security | grep '/debian/\?$' | head -n1 || true)
    fi
    if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
        m=$(sed -n 's/^deb \(\[[^]]*\] \)\?\([^ ]*\) .*/\2/p' /etc/apt/sources.list |
            grep -v security | grep '/debian/\?$' | head -n1 || true)
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

running_pid() {  # prints the PID of our asterisk if it is alive
    local p
    [ -f "$PIDFILE" ] || return 1
    p=$(cat "$PIDFILE")
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = asterisk ] || return 1
    echo "$p"
}

wait_gone() {  # wait_gone PID SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# debootstrap mounts /proc and /sys inside the target; a failed run can leave them mounted,
# and rm -rf through a mounted /proc or /sys would be a disaster. Unmount first, deepest first.
remove_root() {
    local dir=$1 mnt
    [ -e "$dir" ] || return 0
    for mnt in $(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$mnt" || true
    done
    rm -rf --one-file-system "$dir"
}

build() {
    if [ -x "$ROOT/usr/sbin/asterisk" ]; then
        say "chroot already built at $ROOT"
        return 0
    fi
    command -v debootstrap >/dev/null || die "debootstrap missing (run scripts/setup.sh or apt-get install debootstrap)"
    # $ROOT gets replaced below; make sure a mistyped CTI_PBX_ROOT never costs someone a directory.
    if [ -n "$(ls -A "$ROOT" 2>/dev/null)" ] && [ ! -e "$ROOT/etc/debian_version" ]; then
        die "$ROOT exists and is not a Debian root; refusing to replace it"
    fi
    local mirror=${MIRROR:-$(host_mirror)} tmp=$ROOT.partial keyring=() attempt
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] &&
        keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
    mkdir -p "$(dirname "$ROOT")"
    # Build into a side directory and rename at the end, so $ROOT only ever holds a complete root.
    for attempt in 1 2; do
        remove_root "$tmp"
        say "debootstrap sid into $tmp from $mirror (attempt $attempt; takes a few minutes)"
        if debootstrap --variant=minbase "${keyring[@]}" --include="$PACKAGES" sid "$tmp" "$mirror" \
            >"$ROOT.build.log" 2>&1; then
            chroot "$tmp" apt-get clean
            remove_root "$ROOT"
            mv "$tmp" "$ROOT"
            say "chroot ready: $(chroot "$ROOT" /usr/sbin/asterisk -V)"
            return 0
        fi
        say "debootstrap failed (attempt $attempt); last lines of $ROOT.build.log:"
        tail -n 15 "$ROOT.build.log" >&2 || true
        [ "$attempt" = 2 ] || sleep 5     # a mirror hiccup often passes in a moment
    done
    remove_root "$tmp"
    die "could not build the chroot"
}

install_config() {
    cp "$CONF_DIR"/*.conf "$ROOT/etc/asterisk/"
    rm -f "$ROOT/etc/asterisk/users.conf"   # only there to be deprecated: silences a warning
    mkdir -p "$ROOT/run/asterisk" "$ROOT/var/spool/asterisk/monitor" "$ROOT/usr/share/asterisk/moh"
    # Queue callers hear music on hold; the moh packages are only Recommends of asterisk,
    # which debootstrap does not install, so give the default class one file.
    # (Inside the chroot: sounds/en is an absolute symlink that only resolves there.)
    chroot "$ROOT" cp -n /usr/share/asterisk/sounds/en/queue-periodic-announce.wav /usr/share/asterisk/moh/
}

start() {
    [ -x "$ROOT/usr/sbin/asterisk" ] || die "no chroot at $ROOT; run: $0 build"
    if running_pid >/dev/null; then
        ast -rx 'core waitfullybooted' >/dev/null
        say "already running (pid $(cat "$PIDFILE"))"
        return 0
    fi
    install_config
    [ -f "$LOG" ] && mv -f "$LOG" "$LOG.1"   # keep the previous run's log (e.g. before a crash test)
    # chroot execs asterisk, so $! is asterisk's own PID. -f: stay in the foreground (no fork),
    # -n: no colours in the log. No /proc or /dev mounts are needed.
    chroot "$ROOT" /usr/sbin/asterisk -f -n -vvv >"$LOG" 2>&1 </dev/null &
    local pid=$! i
    echo "$pid" >"$PIDFILE"
    # The control socket appears early; 'core waitfullybooted' then blocks until all modules
    # (and the AMI listener) are up.
    for ((i = 0; i < 600; i++)); do
        if timeout 30 chroot "$ROOT" /usr/sbin/asterisk -rx 'core waitfullybooted' >/dev/null 2>&1; then
            say "started (pid $pid, log $LOG)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            say "asterisk exited during start-up; last lines of $LOG:"
            tail -n 20 "$LOG" >&2
            exit 1
        fi
        sleep 0.1
    done
    die "asterisk not fully booted after 60 s (log: $LOG)"
}

stop() {
    local pid
    if ! pid=$(running_pid); then
        rm -f "$PIDFILE"
        say "not running"
        return 0
    fi
    # Graceful first: Asterisk hangs up the calls (with events) and says Shutdown on AMI.
    timeout 10 chroot "$ROOT" /usr/sbin/asterisk -rx 'core stop now' >/dev/null 2>&1 || true
    if ! wait_gone "$pid" 10; then
        say "still running after 'core stop now'; sending TERM"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" 10; then
            say "still running after TERM; sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 5 || die "pid $pid survived SIGKILL"
        fi
    fi
    rm -f "$PIDFILE"
    say "stopped"
}

kill_hard() {
    local pid
    if pid=$(running_pid); then
        kill -KILL "$pid"
        wait_gone "$pid" 5 || die "pid $pid survived SIGKILL"
        say "killed (pid $pid)"
    else
        say "not running"
    fi
    rm -f "$PIDFILE"
}

status() {
    local pid
    if pid=$(running_pid); then
        echo "running (pid $pid, root $ROOT)"
        ast -rx 'core show uptime'
    else
        echo "not running (root $ROOT)"
        return 3          # LSB: program is not running
    fi
}

case "${1:-}" in
build) build ;;
start) start ;;
stop) stop ;;
restart) stop; start ;;
status) status ;;
kill) kill_hard ;;
*) echo "usage: $0 build|start|stop|restart|status|kill" >&2; exit 2 ;;
esac
