#!/usr/bin/env bash
# What `npm test`, `npm run demo` and `npm run bench` do first on any machine, fresh or not:
# the lab's Debian packages (test/lab/install.sh), the npm dependencies when node_modules is
# missing or older than package-lock.json, then the build. Each step is skipped when done.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/lab/install.sh
if [ ! -x node_modules/.bin/tsc ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi
npm run build --silent
