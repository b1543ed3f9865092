#!/usr/bin/env bash
# Make sure the Fashion-MNIST IDX files are on disk: Debian's dataset-fashion-mnist package when we
# may install it, otherwise an explanation of how to get them.
set -u
dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
[ -f "$dir/train-images-idx3-ubyte.gz" ] && [ -f "$dir/t10k-images-idx3-ubyte.gz" ] && exit 0
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" != none ]; then
    echo "installing Debian package dataset-fashion-mnist ..."
    $SUDO apt-get update -qq >/dev/null && \
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null && exit 0
  fi
fi
cat >&2 <<TXT
The Fashion-MNIST IDX files are missing ($dir). Get them one of these ways:
  sudo apt-get install dataset-fashion-mnist          (Debian/Ubuntu)
  download the four *-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist
    and set FASHION_MNIST_DIR=/that/folder (or pass --idx-dir to 'cli data footwear')
  or, with a network: python cli.py data footwear --download
TXT
exit 1
