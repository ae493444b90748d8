#!/usr/bin/env bash
# Installs detectron2 into the given interpreter unless `import detectron2` already works there
# (e.g. the user's own build from git).  Otherwise installs the pure-Python wheel
# sal-detectron2 (upstream detectron2 a59f0563 + two small fixes).  Its tag is cp310 and its bundled
# _C is for Python 3.10 (never loaded on 3.11), so pip is told the target Python version and the
# files are moved into site-packages by hand.  The wheel also ships a stray top-level `tools`
# package, which is removed.
set -euo pipefail
PY=${1:?usage: install_detectron2.sh PYTHON}
VERSION=0.7.2

if "$PY" -c "import detectron2" 2>/dev/null; then
  echo "detectron2 already importable: $("$PY" -c 'import detectron2, os; print(detectron2.__version__, os.path.dirname(detectron2.__file__))')"
  exit 0
fi
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip install -q --no-deps --only-binary=:all: --python-version 3.10 \
  --target "$TMP" "sal-detectron2==$VERSION"
rm -rf "$TMP/tools" "$TMP/bin"
for item in "$TMP"/*; do
  rm -rf "$SITE/$(basename "$item")"
  mv "$item" "$SITE/"
done
"$PY" -c "import detectron2; print('installed detectron2', detectron2.__version__)"
