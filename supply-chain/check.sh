#!/usr/bin/env bash
# cargo deny against the advisory-database snapshot beside this script, with no network
# beyond the package registries (see README.md here). Installs cargo-deny when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo deny --version >/dev/null 2>&1; then
  cargo install cargo-deny --locked --version 0.20.2
fi

# cargo-deny opens the database as a git checkout in a directory named after its URL.
db=target/advisory-dbs/advisory-db-3157b0e258782691
read -r commit date < supply-chain/advisory-db.snapshot
rm -rf "$db"
mkdir -p "$db"
cp -r supply-chain/advisory-db/. "$db"
(
  cd "$db"
  git init -q
  git add -A
  GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date" \
    git -c user.name=snapshot -c user.email=snapshot@localhost -c commit.gpgsign=false \
    commit -q -m "advisory-db snapshot $commit"
)
cargo deny --offline check
