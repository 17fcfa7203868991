#!/usr/bin/env bash
# Build the one-folder desktop bundle with PyInstaller and smoke-test it:
#   bash packaging/build-bundle.sh [DIST_DIR]     (default dist/bundle)
# Result: DIST_DIR/xraystudio/xraystudio (the command and the window), with the built-in models,
# the sample study, xraystudio.desktop and xraystudio.svg (icon) beside it; install-desktop.sh
# in that folder registers the menu entry for the current user.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dist="$(realpath -m "${1:-$root/dist/bundle}")"
cd "$root"
bash packaging/setup-env.sh
.venv/bin/python -m pip install -q "pyinstaller>=6.10"  # the [bundle] extra
.venv/bin/pyinstaller --noconfirm --distpath "$dist" --workpath "$root/build/pyinstaller" \
    packaging/xraystudio.spec
app="$dist/xraystudio"
cat > "$app/install-desktop.sh" <<'SH'
#!/usr/bin/env bash
# Add xraystudio to the desktop menu of the current user (no root needed).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/scalable/apps"
mkdir -p "$apps" "$icons"
cp "$here/_internal/xraystudio.svg" "$icons/xraystudio.svg"
sed "s|^Exec=xraystudio|Exec=\"$here/xraystudio\"|" "$here/_internal/xraystudio.desktop" \
    > "$apps/xraystudio.desktop"
echo "installed $apps/xraystudio.desktop"
SH
chmod +x "$app/install-desktop.sh"
bash packaging/smoke-bundle.sh "$app"
du -sh "$app"
