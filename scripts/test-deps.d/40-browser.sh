#!/usr/bin/env bash
# The HTTP endpoint tests (crates/streamcore-cli/tests/http.rs, dashboard.rs) need:
# - chromium and chromium-driver: the dashboard is loaded in headless Chromium over WebDriver
#   (the test starts chromedriver itself on a free 127.0.0.1 port; no server runs here);
# - promtool (Debian's `prometheus` package, ~19 MB download, ~12 s to install): it checks
#   /metrics and the alert rules in docs/alerts/. The Prometheus server it ships is not started.
# Idempotent: quick when everything is installed.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]}" >&2
  $sudo apt-get update -qq
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
chromium --version >/dev/null
chromedriver --version >/dev/null
promtool --version >/dev/null
