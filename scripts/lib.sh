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
# with the end of that log, appends the line to $STEP_RESULTS and
# returns the step's status.
step() {
	local name=$1
	shift
	if "$@" > "$LOGS/$name.out" 2>&1; then
		echo "PASS $name" | tee -a "$STEP_RESULTS"
	else
		echo "FAIL $name: see build/logs/$name.out" | tee -a "$STEP_RESULTS"
		tail -n 20 "$LOGS/$name.out" | sed 's/^/    /'
		return 1
	fi
}
