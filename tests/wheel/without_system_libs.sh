#!/usr/bin/env bash
# Runs a command where the system's Highway and pthreadpool libraries cannot
# be loaded: in a private mount namespace, /dev/null is bind-mounted over each
# of their files (every path the dynamic loader knows, resolved), so opening
# one reads nothing and loading it fails. The mounts vanish with the command;
# nothing outside it changes.
#
#   bash tests/wheel/without_system_libs.sh COMMAND [ARG...]
#
# The command gets COCOPIE_HIDDEN_SYSTEM_LIBS (the hidden files) to check.
# Where no mount namespace can be made (unshare refused: no root and no
# unprivileged user namespaces), the command runs as it is, without that
# variable, and says so.
set -euo pipefail
(($#)) || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }

# Loader cache entries and the usual library folders, then the real files.
candidates=$( { ldconfig -p 2>/dev/null | awk '/lib(hwy|pthreadpool)/ { print $NF }';
                ls /lib/*/libhwy* /lib/*/libpthreadpool* /usr/lib/*/libhwy* \
                   /usr/lib/*/libpthreadpool* /usr/local/lib/libhwy* \
                   /usr/local/lib/libpthreadpool* 2>/dev/null || true; } |
              xargs -r readlink -e | sort -u)

unshare_args=(--mount --propagation private)
[[ $(id -u) -eq 0 ]] || unshare_args+=(--map-root-user)
if [[ -z "$candidates" ]]; then
  echo "without_system_libs: no system Highway/pthreadpool files to hide"
  exec "$@"
fi
if ! unshare "${unshare_args[@]}" true 2>/dev/null; then
  echo "without_system_libs: cannot make a mount namespace here (unshare refused);" \
       "running with the system libraries visible"
  exec "$@"
fi
export COCOPIE_HIDDEN_SYSTEM_LIBS="$(echo $candidates)"
exec unshare "${unshare_args[@]}" bash -c '
  set -e
  for file in $COCOPIE_HIDDEN_SYSTEM_LIBS; do mount --bind /dev/null "$file"; done
  exec "$@"' without_system_libs "$@"
