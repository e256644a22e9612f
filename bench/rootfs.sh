#!/usr/bin/env bash
# rootfs.sh DEST [MANIFEST]: builds the seed web server's root filesystem in
# DEST with the same file list as manifests/webserver.yaml: /bin/bash, /bin/ls,
# /bin/ps, Debian's real ELF /usr/bin/python3 with its standard library
# (/usr/lib/python3.X, lib-dynload included), every shared library these ELF
# files load (ldd), and /server.py taken from the manifest's inline file.
#
# bench/run.sh uses it for the runners other than hutch when `hutch export
# --bundle` cannot yet copy a rootfs, so that every runner starts the same
# files. Touches only DEST.
set -euo pipefail

dest=${1:?usage: rootfs.sh DEST [MANIFEST]}
here=$(cd "$(dirname "$0")" && pwd)
manifest=${2:-$here/../manifests/webserver.yaml}
py=/usr/bin/python3

mkdir -p "$dest"/{proc,sys,dev,tmp,etc}
chmod 1777 "$dest/tmp"

# copy_path PATH: copies PATH (following symlinks) into DEST at the same path.
copy_path() {
	mkdir -p "$dest$(dirname "$1")"
	cp -L --preserve=mode,timestamps "$1" "$dest$1"
}

# The stdlib folder as the interpreter itself reports it (sys.path), not a
# guess: `cp -r /usr/lib/python3` (the seed's) misses /usr/lib/python3.11.
stdlib=$("$py" -S -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
mkdir -p "$dest$(dirname "$stdlib")"
cp -a "$stdlib" "$dest$stdlib"
# Debian's dist-packages and site folders are not part of the seed's server.
rm -rf "$dest$stdlib/site-packages" "$dest$stdlib/dist-packages"

elfs=(/bin/bash /bin/ls /bin/ps "$py")
for f in "$stdlib"/lib-dynload/*.so; do elfs+=("$f"); done
libs=$(for e in "${elfs[@]}"; do ldd "$e" 2>/dev/null; done |
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
for b in /bin/bash /bin/ls /bin/ps "$py"; do copy_path "$b"; done
for l in $libs; do
	[ -e "$dest$l" ] || copy_path "$l"
done

# /server.py: the block scalar under `content: |` in the manifest.
awk '
/^[[:space:]]*content: \|/ { match($0, /^ */); ind = RLENGTH; inblk = 1; bi = -1; next }
inblk {
	if ($0 ~ /^[[:space:]]*$/) { buf = buf "\n"; next }
	match($0, /^ */); if (RLENGTH <= ind) { inblk = 0; next }
	if (bi < 0) bi = RLENGTH
	printf "%s", buf; buf = ""; print substr($0, bi + 1)
}' "$manifest" >"$dest/server.py"
chmod 0644 "$dest/server.py"
[ -s "$dest/server.py" ] || { echo "rootfs.sh: no server.py content in $manifest" >&2; exit 1; }
