#!/usr/bin/env bash
# Generates the Rego and its `opa test` suites for the example catalog with
# every bundled example manifest, and for the real legacy catalog
# (../shared/reference-catalog, skipped with a message when absent) with the
# legacy manifests in policy/testdata/manifests, then runs
# `ccauthz policy test --coverage` (OPA's test runner) on each. Any failure
# fails the script (exit 3, the policy-test exit code); each suite prints its
# pass count and coverage summary, and the coverage must reach COVERAGE_MIN percent (85 by default: manifests without
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
  local report coverage
  if ! report="$("$work/ccauthz" policy test --coverage "$out")"; then
    printf '%s\n' "$report"
    echo "policy-test: FAIL: $name: policy tests failed" >&2
    failed=1
    return
  fi
  printf '%s\n' "$report"
  coverage="$(printf '%s\n' "$report" | sed -nE 's/^coverage: ([0-9.]+)%$/\1/p')"
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
