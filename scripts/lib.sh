# shellcheck shell=bash
# Shared helpers for the scripts in this directory. Source it, don't run it.

# Prints what a script does, so a log reads like a checklist.
step() { printf '==> %s\n' "$*" >&2; }

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

have() { command -v "$1" >/dev/null 2>&1; }

# Runs a command as root, through sudo when we are not root already.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif have sudo; then sudo "$@"; else die "need root for: $*"; fi
}

# Installs Debian packages that are missing; apt-get update only when needed.
apt_install() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  have apt-get || die "missing packages (${missing[*]}) and no apt-get to install them"
  step "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The version of a package in Cargo.lock (the first entry, if several).
lock_version() {
  awk -v line="name = \"$1\"" '$0 == line { getline; gsub(/^version = "|"$/, ""); print; exit }' Cargo.lock
}

# --- The wasm32 toolchain ------------------------------------------------
# Either rustup's (its wasm32-unknown-unknown standard library), or, where
# rustup cannot download that, Debian's rustc-web building std from source
# (see TOOLCHAIN notes). scripts/setup chooses and records the choice;
# WASM_TOOLCHAIN=rustup|debian forces one.

WASM_TARGET=wasm32-unknown-unknown
DEBIAN_WASM_LD=/usr/lib/llvm-22/bin/wasm-ld

wasm_choice_file() { printf '%s/wasm-toolchain' "${CARGO_TARGET_DIR:-target}"; }

rustup_has_wasm() {
  have rustup && rustup target list --installed 2>/dev/null | grep -qx "$WASM_TARGET"
}

debian_has_wasm() {
  [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] && [ -x "$DEBIAN_WASM_LD" ] &&
    [ -d /usr/lib/rustlib/src/rust/library/std ]
}

# Prints the toolchain to build wasm with: forced, else recorded by setup,
# else nothing.
wasm_toolchain() {
  local choice=${WASM_TOOLCHAIN:-}
  if [ -z "$choice" ] && [ -f "$(wasm_choice_file)" ]; then choice=$(cat "$(wasm_choice_file)"); fi
  case "$choice" in
    '' | rustup | debian) printf '%s' "$choice" ;;
    *) die "WASM_TOOLCHAIN must be rustup or debian, not '$choice'" ;;
  esac
}

# Exports what cargo (and trunk, which runs it) need to build wasm with the
# given toolchain. The Debian one comes first in PATH, so only the commands
# run after this use it; per-target variables, not RUSTFLAGS, so that std
# is not rebuilt.
wasm_env() {
  case "$1" in
    rustup) ;;
    debian)
      debian_has_wasm || die "Debian's wasm toolchain is incomplete: run scripts/setup"
      export PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
        CARGO_UNSTABLE_BUILD_STD=std,panic_abort \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$DEBIAN_WASM_LD"
      ;;
    *) die "unknown wasm toolchain '$1'" ;;
  esac
}

# --- The page's standard library ---------------------------------------
# The page links a std built from source with `panic = "immediate-abort"`
# and std's `optimize_for_size`: a panic traps at once, so no panic
# message, `Location` or formatting code reaches the wasm (BENCHMARKS.md
# "Page weight": wasm gzip -11 %). Building std needs an unstable cargo
# flag: rustup's nightly with its rust-src component (scripts/setup adds
# it), or Debian's toolchain, which builds std from source anyway. Without
# either, the page links the prebuilt std and carries the panic machinery.
# Only scripts/build-page uses this: tests keep their panic messages.
# With that nightly, `-Zlocation-detail=none` also drops the file, line
# and column `#[track_caller]` functions record for their messages (the
# panics' are gone already; what is left, e.g. wasm-bindgen's
# `unwrap_throw`, says `<redacted>` where a source position was): wasm
# gzip -1.5 KB (BENCHMARKS.md, "sixth weight round"); and
# `-Zfmt-debug=none` makes every `{:?}` print nothing and every
# `#[derive(Debug)]` empty (wasm brotli -2.0 KB against `shallow`, which
# printed a type or variant name alone, and -5.5 KB gzip before that: no
# Debug code, and no unicode tables for escaping strings). No text the
# page shows is Debug: its messages are Display, and JavaScript values
# are described by `libp2p_webrtc_p2p`'s `js_message`; what is lost is a
# library's Debug inside its own Display, as in libp2p-swarm's "Dial
# error: Unexpected peer ID ... at {endpoint:?}".

rustup_nightly_has_src() {
  have rustup && rustup +nightly component list --installed 2>/dev/null | grep '^rust-src' >/dev/null
}

