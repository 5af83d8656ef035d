#!/usr/bin/env bash
# Makes sure the programs that `make run` / `make test` start are installed, installing
# what is missing from Debian/Ubuntu packages when we are root or have password-less sudo.
#
#   scripts/ensure-deps.sh postgresql [redis] [node]
#
# postgresql: PostgreSQL's server binaries (initdb, postgres; Debian keeps them in
#             /usr/lib/postgresql/N/bin, off PATH) and, for root, the postgres user.
# redis:      redis-server.
# node:       node and npm, and tools/graphql-http-audit's node_modules (npm ci).
#
# The servers are always started privately by the Go code (internal/localpg, localredis);
# the system services that the packages would start are kept from starting. stripe-mock
# needs no package: internal/localstripe builds it with go install when testenv starts.
set -euo pipefail

cd "$(dirname "$0")/.."

have_postgresql() {
	local d
	if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
		return 0
	fi
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then
			return 0
		fi
	fi
	for d in /usr/lib/postgresql/*/bin; do
		if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then
			return 0
		fi
	done
	return 1
}

have_redis() {
	command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]
}

have_node() {
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1
}

packages_for() {
	case "$1" in
	postgresql) echo postgresql ;;
	redis) echo redis-server ;;
	node) echo nodejs npm ;;
	*)
		echo "ensure-deps: unknown dependency '$1' (known: postgresql redis node)" >&2
		exit 2
		;;
	esac
}

missing=()
for dep in "$@"; do
	packages_for "$dep" >/dev/null
	case "$dep" in
	postgresql) have_postgresql || missing+=("$dep") ;;
	redis) have_redis || missing+=("$dep") ;;
	node) have_node || missing+=("$dep") ;;
	esac
done

if [ "${#missing[@]}" -gt 0 ]; then
	pkgs=()
	for dep in "${missing[@]}"; do
		# shellcheck disable=SC2207
		pkgs+=($(packages_for "$dep"))
	done

	if [ "$(id -u)" -eq 0 ]; then
		sudo=()
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo=(sudo)
	else
		echo "ensure-deps: missing: ${missing[*]}. Install it (as root, or with sudo) with:" >&2
		echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${pkgs[*]}" >&2
		exit 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "ensure-deps: missing: ${missing[*]}, and this is not a Debian/Ubuntu system (no apt-get): install the packages ${pkgs[*]} yourself" >&2
		exit 1
	fi

	# Keep the packages' system services (a PostgreSQL cluster on 5432, a Redis on 6379)
	# from starting: we never use them. policy-rc.d is Debian's switch for that; we only
	# add one when there is none, and remove it on exit.
	policy=/usr/sbin/policy-rc.d
	policy_ours=0
	if [ ! -e "$policy" ]; then
		if printf '#!/bin/sh\n# ensure-deps.sh: temporary, keeps services from starting during install\nexit 101\n' |
			"${sudo[@]}" tee "$policy" >/dev/null && "${sudo[@]}" chmod 755 "$policy"; then
			policy_ours=1
		fi
	fi
	cleanup() {
		if [ "$policy_ours" -eq 1 ] && grep -q 'ensure-deps.sh' "$policy" 2>/dev/null; then
			"${sudo[@]}" rm -f "$policy"
		fi
	}
	trap cleanup EXIT

	echo "ensure-deps: installing ${pkgs[*]}" >&2
	"${sudo[@]}" apt-get update
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"

	# Should a cluster have started anyway (a policy-rc.d that allows it), stop it.
	if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null 2>&1; then
		pg_lsclusters --no-header 2>/dev/null | while read -r ver name _port status _rest; do
			if [ "$status" = online ]; then
				"${sudo[@]}" pg_ctlcluster "$ver" "$name" stop || true
			fi
		done
	fi

	cleanup
	trap - EXIT
	for dep in "${missing[@]}"; do
		if ! "have_$dep"; then
			echo "ensure-deps: $dep is still missing after installing ${pkgs[*]}" >&2
			exit 1
		fi
	done
fi

# PostgreSQL refuses to run as root; as root, internal/localpg runs it as the postgres
# user, which the postgresql package creates.
for dep in "$@"; do
	if [ "$dep" = postgresql ] && [ "$(id -u)" -eq 0 ] && ! getent passwd postgres >/dev/null; then
		echo "ensure-deps: creating the system user postgres to run PostgreSQL as (it refuses to run as root)" >&2
		useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home --shell /usr/sbin/nologin postgres
	fi
done

# The GraphQL-over-HTTP audit's node modules, (re)installed when missing or older than
# the lock file.
for dep in "$@"; do
	[ "$dep" = node ] || continue
	audit=tools/graphql-http-audit
	[ -f "$audit/package.json" ] || continue
	stamp="$audit/node_modules/.package-lock.json"
	[ -e "$stamp" ] || stamp="$audit/node_modules"
	if [ ! -d "$audit/node_modules" ] ||
		{ [ -f "$audit/package-lock.json" ] && [ "$audit/package-lock.json" -nt "$stamp" ]; }; then
		echo "ensure-deps: installing $audit's node modules" >&2
		if [ -f "$audit/package-lock.json" ]; then
			(cd "$audit" && npm ci --no-audit --no-fund)
		else
			(cd "$audit" && npm install --no-audit --no-fund)
		fi
	fi
done
