#!/usr/bin/env bash
# `make demo` as someone who just cloned the repository meets it: a fresh clone of this checkout's
# HEAD, owned and run by an unprivileged user whose PATH is /usr/bin:/bin, so that Debian's
# python3.11 makes the virtualenv. Run as root (.ci/run runs it): the user (DEMO_USER, default
# airflow-demo) is created when missing. Exits 1 unless the demo exited 0, printed a succeeded
# release and ran on Debian's python3.11; whatever happened, it stops the stack (`make down`) and
# fails when a process of the user is still left.
set -euo pipefail

DEMO_USER=${DEMO_USER:-airflow-demo}
DEBIAN_PYTHON=/usr/bin/python3.11

say() { echo "ci_fresh_demo: $*"; }
fail() {
	say "FAILED: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || fail "run it as root: it creates the user $DEMO_USER"
SRC=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
if id -u "$DEMO_USER" >/dev/null 2>&1; then
	say "user $DEMO_USER exists"
else
	useradd --create-home --shell /bin/bash "$DEMO_USER"
	say "created user $DEMO_USER"
fi
HOME_DIR=$(getent passwd "$DEMO_USER" | cut -d: -f6)
CLONE=$HOME_DIR/checkout
UV_CACHE=$HOME_DIR/.cache/uv

# The caller's environment (its proxy and CA settings) with the user's home, its own uv cache and
# Debian's directories alone on PATH.
as_user() {
	(cd "$CLONE" && runuser -u "$DEMO_USER" -- \
		env PATH=/usr/bin:/bin HOME="$HOME_DIR" UV_CACHE_DIR="$UV_CACHE" "$@")
}

# The pids of the user's processes, zombies aside: the stack's daemons are re-parented to init,
# which reaps them only some time after they exit.
running() { ps -u "$DEMO_USER" -o pid=,stat= | awk '$2 !~ /^Z/ { print $1 }' || true; }

# `make down` in the clone, then SIGKILL by pid whatever process of the user is still alive;
# fails when make down did or something was left.
stop_all() {
	local status=0 left
	if [ -x "$CLONE/.venv/bin/python" ]; then
		as_user make --no-print-directory down || status=$?
	fi
	mapfile -t left < <(running)
	if [ "${#left[@]}" != 0 ]; then
		say "processes of $DEMO_USER left running, killed:" >&2
		ps -o pid=,args= -p "$(IFS=,; echo "${left[*]}")" >&2 || true
		kill -KILL "${left[@]}" 2>/dev/null || true
		status=1
	fi
	return "$status"
}

if [ -n "$(running)" ]; then
	stop_all >/dev/null 2>&1 || true
	say "stopped what an earlier run left running"
fi

# uv's cache seeded from root's once: the user's install then downloads only what root's cache
# lacks. Here the 770 MB took 4 s to copy (15 s on a loaded machine), and the user's make install
# took 8 s after it against 18 s from an empty cache. The copy is best effort: root's uv may be
# writing its cache meanwhile.
ROOT_CACHE=$("$SRC/.venv/bin/uv" cache dir 2>/dev/null || true)
if [ ! -d "$UV_CACHE" ] && [ -d "$ROOT_CACHE" ]; then
	started=$SECONDS
	mkdir -p "$(dirname "$UV_CACHE")"
	cp -a "$ROOT_CACHE" "$UV_CACHE" 2>/dev/null || say "some of $ROOT_CACHE changed while it was copied; uv downloads what is missing"
	chown -R "$DEMO_USER": "$HOME_DIR/.cache"
	say "uv's cache seeded from $ROOT_CACHE ($(du -sh "$UV_CACHE" | cut -f1)) in $((SECONDS - started)) s"
fi

started=$SECONDS
commit=$(git -C "$SRC" rev-parse HEAD)
rm -rf "$CLONE"
git clone --quiet --no-hardlinks "$SRC" "$CLONE"
git -C "$CLONE" -c advice.detachedHead=false checkout --quiet --detach "$commit"
chown -R "$DEMO_USER": "$CLONE"
say "cloned $commit into $CLONE in $((SECONDS - started)) s"

# The stack stopped however the script ends; the verdict said once it is.
LOG=$(mktemp)
PASSED=
finish() {
	local status=$? started=$SECONDS
	trap - EXIT
	if stop_all; then
		say "stack stopped, no process of $DEMO_USER left ($((SECONDS - started)) s)"
	else
		say "FAILED: make down failed or left processes running" >&2
		status=1
	fi
	rm -f "$LOG"
	[ "$status" != 0 ] || say "$PASSED"
	exit "$status"
}
trap finish EXIT

started=$SECONDS
rc=0
as_user make --no-print-directory demo 2>&1 | tee "$LOG" || rc=$?
say "make demo exited $rc after $((SECONDS - started)) s"

debian_version=$($DEBIAN_PYTHON -c 'import platform; print(platform.python_version())')
grep -qx "executable = $DEBIAN_PYTHON" "$CLONE/.venv/pyvenv.cfg" 2>/dev/null ||
	fail "the virtualenv was not made by Debian's $DEBIAN_PYTHON ($debian_version): $(tr '\n' ' ' <"$CLONE/.venv/pyvenv.cfg" 2>&1)"
outcome=$(grep -E '^Release [^ ]+: ' "$LOG" | tail -n 1 || true)
[ "$rc" = 0 ] || fail "make demo exited $rc (${outcome:-no release outcome printed})"
[[ "$outcome" =~ ^Release\ [^\ ]+:\ SUCCEEDED ]] || fail "make demo printed no succeeded release (${outcome:-nothing})"
PASSED="passed as $DEMO_USER with Debian's python3.11 $debian_version: $outcome"
