#!/usr/bin/env bash
# Build the reference peers the test suite talks to, from package registries only, into
#   PEERS_DIR=${OTELGW_PEERS_DIR:-$HOME/.cache/otel-gateway/peers}
#     bin/otelcol-ref            reference Collector (ocb, tests/peers/otelcol/builder-config.yaml)
#     bin/jaeger                 Jaeger v2 (if it builds from Go modules here; else jaeger.error)
#     bin/hatchet-engine-sim     Go SDK client (tests/peers/hatchet-go)
#     kestra-sim/kestra-sim.jar  Java SDK client, shaded, `java -jar` (tests/peers/kestra-java)
#     bin/h2spec                 HTTP/2 conformance tool (go install, pinned below)
# Nothing built here is committed.
#
# Idempotent: each peer is stamped with a hash of its inputs (manifest/sources, pinned
# versions, toolchain version); a second run with the same inputs only checks the stamps.
# Missing go / mvn / java: a message and exit 0 (the tests that need them skip).
# Failures: otelcol-ref and the two clients fail the script (exit 1) when their toolchain is
# present; jaeger never does (its error goes to $PEERS_DIR/jaeger.error).
#
# Environment: OTELGW_PEERS_DIR, PEERS_ONLY="otelcol-ref jaeger hatchet-engine-sim kestra-sim"
# (subset to build; h2spec too), PEERS_FORCE=1 (ignore the stamps).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS_DIR="${OTELGW_PEERS_DIR:-$HOME/.cache/otel-gateway/peers}"
BIN_DIR="$PEERS_DIR/bin"
BUILD_DIR="$PEERS_DIR/build"
STAMP_DIR="$PEERS_DIR/stamps"
LOG_DIR="$PEERS_DIR/logs"
TOOLS_DIR="$PEERS_DIR/tools"

# Pinned versions (part of each stamp hash).
OCB_VERSION="v0.161.0"       # must match the release set in builder-config.yaml
JAEGER_V2_TAG="v2.13.0"      # Jaeger v2 release ...
JAEGER_MODULE_TAG="v1.76.0"  # ... and the Go-module tag of the same commit (Jaeger dual-tags)
# h2spec's module has no /v2 suffix: its newest tag the Go module proxy serves is v2.2.1+incompatible
# (v2.6.0, the newest GitHub release, is refused with "403 This module version is not available").
H2SPEC_VERSION="v2.2.1+incompatible"

PEERS_ONLY="${PEERS_ONLY:-otelcol-ref jaeger hatchet-engine-sim kestra-sim h2spec}"
PEERS_FORCE="${PEERS_FORCE:-0}"

log() { echo "peers.sh: $*"; }

# Go is often installed outside PATH (e.g. /usr/local/go/bin in images).
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    export PATH="/usr/local/go/bin:$PATH"
fi

have() { command -v "$1" >/dev/null 2>&1; }
wanted() { [[ " $PEERS_ONLY " == *" $1 "* ]]; }

sha() { sha256sum | cut -c1-16; }

# hash_inputs EXTRA PATH...: hash of the contents of the files (dirs walked, sorted) + EXTRA.
hash_inputs() {
    local extra="$1"
    shift
    {
        echo "$extra"
        local p f
        for p in "$@"; do
            while IFS= read -r f; do
                echo "== ${f#"$ROOT"/}"
                cat "$f"
            done < <(find "$p" -type f \
                -not -path '*/target/*' -not -name '*.class' -not -name '.*' | LC_ALL=C sort)
        done
    } | sha
}

up_to_date() { # NAME HASH ARTIFACT
    [[ "$PEERS_FORCE" != 1 && -e "$3" && -f "$STAMP_DIR/$1" && "$(cat "$STAMP_DIR/$1")" == "$2" ]]
}