# rustc flags that make the page smaller whichever std it links
# (BENCHMARKS.md "Page weight: where the bytes go"):
# - sha2's compact software rounds (a loop, not 64 unrolled rounds): the
#   page hashes a few handshakes and signatures, never bulk data;
# - source paths cut to what follows the crate registry or the repository
#   (`tracing`'s warn call sites keep their file names in the wasm).
# The paths are one word each: no spaces in CARGO_HOME or the checkout.
page_size_flags() {
  local flags='--cfg sha2_backend_soft="compact"' dir
  for dir in "${CARGO_HOME:-${HOME:-/root}/.cargo}"/registry/src/*/; do
    [ -d "$dir" ] && flags+=" --remap-path-prefix=$dir="
  done
  printf '%s --remap-path-prefix=%s/=' "$flags" "$(repo_root)"
}

# Exports what cargo needs to build the page with that std, after
# wasm_env; sets PAGE_STD to a line saying which std the page gets.
# The getrandom cfg of .cargo/config.toml is repeated: the variable set
# here takes the place of its target rustflags.
# shellcheck disable=SC2034 # PAGE_STD is for the caller
page_std_env() {
  local flags
  flags="--cfg getrandom_backend=\"wasm_js\" $(page_size_flags)"
  case "$1" in
    rustup)
      if ! rustup_nightly_has_src; then
        export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$flags"
        PAGE_STD="rustup's prebuilt std (no nightly with rust-src: panic messages stay)"
        return 0
      fi
      export RUSTUP_TOOLCHAIN=nightly CARGO_UNSTABLE_BUILD_STD=std,panic_abort
      ;;
    debian) ;;
  esac
  export CARGO_UNSTABLE_BUILD_STD_FEATURES=optimize_for_size \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$flags -Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none"
  PAGE_STD="std built from source (rustc $(rustc --version | cut -d' ' -f2)), panic=immediate-abort, optimize_for_size"
}

# The Subresource Integrity value of a file: `sha384-` and its digest in
# base64, as trunk writes it into index.html.
sri_sha384() { printf 'sha384-%s' "$(openssl dgst -sha384 -binary "$1" | base64 -w0)"; }

# The integrity value of the file $2, which the HTML $1 must name (trunk
# wrote it there); dies if it does not.
named_sri() {
  local html=$1 file=$2 sri page
  sri=$(sri_sha384 "$file")
  IFS= read -rd '' page <"$html" || true
  case "$page" in
    *"integrity=$sri"* | *"integrity=\"$sri\""*) printf '%s' "$sri" ;;
    *) die "$html has no integrity=$sri for $file: did trunk's output change?" ;;
  esac
}

# Puts the integrity value of the file $3, changed since, in place of its
# old value $2 in the HTML $1.
renew_sri() {
  local html=$1 old=$2 file=$3 page
  IFS= read -rd '' page <"$html" || true
  printf '%s' "${page//"$old"/"$(sri_sha384 "$file")"}" >"$html"
}

# Minifies the page's JS file $1 in place with esbuild (same name: trunk's
# hash stays, index.html's references with it), and puts its new integrity
# value in place of the old one in the HTML $2. The inline scripts of the
# HTML are left byte for byte as they were: the relay allows them by their
# hash, which it computes from the HTML it serves (relay/src/page_headers.rs).
minify_page_js() {
  local js=$1 html=$2 old
  old=$(named_sri "$html" "$js")
  esbuild "$js" --minify --log-level=warning --outfile="$js.min"
  mv "$js.min" "$js"
  renew_sri "$html" "$old" "$js"
}

# Gives the names that tie the wasm $1 to its JS glue $2 (its imports, and
# the exports made for the glue) short names in both
# (tools/shorten-glue-names.mjs), and puts both files' new integrity values
# in place of the old ones in the HTML $3.
shorten_page_glue_names() {
  local wasm=$1 js=$2 html=$3 wasm_sri js_sri
  wasm_sri=$(named_sri "$html" "$wasm")
  js_sri=$(named_sri "$html" "$js")
  node "$(repo_root)/tools/shorten-glue-names.mjs" "$wasm" "$js"
  renew_sri "$html" "$wasm_sri" "$wasm"
  renew_sri "$html" "$js_sri" "$js"
}

# --- Build tools from npm ------------------------------------------------
# binaryen's wasm-opt (tools/package-lock.json pins a version; Debian's 108
# corrupts wasm-bindgen's output) and esbuild (the JS glue's minifier),
# installed into tools/node_modules by scripts/setup and put first on PATH
# by scripts/build-page.

npm_tools_dir() { printf '%s/tools' "$(repo_root)"; }

# True when tools/node_modules holds what tools/package-lock.json pins.
npm_tools_ready() {
  local dir
  dir=$(npm_tools_dir)
  [ -x "$dir/node_modules/.bin/wasm-opt" ] && [ -x "$dir/node_modules/.bin/esbuild" ] &&
    [ "$(cat "$dir/node_modules/.installed-lock-hash" 2>/dev/null)" = "$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)" ]
}

# --- Deployment tools ----------------------------------------------------
# The AWS CLI and moto (the EC2 emulator scripts/test-deploy runs): the ones
# on PATH, else a virtualenv of their own that scripts/setup makes.
deploy_venv() { printf '%s/browser-chat/deploy-venv' "${XDG_DATA_HOME:-${HOME:-/root}/.local/share}"; }

# Puts the virtualenv's commands on PATH, when it exists.
deploy_tools_env() {
  local venv
  venv=$(deploy_venv)
  if [ -x "$venv/bin/moto_server" ]; then PATH="$venv/bin:$PATH"; export PATH; fi
}
