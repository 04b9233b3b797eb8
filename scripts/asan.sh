#!/usr/bin/env bash
# The native code's tests against a build with -fsanitize=address,undefined.
# The extensions are built into a copy of src/ that comes first on PYTHONPATH, and the
# ASan runtime is preloaded into the ordinary CPython (leak reports off: CPython's own
# allocations would be reported).
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
cp -r src setup.py pyproject.toml README.md "$build"/
find "$build/src" -name '*.so' -delete
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1 -g"
(cd "$build" && CFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined" \
    "$OLDPWD/.venv/bin/python" setup.py -q build_ext --inplace 2>&1 | grep -v -e '^running' -e 'copying' || true)
if ! find "$build/src" -path '*/_core/compiled*.so' | grep -q .; then
    echo "asan.sh: the sanitized build failed" >&2
    exit 1
fi
PYTHONPATH="$build/src" \
LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" \
ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
HOOKTEL_EXPECT_SANITIZED=1 \
    .venv/bin/python -m pytest -p no:cacheprovider tests/native tests/servers "$@"