stamp() { echo "$2" >"$STAMP_DIR/$1"; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# Copy a built file into place atomically so a half-written binary is never picked up.
install_file() { # SRC DEST
    cp "$1" "$2.tmp.$$"
    chmod +x "$2.tmp.$$"
    mv -f "$2.tmp.$$" "$2"
}

show_log_tail() {
    log "---- last 40 lines of $1 ----"
    tail -n 40 "$1" | sed 's/^/    /' || true
    log "---- end of $1 ----"
}

mkdir -p "$BIN_DIR" "$BUILD_DIR" "$STAMP_DIR" "$LOG_DIR" "$TOOLS_DIR" "$PEERS_DIR/kestra-sim"
log "PEERS_DIR=$PEERS_DIR"

FAILED=()
GO_VERSION=""
if have go; then
    GO_VERSION="$(go env GOVERSION)"
else
    log "go not found on PATH: skipping otelcol-ref, jaeger and hatchet-engine-sim" \
        "(install Go >= 1.24, then rerun .ci/peers.sh); the tests that need them will skip"
fi
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

# ---------------------------------------------------------------- otelcol-ref
build_otelcol() {
    local manifest="$ROOT/tests/peers/otelcol/builder-config.yaml"
    local out="$BIN_DIR/otelcol-ref" h t0 work ocb logf="$LOG_DIR/otelcol-ref.log"
    h="$(hash_inputs "ocb=$OCB_VERSION go=$GO_VERSION" "$manifest")"
    if up_to_date otelcol-ref "$h" "$out"; then
        log "otelcol-ref up to date ($out)"
        return 0
    fi
    t0="$(now)"
    ocb="$TOOLS_DIR/ocb-$OCB_VERSION/builder"
    if [[ ! -x "$ocb" ]]; then
        log "installing the collector builder $OCB_VERSION"
        GOBIN="$TOOLS_DIR/ocb-$OCB_VERSION" \
            go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION" >"$logf" 2>&1 ||
            { show_log_tail "$logf"; return 1; }
    fi
    work="$BUILD_DIR/otelcol-ref"
    rm -rf "$work"
    mkdir -p "$work"
    cp "$manifest" "$work/builder-config.yaml"
    log "building otelcol-ref with ocb $OCB_VERSION (first build takes minutes; log: $logf)"
    (cd "$work" && "$ocb" --config builder-config.yaml) >>"$logf" 2>&1 ||
        { show_log_tail "$logf"; return 1; }
    install_file "$work/otelcol-ref-src/otelcol-ref" "$out" || return 1
    rm -f "$work/otelcol-ref-src/otelcol-ref" # keep the generated sources, not a 2nd binary
    stamp otelcol-ref "$h"
    log "otelcol-ref built in $(elapsed "$t0"): $("$out" --version 2>/dev/null || true)"
}

# ---------------------------------------------------------------- jaeger (best effort)
build_jaeger() {
    local out="$BIN_DIR/jaeger" errf="$PEERS_DIR/jaeger.error" h t0 logf="$LOG_DIR/jaeger.log"
    local work="$BUILD_DIR/jaeger" gomodcache
    h="$(hash_inputs "jaeger=$JAEGER_V2_TAG/$JAEGER_MODULE_TAG recipe=2 go=$GO_VERSION" /dev/null)"
    if up_to_date jaeger "$h" "$out"; then
        log "jaeger up to date ($out)"
        return 0
    fi
    if [[ "$PEERS_FORCE" != 1 && -f "$errf" && -f "$STAMP_DIR/jaeger.failed" &&
        "$(cat "$STAMP_DIR/jaeger.failed")" == "$h" ]]; then
        log "jaeger: failed before with the same inputs, not retrying (see $errf; PEERS_FORCE=1 retries)"
        return 0
    fi
    t0="$(now)"
    rm -f "$errf" "$STAMP_DIR/jaeger.failed"
    : >"$logf"
    # 1) The documented way: go install of the v2 release tag.
    log "jaeger: trying go install github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_V2_TAG"
    if GOBIN="$BIN_DIR" go install "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_V2_TAG" \
        >>"$logf" 2>&1; then
        stamp jaeger "$h"
        log "jaeger built in $(elapsed "$t0")"
        return 0
    fi
    {
        echo "# go install github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_V2_TAG ($GO_VERSION)"
        cat "$logf"
    } >"$errf.v2"
    # 2) Jaeger's Go module has no /v2 suffix, so v2.x tags are not module versions; each v2
    #    release is also tagged v1.x on the same commit, and cmd/jaeger there is the v2 binary.
    #    `go install pkg@version` refuses modules with replace directives (Jaeger has one), and
    #    the checksum database here does not answer for many of Jaeger's dependency versions, so
    #    build it from a throw-away wrapper module that carries Jaeger's own replace directives
    #    and Jaeger's own go.sum (from its module zip): every dependency is still verified, against
    #    the hashes Jaeger's release committed, instead of the checksum database.
    log "jaeger: building cmd/jaeger from module tag $JAEGER_MODULE_TAG (the $JAEGER_V2_TAG commit)"
    rm -rf "$work"
    mkdir -p "$work"
    local meta jdir jsum jmodsum
    jfield() { printf '%s\n' "$meta" | sed -n "s/^[[:space:]]*\"$1\": \"\([^\"]*\)\".*/\1/p" | head -n 1; }
    # (explicit && chains: set -e does not apply inside an if condition)
    if meta="$(go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_MODULE_TAG" 2>>"$logf")" &&
        jdir="$(jfield Dir)" && jsum="$(jfield Sum)" && jmodsum="$(jfield GoModSum)" &&
        [[ -n "$jdir" && -f "$jdir/go.sum" && -n "$jsum" && -n "$jmodsum" ]] &&
        (
            cd "$work" &&
                go mod init otelgw.local/jaeger-peer &&
                echo "require github.com/jaegertracing/jaeger $JAEGER_MODULE_TAG" >>go.mod &&
                { grep -E '^replace ' "$jdir/go.mod" >>go.mod || true; } &&
                cp "$jdir/go.sum" go.sum && chmod u+w go.sum &&
                echo "github.com/jaegertracing/jaeger $JAEGER_MODULE_TAG $jsum" >>go.sum &&
                echo "github.com/jaegertracing/jaeger $JAEGER_MODULE_TAG/go.mod $jmodsum" >>go.sum &&
                go build -mod=mod -trimpath -o jaeger github.com/jaegertracing/jaeger/cmd/jaeger
    ) >>"$logf" 2>&1; then
        install_file "$work/jaeger" "$out" || return 1
        rm -f "$work/jaeger"
        rm -f "$errf.v2"
        stamp jaeger "$h"
        log "jaeger built in $(elapsed "$t0") (go install @$JAEGER_V2_TAG failed; built @$JAEGER_MODULE_TAG)"
        return 0
    fi
    {
        cat "$errf.v2"
        echo
        echo "# fallback: wrapper module building cmd/jaeger@$JAEGER_MODULE_TAG"
        grep -v '^go: downloading' "$logf" | tail -n 60
    } >"$errf"
    rm -f "$errf.v2"
    echo "$h" >"$STAMP_DIR/jaeger.failed"
    log "jaeger could not be built from Go modules here after $(elapsed "$t0"); error in $errf" \
        "(continuing: the Jaeger tests will skip)"
    return 0
}

