#!/usr/bin/env bash
# ONNX Runtime's C header and Linux libraries, from package registries (nothing else is downloaded):
#   header   onnxruntime_c_api.h (+ the two it includes), ORT_API_VERSION 29: the official onnxruntime-android AAR
#            as repackaged in npm `com.github.asus4.onnxruntime@0.4.9` (Plugins/Android/onnxruntime.aar,
#            headers/). Maven Central's own onnxruntime-android AAR is not served to this project's machines.
#   library  libonnxruntime.so 1.29.0 for linux-x64 and linux-aarch64: Maven Central
#            `com.microsoft.onnxruntime:onnxruntime:1.29.0` (the JVM jar, ai/onnxruntime/native/linux-*/), the
#            same artifact the Kotlin library runs on. Header and library are the same release (API 29).
# Writes c/third_party/onnxruntime/{include,lib/linux-x64,lib/linux-aarch64}; does nothing when they are there.
set -euo pipefail
cd "$(dirname "$0")"
ORT_VERSION=1.29.0
NPM_HEADERS=com.github.asus4.onnxruntime@0.4.9
out=third_party/onnxruntime
if [ -f "$out/include/onnxruntime_c_api.h" ] && [ -f "$out/lib/linux-x64/libonnxruntime.so" ] \
   && [ -e "$out/lib/linux-aarch64/libonnxruntime.so.1" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out/include" "$out/lib/linux-x64" "$out/lib/linux-aarch64"
(cd "$tmp" && npm pack --silent "$NPM_HEADERS" >/dev/null)
tar -xzf "$tmp"/com.github.asus4.onnxruntime-*.tgz -C "$tmp" package/Plugins/Android/onnxruntime.aar
unzip -q -o -j "$tmp/package/Plugins/Android/onnxruntime.aar" headers/onnxruntime_c_api.h \
  headers/onnxruntime_ep_c_api.h headers/onnxruntime_error_code.h -d "$out/include"
grep -q '^#define ORT_API_VERSION 29$' "$out/include/onnxruntime_c_api.h" \
  || { echo "fetch_onnxruntime.sh: the header is not ORT_API_VERSION 29" >&2; exit 1; }
mvn -q -B dependency:copy -Dartifact="com.microsoft.onnxruntime:onnxruntime:$ORT_VERSION" -DoutputDirectory="$tmp" \
  -Dmdep.overWriteReleases=true
for arch in x64 aarch64; do
  unzip -q -o -j "$tmp/onnxruntime-$ORT_VERSION.jar" "ai/onnxruntime/native/linux-$arch/libonnxruntime.so" \
    -d "$out/lib/linux-$arch"
  ln -sf libonnxruntime.so "$out/lib/linux-$arch/libonnxruntime.so.1"  # its SONAME, what the loader looks for
done
echo "onnxruntime $ORT_VERSION: header from npm $NPM_HEADERS, libraries from Maven Central -> c/$out"
