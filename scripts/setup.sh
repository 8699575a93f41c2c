#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine with only Node 20 and npm lacks, then the locked
# workspace dependencies. Used by the README's two commands and by CI (.ci/run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# pnpm: corepack's download of pnpm fails its signature check on Node 20, so install it from npm.
if ! command -v pnpm >/dev/null 2>&1; then
  echo "--- installing pnpm 9.15.9"
  npm install -g pnpm@9.15.9 || as_root npm install -g pnpm@9.15.9
fi

# WebGPU without a GPU: Dawn (npm `webgpu`) runs on SwiftShader, the software Vulkan driver that
# Debian's chromium package ships (/usr/lib/chromium/vk_swiftshader_icd.json); the browser tests use
# the same chromium. Skip with MLLM_SKIP_CHROMIUM=1 (the webgpu tests then fail loudly).
if [ ! -f /usr/lib/chromium/vk_swiftshader_icd.json ] && [ "${MLLM_SKIP_CHROMIUM:-0}" != "1" ]; then
  echo "--- installing chromium (SwiftShader Vulkan driver, headless browser for the demo tests)"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

echo "--- pnpm install --frozen-lockfile"
pnpm install --frozen-lockfile