# ---------------------------------------------------------------- hatchet-engine-sim
build_hatchet() {
    local src="$ROOT/tests/peers/hatchet-go" out="$BIN_DIR/hatchet-engine-sim" h t0
    local logf="$LOG_DIR/hatchet-engine-sim.log"
    h="$(hash_inputs "go=$GO_VERSION" "$src")"
    if up_to_date hatchet-engine-sim "$h" "$out"; then
        log "hatchet-engine-sim up to date ($out)"
        return 0
    fi
    t0="$(now)"
    log "building hatchet-engine-sim"
    (cd "$src" && go build -trimpath -mod=readonly -o "$out.tmp.$$" .) >"$logf" 2>&1 ||
        { rm -f "$out.tmp.$$"; show_log_tail "$logf"; return 1; }
    mv -f "$out.tmp.$$" "$out"
    stamp hatchet-engine-sim "$h"
    log "hatchet-engine-sim built in $(elapsed "$t0")"
}

# ---------------------------------------------------------------- kestra-sim
build_kestra() {
    local src="$ROOT/tests/peers/kestra-java" out="$PEERS_DIR/kestra-sim/kestra-sim.jar" h t0
    local work="$BUILD_DIR/kestra-java" logf="$LOG_DIR/kestra-sim.log" jv mvnv
    jv="$(java -version 2>&1 | head -n 1)"
    mvnv="$(mvn -v 2>/dev/null | head -n 1 | sed 's/\x1b\[[0-9;]*m//g')"
    h="$(hash_inputs "java=$jv mvn=$mvnv" "$src")"
    if up_to_date kestra-sim "$h" "$out"; then
        log "kestra-sim up to date ($out)"
        return 0
    fi
    t0="$(now)"
    log "building kestra-sim with Maven (log: $logf)"
    rm -rf "$work"
    mkdir -p "$work"
    cp -r "$src/pom.xml" "$src/src" "$work/" || return 1
    (cd "$work" && mvn -B -q -ntp package) >"$logf" 2>&1 ||
        { show_log_tail "$logf"; return 1; }
    install_file "$work/target/kestra-sim.jar" "$out" || return 1
    stamp kestra-sim "$h"
    log "kestra-sim built in $(elapsed "$t0")"
}

