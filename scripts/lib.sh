# shellcheck shell=bash
# Common settings for every script of the project: sourced, never run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
TREE=$BUILD/linux                 # base + our engine + series, a git repository
STOCK=$BUILD/linux-stock          # the unmodified base, for comparisons
LOGS=$BUILD/logs

# The pinned base.  scripts/setup may fall back to a newer 6.12 and says so.
BASE_PKG=linux-source-6.12
BASE_VERSION=6.12.117-1~deb12u1
BASE_TARBALL=/usr/src/linux-source-6.12.tar.xz

# The kernel's own KSM engine: exactly these files are replaced by ours.
UPSTREAM_KSM_FILES="mm/ksm.c include/linux/ksm.h include/trace/events/ksm.h
Documentation/admin-guide/mm/ksm.rst Documentation/mm/ksm.rst"

# Debian packages the test VM runs but this host must not install (a
# daemon that would tune the host's own KSM): fetched and unpacked only.
DEBS=${DEBS:-/var/cache/ksm-debs}
VM_DEBS="ksmtuned"

# ccache lives outside the clone so fresh clones on one machine share it.
export CCACHE_DIR=${CCACHE_DIR:-/var/cache/ksm-ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-8G}
export CCACHE_BASEDIR=$BUILD
export KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 2026'
export KBUILD_BUILD_USER=ksm KBUILD_BUILD_HOST=ksm-dev
JOBS=${JOBS:-$(nproc)}

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A setup step of make check or make soak (name, command...): its output
# goes to build/logs/<name>.out; prints "PASS <name>" or "FAIL <name>"
# with the end of that log, appends the line to $STEP_RESULTS (when set:
# export it for scripts/prepare) and returns the step's status.
step() {
	local name=$1
	shift
	if "$@" > "$LOGS/$name.out" 2>&1; then
		echo "PASS $name" | tee -a "${STEP_RESULTS:-/dev/null}"
	else
		echo "FAIL $name: see build/logs/$name.out" |
			tee -a "${STEP_RESULTS:-/dev/null}"
		tail -n 20 "$LOGS/$name.out" | sed 's/^/    /'
		return 1
	fi
}

# The end of make check, soak, fuzz and kcsan, from results file $1 and
# the start time $2 (date +%s): "<what $3> took Ns <extra $5>; <where the
# logs are, $4>; N skipped", then, last, "N passed, N failed"; the
# status is whether nothing failed.
summary() {
	local results=$1 start=$2 what=$3 where=$4 extra=${5:-}
	local passed failed skipped
	passed=$(grep -c '^PASS' "$results")
	failed=$(grep -c '^FAIL' "$results")
	skipped=$(grep -c '^SKIP' "$results")
	echo "$what took $(( $(date +%s) - start ))s${extra:+ $extra}; $where; $skipped skipped"
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
}

# ---- patches/*.patch ------------------------------------------------
# A patch of ours is a mail: "From: author", "Subject: [PATCH] subject",
# a blank line, the body, then "---" and the diff (or a bare diff).

# The patches series names, in order; comments and blank lines skipped.
series_patches() {
	local p
	while read -r p _; do
		case "$p" in ''|'#'*) continue ;; esac
		printf '%s\n' "$p"
	done < "$ROOT/series"
}

# A patch's author: its first From: line, before the first blank line.
patch_author() {
	sed -n 's/^From: \(.*\)$/\1/p;/^$/q' "$1" | head -n 1
}

# A patch's commit message: the subject without its [PATCH ...] tag,
# then the body up to the "---" line or the diff.
patch_message() {
	awk '/^(---|diff |Index: )/ { exit }
	     /^From: / && !h { next }
	     /^Subject: / && !h { sub(/^Subject: (\[[^]]*\] *)?/, ""); print; next }
	     /^$/ { h = 1 }
	     h { print }' "$1"
}

# checkpatch.pl checks a Fixes: tag's commit id against the tree's git
# history; our base is Debian's tarball, which has none, so every id is
# "unknown" there.  The ids in our Fixes: tags are mainline's.
CHECKPATCH_IGNORE="--ignore UNKNOWN_COMMIT_ID"
