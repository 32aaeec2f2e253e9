#!/usr/bin/env bash
# Download COCO 2017 for yolov9lite into ../datasets/coco (the `path` of data/coco.yaml).
#
#   bash data/download_coco.sh            # train + val images, labels, annotations (~20 GB)
#   bash data/download_coco.sh --val-only # val images + annotations only (~1 GB): evaluation
#   DEST=/big/disk/coco bash data/download_coco.sh   # elsewhere (then edit `path` in coco.yaml)
#
# Needs internet, curl and unzip. Never run by the tests (CI uses the synthetic set).
# Sources:
#  - images and instances JSON: the COCO project (images.cocodataset.org), CC BY 4.0;
#  - YOLO-format polygon labels + train2017.txt/val2017.txt: the labels archive the official
#    YOLOv9 README points to (coco2017labels-segments.zip), converted from the same JSON.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dest="${DEST:-$here/../datasets/coco}"
val_only=0
[[ "${1:-}" == "--val-only" ]] && val_only=1
mkdir -p "$dest/images" "$dest/annotations"
cd "$dest"

fetch() {  # fetch URL into the current folder unless already complete, then unzip
  local url="$1" file
  file="$(basename "$url")"
  if [[ ! -f "$file.done" ]]; then
    curl -L --fail --retry 3 -C - -o "$file" "$url"
    unzip -q -o "$file" -d "${2:-.}"
    rm -f "$file"
    touch "$file.done"
  fi
}

fetch http://images.cocodataset.org/annotations/annotations_trainval2017.zip .
fetch http://images.cocodataset.org/zips/val2017.zip images
if [[ $val_only == 0 ]]; then
  fetch http://images.cocodataset.org/zips/train2017.zip images
  # polygon labels (labels/{train,val}2017/*.txt) and the image lists train2017.txt/val2017.txt
  fetch https://github.com/ultralytics/yolov5/releases/download/v1.0/coco2017labels-segments.zip ..
fi
echo "COCO 2017 is in $dest; point data/coco.yaml 'path' there if you changed DEST."