# ---------------------------------------------------------------- h2spec
build_h2spec() {
    local out="$BIN_DIR/h2spec" h t0 logf="$LOG_DIR/h2spec.log"
    h="$(hash_inputs "h2spec=$H2SPEC_VERSION go=$GO_VERSION" /dev/null)"
    if up_to_date h2spec "$h" "$out"; then
        log "h2spec up to date ($out)"
        return 0
    fi
    t0="$(now)"
    log "installing h2spec $H2SPEC_VERSION"
    GOBIN="$BIN_DIR" go install "github.com/summerwind/h2spec/cmd/h2spec@$H2SPEC_VERSION" >"$logf" 2>&1 ||
        { show_log_tail "$logf"; return 1; }
    stamp h2spec "$h"
    log "h2spec installed in $(elapsed "$t0")"
}

run_peer() { # NAME FATAL FUNC
    local name="$1" fatal="$2" fn="$3"
    wanted "$name" || return 0
    if ! "$fn"; then
        if [[ "$fatal" == 1 ]]; then
            log "ERROR: building $name failed (toolchain present); see $LOG_DIR/$name.log"
            FAILED+=("$name")
        else
            log "warning: $name failed; continuing"
        fi
    fi
}

T_ALL="$(now)"
if [[ -n "$GO_VERSION" ]]; then
    run_peer hatchet-engine-sim 1 build_hatchet
fi
if have mvn && have java; then
    run_peer kestra-sim 1 build_kestra
else
    wanted kestra-sim && log "mvn and/or java not found: skipping kestra-sim" \
        "(install JDK >= 17 and Maven, then rerun .ci/peers.sh); the tests that need it will skip"
fi
if [[ -n "$GO_VERSION" ]]; then
    run_peer otelcol-ref 1 build_otelcol
    run_peer jaeger 0 build_jaeger
    run_peer h2spec 1 build_h2spec
fi

if ((${#FAILED[@]})); then
    log "FAILED: ${FAILED[*]} (after $(elapsed "$T_ALL"))"
    exit 1
fi
log "done in $(elapsed "$T_ALL")"
