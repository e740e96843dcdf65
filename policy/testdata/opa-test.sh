#!/usr/bin/env bash
# Generates the Rego and its `opa test` suites for the example catalog with
# every bundled example manifest, and for the real legacy catalog
# (../shared/reference-catalog, skipped with a message when absent) with the
# legacy manifests in policy/testdata/manifests, then runs
# `go tool opa test --coverage` on each. Any failure fails the script (exit 3,
# the policy-test exit code); the coverage of each suite is printed and must
# reach COVERAGE_MIN percent (85 by default: manifests without
# pattern or header routes leave those core branches uncovered).
set -euo pipefail
cd "$(dirname "$0")/../.."

COVERAGE_MIN="${COVERAGE_MIN:-85}"
LEGACY_CATALOG="../shared/reference-catalog/ee/config/cloud_connector/access_data.yml"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

go build -o "$work/ccauthz" ./cmd/ccauthz

failed=0
run_suite() { # name, then `ccauthz policy build` arguments
  local name="$1"; shift
  local out="$work/$name"
  echo "== policy-test: $name"
  if ! "$work/ccauthz" policy build --out "$out" "$@"; then
    echo "policy-test: FAIL: $name: ccauthz policy build failed" >&2
    failed=1
    return
  fi
  if ! go tool opa test "$out"; then
    echo "policy-test: FAIL: $name: opa test failed (verbose run follows)" >&2
    go tool opa test -v "$out" | grep -E 'FAIL|ERROR' >&2 || true
    failed=1
    return
  fi
  local report coverage
  report="$(go tool opa test --coverage "$out")"
  # The overall figure is the last "coverage" key of the report.
  coverage="$(printf '%s\n' "$report" | grep '"coverage":' | tail -n 1 | sed -E 's/.*"coverage": *([0-9.]+).*/\1/')"
  echo "policy-test: $name: coverage ${coverage}%"
  if ! awk -v c="$coverage" -v min="$COVERAGE_MIN" 'BEGIN { exit !(c + 0 >= min + 0) }'; then
    echo "policy-test: FAIL: $name: coverage ${coverage}% is below ${COVERAGE_MIN}%" >&2
    failed=1
  fi
}

for example in ai_gateway duo_workflow; do
  run_suite "example-$example" --manifest "$example"
done

if [ -f "$LEGACY_CATALOG" ]; then
  for m in policy/testdata/manifests/*_legacy.yaml; do
    run_suite "legacy-$(basename "$m" .yaml)" --catalog "$LEGACY_CATALOG" --manifest "$m"
  done
else
  echo "policy-test: SKIP legacy catalog: $LEGACY_CATALOG not found (it lives beside the repository in ../shared)"
fi

if [ "$failed" -ne 0 ]; then
  echo "policy-test: FAILED" >&2
  exit 3
fi
echo "policy-test: all suites passed"
