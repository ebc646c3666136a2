#!/bin/sh
# npm pack's prepack step: build the Node-API addon that ships in prebuilds/
# (prebuildify moves build/Release/vfio.node there), then put a copy back so
# the checkout keeps a build of its own for the tests and VFIO_NATIVE_PATH.
set -e
prebuildify --napi --strip --tag-libc --quiet
mkdir -p build/Release
cp "prebuilds/linux-$(node -p process.arch)/vfio.glibc.node" build/Release/vfio.node
