#!/usr/bin/env bash
# Smoke-test a built bundle folder, offline and away from the checkout:
#   bash packaging/smoke-bundle.sh dist/bundle/xraystudio
# --version; inspect and segment the bundled sample; generate from it (4 steps); a 12-bit JPEG
# Extended DICOM decodes (imagecodecs plugin); the window starts offscreen, opens the sample,
# and closes on SIGINT with status 0.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
app="$(realpath "$1")"
exe="$app/xraystudio"
sample="$app/_internal/xraystudio/_resources/sample"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 QT_QPA_PLATFORM=offscreen HOME="$work/home"
export XDG_CONFIG_HOME="$work/config"
unset XRAYSTUDIO_RESOURCES PYTHONPATH VIRTUAL_ENV || true
mkdir -p "$HOME"
"$exe" --version
"$exe" inspect "$sample/synthetic_chest.png" > inspect.txt
"$exe" segment "$sample/synthetic_chest.png" --out masks > /dev/null
test -f masks/right_lung.png
"$exe" generate "$sample/synthetic_chest.png" --masks "$sample/synthetic_chest_masks.npz" \
    --out out --mode guided --steps 4 --seed 1 --device cpu
ls out/*.png > /dev/null
# A 12-bit JPEG Extended DICOM with the WG04 files' scan-header defect (made with the build
# venv's pydicom and imagecodecs) must be decoded by the bundle's imagecodecs plugin.
"${PYTHON:-$here/../.venv/bin/python}" - <<'PY'
import imagecodecs, numpy as np, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGExtended12Bit, generate_uid
arr = (np.add.outer(np.arange(64), np.arange(48)) * 30 % 4096).astype(np.uint16)
ds = Dataset()
ds.file_meta = FileMetaDataset()
ds.file_meta.TransferSyntaxUID = JPEGExtended12Bit
ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "PA"
ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 64, 48, 1, "MONOCHROME2"
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
jpeg = bytearray(imagecodecs.jpeg8_encode(arr, level=95, bitspersample=12))
sos = jpeg.find(b"\xff\xda")
jpeg[sos + 8] = 0  # spectral selection end 0, as in the WG04 *_JPLY files: only imagecodecs reads it
ds.PixelData = encapsulate([bytes(jpeg)])
ds["PixelData"].VR = "OB"
ds.save_as("jply.dcm", enforce_file_format=True)
PY
"$exe" inspect jply.dcm --json | grep -q '"decoder": "imagecodecs"'
start=$(date +%s)
"$exe" &
pid=$!
sleep 20
kill -INT "$pid"
wait "$pid"
echo "window: started, ran $(( $(date +%s) - start )) s, closed with status 0"
echo "bundle smoke test passed"
