#!/usr/bin/env bash
# test-suite/run.sh - runs every test group and totals them. Each group prints
# `PASS name` / `FAIL name` lines (the unit group prints Check's summary); a
# group that exits nonzero without a FAIL line counts as one failure. Ends
# with `N passed, N failed` (each group's seconds after its counts; the suite
# must stay under 30 minutes on 2 cores). Group names as arguments (`run.sh unit x86`) or
# CKC_ONLY="unit golden" restrict the groups; an unknown name is an error.
set -u
cd "$(dirname "$0")/.."
export CKC="${CKC:-build/ckc}"
export CKC_UNIT="${CKC_UNIT:-build/run_unit}"
export CKC_LINT="${CKC_LINT:-build/ckc-lint}"
export PY=/usr/bin/python3
# Generated projects build one object per source: every `make` the tests run
# uses all cores (unless the caller's make already passes -j or a jobserver),
# and every `cc` goes through ccache (Debian's /usr/lib/ccache, installed by
# scripts/install-deps.sh; cache in build/ccache, capped at 1 GB): the
# hundreds of projects the suite builds share the same runtime files, which
# compile once and are reused after that.
case " ${MAKEFLAGS:-} " in
  *" -j"*|*jobserver*) ;;
  *) export MAKEFLAGS="${MAKEFLAGS:+$MAKEFLAGS }-j$(nproc 2>/dev/null || echo 2)" ;;
esac
if [ -x /usr/lib/ccache/cc ] && [ -z "${CKC_NO_CCACHE:-}" ]; then
  export PATH="/usr/lib/ccache:$PATH" CCACHE_DIR="${CCACHE_DIR:-$PWD/build/ccache}" \
    CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-1G}"
else
  echo "NOTE: no ccache (/usr/lib/ccache/cc): every generated project compiles from scratch"
fi
GROUPS_ALL="unit golden cli robust e2e runtime memplan parity train x86 decode"
only="${*:-${CKC_ONLY:-$GROUPS_ALL}}"
for g in $only; do
  case " $GROUPS_ALL " in
    *" $g "*) ;;
    *) echo "test-suite/run.sh: unknown group '$g' (groups: $GROUPS_ALL)" >&2; exit 2 ;;
  esac
done
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT
passed=0 failed=0
failures=()

run_group() { # name command...
  local name=$1; shift
  local log="$log_dir/$name.log"
  echo "== $name"
  local t0=$SECONDS
  "$@" >"$log" 2>&1
  local rc=$?
  local took=$((SECONDS - t0))
  local p f
  if [ "$name" = unit ]; then
    # Check: "100%: Checks: 42, Failures: 0, Errors: 0"
    local line; line=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -n 1)
    cat "$log" | grep -vE '^[0-9]+%: Checks: ' | grep -E ':(F|E):' || true
    echo "$line ($took s)"
    local n fl er
    n=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
    fl=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
    er=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
    n=${n:-0} fl=${fl:-0} er=${er:-0}
    f=$((fl + er)); p=$((n - f))
    if [ -z "$line" ]; then f=1; p=0; failures+=("unit: no Check summary (exit $rc)"); tail -n 20 "$log"; fi
  else
    grep -E '^(FAIL)' "$log" || true
    p=$(grep -cE '^PASS' "$log"); f=$(grep -cE '^FAIL' "$log")
    while IFS= read -r l; do failures+=("$name: $l"); done < <(grep -E '^FAIL' "$log")
    echo "$p passed, $f failed ($took s)"
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1; failures+=("$name: exited $rc without a FAIL line"); tail -n 30 "$log"
  fi
  passed=$((passed + p)); failed=$((failed + f))
}

for g in $only; do
  case $g in
    unit)   run_group unit "$CKC_UNIT" ;;
    golden) run_group golden test-suite/golden/run.sh ;;
    cli)    [ -x test-suite/cli/run.sh ] && run_group cli test-suite/cli/run.sh ;;
    robust) run_group robust test-suite/robust/run.sh ;;
    e2e)    [ -x test-suite/e2e/run.sh ] && run_group e2e test-suite/e2e/run.sh ;;
    runtime) run_group runtime test-suite/runtime/run.sh ;;
    memplan) run_group memplan test-suite/memplan/run.sh ;;
    x86)    [ -x test-suite/x86/run.sh ] && run_group x86 test-suite/x86/run.sh ;;
    decode) [ -x test-suite/decode/run.sh ] && run_group decode test-suite/decode/run.sh ;;
    train) run_group train test-suite/train/run.sh ;;
    parity) for t in kernels grads ops_parity samples_parity fusion_parity; do
              [ -f "test-suite/parity/$t.py" ] && run_group "parity-$t" "$PY" "test-suite/parity/$t.py"
            done ;;
  esac
done

echo
if ((${#failures[@]})); then
  echo "failures:"
  printf '  %s\n' "${failures[@]}"
fi
echo "suite time: $SECONDS s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
