#!/usr/bin/env bash
# `make deb`: the Debian package of callplane, built from a staged tree with dpkg-deb (no
# network, no root: files are owned by root in the package through --root-owner-group).
# It holds the release binary (build/callplane, -O2, stripped), the systemd unit, the man page,
# the default configuration (/etc/callplane/callplane.json, /etc/default/callplane) and the
# maintainer scripts of packaging/debian/. Its dependencies are the shared libraries the binary
# links, as dpkg-shlibdeps finds them, and adduser.
#   DEB_VERSION  the package version (default: 0.1.0~git<commits>.<hash>, or 0.1.0 outside git)
#   DEB_OUT      the .deb written (default: build/callplane_<version>_<arch>.deb); its path is
#                printed last
set -euo pipefail
cd "$(dirname "$0")/.."

bin=build/callplane
[ -x "$bin" ] || { echo "deb.sh: $bin missing (make build/callplane)" >&2; exit 1; }
if [ -z "${DEB_VERSION:-}" ]; then
  if git rev-parse --git-dir >/dev/null 2>&1; then
    DEB_VERSION="0.1.0~git$(git rev-list --count HEAD).$(git rev-parse --short=10 HEAD)"
  else
    DEB_VERSION=0.1.0
  fi
fi
arch=$(dpkg --print-architecture)
out=${DEB_OUT:-build/callplane_${DEB_VERSION}_${arch}.deb}

stage=build/deb
rm -rf "$stage"
root=$stage/root
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/usr/share/man/man1" "$root/usr/share/doc/callplane" "$root/etc/callplane" \
  "$root/etc/default"
strip --strip-unneeded -o "$root/usr/bin/callplane" "$bin"
chmod 0755 "$root/usr/bin/callplane"
install -m 0644 packaging/callplane.service "$root/lib/systemd/system/callplane.service"
gzip -9n <packaging/callplane.1 >"$root/usr/share/man/man1/callplane.1.gz"
chmod 0644 "$root/usr/share/man/man1/callplane.1.gz"
install -m 0644 packaging/callplane.json "$root/etc/callplane/callplane.json"
install -m 0600 packaging/callplane.default "$root/etc/default/callplane"
for d in OPERATIONS API; do
  install -m 0644 "docs/$d.md" "$root/usr/share/doc/callplane/$d.md"
done
install -m 0644 packaging/copyright "$root/usr/share/doc/callplane/copyright"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm \
  "$root/DEBIAN/"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"

# dpkg-shlibdeps reads debian/control of a source tree: give it a minimal one
mkdir -p "$stage/src/debian"
printf 'Source: callplane\n\nPackage: callplane\nArchitecture: any\n' >"$stage/src/debian/control"
shlibs=$(cd "$stage/src" && dpkg-shlibdeps -O "$OLDPWD/$root/usr/bin/callplane" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$DEB_VERSION/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  -e "s/@SHLIBS@/$shlibs/" packaging/debian/control.in >"$root/DEBIAN/control"

dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
