#!/usr/bin/env bash
# Placeholder until the policy generator lands: runs `opa test` on the core module.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ls policy/rego/*.rego >/dev/null 2>&1; then
  go tool opa test policy/rego
else
  echo "policy-test: no Rego modules yet"
fi
