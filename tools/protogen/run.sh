#!/usr/bin/env bash
# Regenerates crates/proto/src/gen from proto/. protoc comes from PyPI's
# grpcio-tools, pinned so that the output is reproducible, in a virtualenv
# under the cargo target directory: nothing outside the package registries
# is needed.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="$target/protogen-venv"
if ! "$venv/bin/python" -c 'import grpc_tools' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'grpcio-tools==1.85.1'
fi
wrapper_dir="$(mktemp -d)"
trap 'rm -rf "$wrapper_dir"' EXIT
cat > "$wrapper_dir/protoc" <<SH
#!/usr/bin/env bash
exec "$venv/bin/python" -m grpc_tools.protoc "\$@"
SH
chmod +x "$wrapper_dir/protoc"
export PROTOC="$wrapper_dir/protoc"
cargo run --quiet --manifest-path "$root/tools/protogen/Cargo.toml" --target-dir "$target/protogen" -- "$root"
rustfmt --edition 2024 "$root"/crates/proto/src/gen/*.rs
