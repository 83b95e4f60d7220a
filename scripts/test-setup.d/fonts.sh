#!/usr/bin/env bash
# CJK fonts (Debian fonts-noto-cjk) for the zh-CN SMART app screenshots (tests/i18n): without them
# Chromium draws Chinese text as empty boxes ("tofu") and the rendering check fails.
# Idempotent: returns at once when fontconfig already knows a Simplified Chinese font.
set -euo pipefail
if command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh-cn family 2>/dev/null)" ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
else
  as_root=(sudo -n)  # never prompts: fails at once without password-less sudo
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends fonts-noto-cjk fontconfig >/dev/null
fc-list :lang=zh-cn family | head -n 3
