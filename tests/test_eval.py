"""Tests of the COCO evaluation (yolov9lite/evaluation/coco_eval.py; protocol of the official val.py).

AP numbers are checked against pycocotools called directly on the same JSON, never against
hard-coded values, except the perfect-prediction case where AP = 1.0 by definition.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolov9lite.evaluation.coco_eval import (
    COCO80_TO_91,
    COCO91_TO_80,
    METRIC_KEYS,
    coco_metrics,
    detections_to_coco_json,
    evaluate,
    format_coco_summary,
)

CAT_IDS = [1, 3, 18, 44, 90]  # a few COCO ids, with gaps, so that the id mapping matters


# --------------------------------------------------------------------------- helpers
def make_gt(n_images=12, seed=0, cat_ids=CAT_IDS, max_boxes=6):
    """Random COCO ground truth: image sizes, classes and box sizes from small to large."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(n_images):
        w, h = int(rng.integers(200, 640)), int(rng.integers(200, 640))
        images.append({"id": 100 + i, "width": w, "height": h, "file_name": f"{100 + i}.jpg"})
        for _ in range(int(rng.integers(0 if i else 1, max_boxes + 1))):
            bw = float(np.exp(rng.uniform(np.log(8), np.log(min(w, h) * 0.9))))
            bh = float(np.clip(bw * np.exp(rng.uniform(-0.5, 0.5)), 4, h - 1))
            x, y = float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh))
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "bbox": [x, y, bw, bh],
                         "category_id": int(rng.choice(cat_ids)), "area": bw * bh, "iscrowd": 0})
    cats = [{"id": c, "name": f"class{c}"} for c in cat_ids]
    return {"images": images, "annotations": anns, "categories": cats}


def noisy_dets(gt, seed=1, n_false=3):
    """Detections: jittered GT boxes (some dropped, some with the wrong class) plus false positives,
    with random scores, so AP is strictly between 0 and 1 in every area range."""
    rng = np.random.default_rng(seed)
    dets = []
    cat_ids = [c["id"] for c in gt["categories"]]
    for a in gt["annotations"]:
        if rng.random() < 0.15:
            continue
        x, y, w, h = a["bbox"]
        j = rng.normal(0, 0.08, 4) * [w, h, w, h]
        cat = a["category_id"] if rng.random() > 0.1 else int(rng.choice(cat_ids))
        dets.append({"image_id": a["image_id"], "category_id": cat,
                     "bbox": [x + j[0], y + j[1], w + j[2], h + j[3]],
                     "score": float(rng.uniform(0.05, 1))})
    for im in gt["images"]:
        for _ in range(n_false):
            w, h = rng.uniform(5, im["width"] / 2), rng.uniform(5, im["height"] / 2)
            dets.append({"image_id": im["id"], "category_id": int(rng.choice(cat_ids)),
                         "bbox": [float(rng.uniform(0, im["width"] - w)),
                                  float(rng.uniform(0, im["height"] - h)), float(w), float(h)],
                         "score": float(rng.uniform(0, 0.6))})
    return dets


def pycocotools_stats(gt_path, dets_path, cat_ids=None):
    """COCOeval.stats computed directly, the way the official val.py does it."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        ev = COCOeval(coco_gt, coco_gt.loadRes(str(dets_path)), "bbox")
        if cat_ids is not None:
            ev.params.catIds = cat_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def dump(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return path


# --------------------------------------------------------------------------- category ids
def test_coco80_to_91_table():
    assert len(COCO80_TO_91) == 80 and COCO80_TO_91 == sorted(set(COCO80_TO_91))
    assert COCO80_TO_91[0] == 1 and COCO80_TO_91[-1] == 90
    missing = set(range(1, 91)) - set(COCO80_TO_91)
    assert missing == {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}  # official coco80_to_coco91_class
    assert all(COCO91_TO_80[COCO80_TO_91[i]] == i for i in range(80))


def test_class_mapping_round_trips_through_json():
    cls = torch.arange(80, dtype=torch.float)
    det = torch.cat((torch.tensor([[1.0, 2.0, 3.0, 4.0, 0.5]]).repeat(80, 1), cls[:, None]), 1)
    recs = detections_to_coco_json([det], [7])
    assert [COCO91_TO_80[r["category_id"]] for r in recs] == list(range(80))
    custom = [10, 20, 30]  # a non-COCO dataset's own category ids
    recs = detections_to_coco_json([det[:3]], [7], category_ids=custom)
    assert [custom.index(r["category_id"]) for r in recs] == [0, 1, 2]
    with pytest.raises(ValueError):
        detections_to_coco_json([det[:4]], [7], category_ids=custom)  # class 3 is unmapped


def test_json_format_and_rounding():
    det = torch.tensor([[10.123456, 20.5, 30.0004, 60.75, 0.123456789, 2.0],
                        [0.0, 0.0, 1.0, 1.0, 0.9, 0.0]])
    recs = detections_to_coco_json([det, det[:0], det[1:]], [5, 6, "img_b"])
    assert len(recs) == 3 and [r["image_id"] for r in recs] == [5, 5, "img_b"]
    r = recs[0]
    assert r["category_id"] == COCO80_TO_91[2]
    # [x_left, y_top, w, h] with the official per-value Python rounding
    x1, y1, x2, y2, s = det[0, :5].tolist()
    assert r["bbox"] == [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)]
    assert r["score"] == round(s, 5)
    json.dumps(recs)  # plain Python types only
    assert detections_to_coco_json([det[:0]], [1]) == []


def test_vectorised_rounding_equals_python_round():
    """np.round on float32-origin values equals Python's round() (why: see the docstring)."""
    rng = np.random.default_rng(0)
    x = (rng.uniform(0, 640, 20000).astype(np.float32)).astype(np.float64)
    x[:7] = [0.0125, 0.0005, 2.5, 1.0005, 0.00015, 639.9995, 0.5]  # float32 near-ties
    x = x.astype(np.float32).astype(np.float64)
    assert np.round(x, 3).tolist() == [round(v, 3) for v in x.tolist()]
    assert np.round(x / 640, 5).tolist() == [round(v, 5) for v in (x / 640).tolist()]


# --------------------------------------------------------------------------- metrics
def test_perfect_predictions_give_ap_1(tmp_path):
    gt = make_gt(seed=3)
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
             "score": 1.0} for a in gt["annotations"]]
    m = coco_metrics(dump(tmp_path, "gt.json", gt), dets)
    for k in ("AP", "AP50", "AP75", "AR100"):
        assert m[k] == pytest.approx(1.0, abs=1e-12), k
    for k in ("APS", "APM", "APL"):
        assert m[k] == pytest.approx(1.0, abs=1e-12) or m[k] == -1  # -1: no GT of that size
    assert all(v == pytest.approx(1.0) for v in m["per_class_AP"].values())


@pytest.mark.parametrize("shift", [2.0, 7.5])
def test_shifted_boxes_match_pycocotools(tmp_path, shift):
    """Boxes shifted by a known amount: our numbers are pycocotools' on the same JSON files."""
    gt = make_gt(seed=4)
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"],
             "bbox": [a["bbox"][0] + shift, a["bbox"][1] - shift / 2, *a["bbox"][2:]],
             "score": 0.3 + 0.7 * (k % 7) / 7} for k, a in enumerate(gt["annotations"])]
    gt_path, det_path = dump(tmp_path, "gt.json", gt), dump(tmp_path, "dets.json", dets)
    m = coco_metrics(gt_path, det_path)
    ref = pycocotools_stats(gt_path, det_path)
    assert [m[k] for k in METRIC_KEYS] == ref.tolist()
    assert 0 < m["AP"] < 1  # the shift really costs AP at the high IoU thresholds
    for cid in CAT_IDS:  # per-class AP = pycocotools restricted to that category
        assert m["per_class_AP"][cid] == pytest.approx(
            pycocotools_stats(gt_path, det_path, [cid])[0], abs=1e-12)


def test_noisy_detections_match_pycocotools_and_inputs_unchanged(tmp_path):
    gt = make_gt(seed=5)
    dets = noisy_dets(gt)
    snapshot = json.dumps([gt, dets])
    gt_path, det_path = dump(tmp_path, "gt.json", gt), dump(tmp_path, "dets.json", dets)
    m = coco_metrics(gt, dets)  # dict inputs
    assert [m[k] for k in METRIC_KEYS] == pycocotools_stats(gt_path, det_path).tolist()
    assert json.dumps([gt, dets]) == snapshot  # loadRes edits records; we pass it copies


def test_faster_coco_eval_gives_identical_numbers():
    pytest.importorskip("faster_coco_eval")
    gt = make_gt(n_images=40, seed=6, max_boxes=10)
    dets = noisy_dets(gt, seed=7, n_false=5)
    ref = coco_metrics(gt, dets, backend="pycocotools")
    fast = coco_metrics(gt, dets, backend="faster_coco_eval")
    assert 0.05 < ref["AP"] < 0.95 and all(ref[k] > 0 for k in METRIC_KEYS)  # non-trivial case
    assert [fast[k] for k in METRIC_KEYS] == [ref[k] for k in METRIC_KEYS]
    assert fast["per_class_AP"] == ref["per_class_AP"]
    assert fast["per_class_AP50"] == ref["per_class_AP50"]


def test_img_ids_restricts_evaluation(tmp_path):
    gt = make_gt(seed=8)
    dets = noisy_dets(gt, seed=9)
    keep = [im["id"] for im in gt["images"][:5]]
    m = coco_metrics(gt, [d for d in dets if d["image_id"] in keep], img_ids=keep)
    sub = {**gt, "images": gt["images"][:5],
           "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}
    ref = pycocotools_stats(dump(tmp_path, "gt.json", sub),
                            dump(tmp_path, "d.json", [d for d in dets if d["image_id"] in keep]))
    assert [m[k] for k in METRIC_KEYS] == ref.tolist()
    with pytest.raises(ValueError, match="not among the evaluated"):
        coco_metrics(gt, dets, img_ids=keep)


def test_missing_area_and_iscrowd_are_filled_with_box_area(tmp_path):
    gt = make_gt(seed=10)
    dets = noisy_dets(gt, seed=11)
    bare = {**gt, "annotations": [{k: v for k, v in a.items() if k not in ("area", "iscrowd")}
                                  for a in gt["annotations"]]}
    for a in gt["annotations"]:
        a["area"] = a["bbox"][2] * a["bbox"][3]
    assert coco_metrics(bare, dets) == coco_metrics(gt, dets)


def test_no_ground_truth_gives_zeros_and_warning():
    gt = make_gt(seed=12)
    gt["annotations"] = []
    dets = [{"image_id": 100, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}]
    for backend in ("pycocotools", "faster_coco_eval"):
        with pytest.warns(RuntimeWarning, match="no annotations"):
            m = coco_metrics(gt, dets, backend=backend)
        assert all(m[k] == 0.0 for k in METRIC_KEYS)
        assert set(m["per_class_AP"]) == set(CAT_IDS)


def test_no_detections_give_zero_ap():
    gt = make_gt(seed=13)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = coco_metrics(gt, [])
    assert m["AP"] == 0.0 and m["AR100"] == 0.0
    assert coco_metrics(gt, [], backend="faster_coco_eval")["AP"] == 0.0


def test_bad_backend():
    with pytest.raises(ValueError, match="backend"):
        coco_metrics(make_gt(), [], backend="nope")


def test_summary_has_the_12_standard_lines():
    m = {k: i / 100 for i, k in enumerate(METRIC_KEYS)}
    lines = format_coco_summary(m).splitlines()
    assert len(lines) == 12
    assert lines[0] == " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.000"
    assert lines[6] == " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.060"
    # same layout as pycocotools' own summarize()
    gt = make_gt(seed=14)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(noisy_dets(gt)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    theirs = [ln for ln in buf.getvalue().splitlines() if ln.startswith(" Average")]
    ours = format_coco_summary(dict(zip(METRIC_KEYS, ev.stats))).splitlines()
    assert ours == theirs


# --------------------------------------------------------------------------- evaluate()
def letterbox_meta(h0, w0, size):
    """ratio_pad of a centred letterbox of an (h0, w0) image into size x size (loader contract)."""
    r = min(size / h0, size / w0)
    nh, nw = round(h0 * r), round(w0 * r)
    return ((nh / h0, nw / w0), ((size - nw) / 2, (size - nh) / 2))


class OracleModel(torch.nn.Module):
    """Stand-in detector: returns, for each batch, pre-computed (B, 4 + nc, A) predictions
    (GT boxes in letterboxed coordinates, score 0.9 for the true class) plus low-score noise."""

    def __init__(self, preds):
        super().__init__()
        self.preds = list(preds)
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, x):
        assert x.dtype == torch.float32 and float(x.max()) <= 1.0  # images scaled to 0-1
        assert not self.training
        out = self.preds[self.calls]
        self.calls += 1
        return (out, "extra")  # a tuple output: evaluate uses the first element


def make_fake_val(gt, size=160, batch=4, anchors=50):
    """A fake loader in the build_dataloader contract plus the matching oracle predictions."""
    cat_to_cls = {c: i for i, c in enumerate(CAT_IDS)}
    nc = len(CAT_IDS)
    batches, preds = [], []
    images = gt["images"]
    for s in range(0, len(images), batch):
        ims = images[s:s + batch]
        metas, pred = [], torch.zeros(len(ims), 4 + nc, anchors)
        pred[:, 4:] = 0.0005  # below conf_thres: must be dropped
        for b, im in enumerate(ims):
            ratio_pad = letterbox_meta(im["height"], im["width"], size)
            (gh, gw), (pw, ph) = ratio_pad
            metas.append({"path": im["file_name"], "image_id": im["id"],
                          "orig_shape": (im["height"], im["width"]), "ratio_pad": ratio_pad})
            anns = [a for a in gt["annotations"] if a["image_id"] == im["id"]]
            if anns:
                xywh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float64)
                cxcy = xywh[:, :2] + xywh[:, 2:] / 2
                box = torch.cat((cxcy[:, :1] * gw + pw, cxcy[:, 1:] * gh + ph,
                                 xywh[:, 2:3] * gw, xywh[:, 3:4] * gh), 1)
                pred[b, :4, :len(anns)] = box.T.float()
                cls = torch.tensor([cat_to_cls[a["category_id"]] for a in anns])
                pred[b, 4 + cls, torch.arange(len(anns))] = 0.9
        imgs = torch.randint(0, 256, (len(ims), 3, size, size), dtype=torch.uint8)
        batches.append((imgs, torch.zeros(0, 6), metas))
        preds.append(pred)
    return batches, OracleModel(preds)


def test_evaluate_end_to_end_with_fake_loader(tmp_path):
    """Letterboxed oracle boxes -> NMS -> scale_boxes -> JSON -> pycocotools gives AP ~ 1."""
    gt = make_gt(n_images=10, seed=15)
    loader, model = make_fake_val(gt)
    model.train()
    cfg = {"names": [f"class{c}" for c in CAT_IDS], "nc": len(CAT_IDS), "category_ids": CAT_IDS}
    out = tmp_path / "sub" / "dets.json"
    m = evaluate(model, cfg, dataloader=loader, gt=gt, save_json=out, batch_size=4)
    assert model.training  # mode restored
    assert m["n_images"] == 10 and m["n_detections"] == len(gt["annotations"])
    # float32 letterbox round trip moves boxes by ~1e-4 px: IoU ~ 1, so AP = 1 at every threshold
    assert m["AP"] == pytest.approx(1.0) and m["AP75"] == pytest.approx(1.0)
    assert set(m["per_class"]) == {f"class{c}" for c in CAT_IDS}
    dets = json.loads(out.read_text())
    assert len(dets) == m["n_detections"]
    assert {d["category_id"] for d in dets} <= set(CAT_IDS)
    ref = pycocotools_stats(dump(tmp_path, "gt.json", gt), out)
    assert [m[k] for k in METRIC_KEYS] == ref.tolist()


def test_evaluate_empty_ground_truth_warns(tmp_path):
    gt = make_gt(n_images=4, seed=16)
    loader, model = make_fake_val(gt)
    gt["annotations"] = []
    with pytest.warns(RuntimeWarning, match="no annotations"):
        m = evaluate(model, {"names": None, "nc": len(CAT_IDS)}, dataloader=loader, gt=gt)
    assert all(m[k] == 0.0 for k in METRIC_KEYS)


# The `yolov9lite val` command (run folder, table, one-line errors): tests/test_cli_val.py


def test_evaluate_gelan_nano_end_to_end(tmp_path):
    """A real (untrained) model through the whole pipeline on rectangular 96x128 batches."""
    yolov9lite = pytest.importorskip("yolov9lite")
    if not hasattr(yolov9lite, "build_model"):
        pytest.skip("model zoo not available")
    torch.manual_seed(0)
    model = yolov9lite.build_model("gelan-nano", 3)
    gt = make_gt(n_images=4, seed=18, cat_ids=[1, 2, 3])
    for im in gt["images"]:  # all 3:4 images, letterboxed to 96x128 with a single gain
        im["height"], im["width"] = 300, 400
    gt["annotations"] = [a for a in gt["annotations"]
                         if a["bbox"][0] + a["bbox"][2] <= 400 and a["bbox"][1] + a["bbox"][3] <= 300]
    metas = [{"path": "", "image_id": im["id"], "orig_shape": (300, 400),
              "ratio_pad": ((0.32, 0.32), (0.0, 0.0))} for im in gt["images"]]
    loader = [(torch.randint(0, 256, (2, 3, 96, 128), dtype=torch.uint8), torch.zeros(0, 6),
               metas[i:i + 2]) for i in (0, 2)]
    out = tmp_path / "dets.json"
    cfg = {"names": ["a", "b", "c"], "nc": 3, "category_ids": [1, 2, 3]}
    # an untrained head scores near its bias prior (2.6e-4 to 4e-3 by level): a lower threshold
    # gives many boxes, so max_det really caps them
    m = evaluate(model, cfg, dataloader=loader, gt=gt, conf_thres=1e-4, max_det=50,
                 save_json=out)
    assert 0 < m["n_detections"] <= 4 * 50 and m["n_images"] == 4
    dets = json.loads(out.read_text())
    xywh = np.array([d["bbox"] for d in dets])
    assert (xywh[:, :2] >= 0).all() and (xywh[:, 0] + xywh[:, 2] <= 400 + 1e-3).all()
    assert (xywh[:, 1] + xywh[:, 3] <= 300 + 1e-3).all()  # clipped to the original image
    ref = pycocotools_stats(dump(tmp_path, "gt.json", gt), out)
    assert [m[k] for k in METRIC_KEYS] == ref.tolist()
    assert set(m["per_class"]) == {"a", "b", "c"}


def test_half_is_ignored_on_cpu_and_restored_on_cuda():
    gt = make_gt(n_images=4, seed=19)
    loader, model = make_fake_val(gt)
    m = evaluate(model, {}, dataloader=loader, gt=gt, half=True, device="cpu")  # float32 asserted
    assert m["AP"] == pytest.approx(1.0) and model.w.dtype == torch.float32
    if torch.cuda.is_available():  # FP16 inference as in the official val.py; dtype restored
        net = __import__("yolov9lite").build_model("gelan-nano", 3)
        metas = [{"path": "", "image_id": 100, "orig_shape": (300, 400),
                  "ratio_pad": ((0.32, 0.32), (0.0, 0.0))}]
        batch = [(torch.zeros(1, 3, 96, 128, dtype=torch.uint8), torch.zeros(0, 6), metas)]
        evaluate(net, {}, dataloader=batch, gt=gt, half=True, device="cuda")
        assert next(net.parameters()).dtype == torch.float32


def test_evaluate_rejects_a_class_count_mismatch():
    gt = make_gt(n_images=4, seed=20)
    loader, model = make_fake_val(gt)
    with pytest.raises(ValueError, match="predicts 5 classes but the dataset has 3"):
        evaluate(model, {"nc": 3, "category_ids": [1, 2, 3]}, dataloader=loader, gt=gt)


# --------------------------------------------------------------------------- with yolov9lite.data
def write_yolo_dataset(root, boxes_per_image, names=("a", "b", "c")):
    """A YOLO-text-label dataset: uniform PNG images whose grey level encodes their index k
    (20 + 10 k), with the longest side 128 so the loader does not resize them at imgsz=128.
    boxes_per_image[k] = (h, w, [(cls, x1, y1, x2, y2) in pixels])."""
    cv2 = pytest.importorskip("cv2")
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for k, (h, w, boxes) in enumerate(boxes_per_image):
        cv2.imwrite(str(root / "images" / "val" / f"{k + 1}.png"),
                    np.full((h, w, 3), 20 + 10 * k, np.uint8))
        lines = [f"{c} {(x1 + x2) / 2 / w} {(y1 + y2) / 2 / h} {(x2 - x1) / w} {(y2 - y1) / h}"
                 for c, x1, y1, x2, y2 in boxes]
        (root / "labels" / "val" / f"{k + 1}.txt").write_text("\n".join(lines))
    yml = root / "data.yaml"
    yml.write_text(f"path: {root}\ntrain: images/val\nval: images/val\nnames: {list(names)}\n")
    return yml


class PixelOracle(torch.nn.Module):
    """Predicts the true boxes using only the image: the grey level says which image it is and the
    non-pad region says where the letterbox put it (the loader's pad value is 114)."""

    def __init__(self, boxes_per_image, nc=3, anchors=16):
        super().__init__()
        self.boxes, self.nc, self.anchors = boxes_per_image, nc, anchors
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        pred = torch.zeros(x.shape[0], 4 + self.nc, self.anchors)
        for b, im in enumerate(x[:, 0] * 255):  # loop over the test batch only
            rows, cols = ((im - 114).abs() > 2).nonzero(as_tuple=True)
            top, left = int(rows.min()), int(cols.min())
            k = round((float(im[top, left]) - 20) / 10)
            for j, (c, x1, y1, x2, y2) in enumerate(self.boxes[k][2]):
                pred[b, :4, j] = torch.tensor([(x1 + x2) / 2 + left, (y1 + y2) / 2 + top,
                                               x2 - x1, y2 - y1])
                pred[b, 4 + c, j] = 0.9
        return pred


def test_evaluate_yolo_text_dataset_through_data_package(tmp_path):
    data = pytest.importorskip("yolov9lite.data")
    if not all(hasattr(data, f) for f in ("build_dataloader", "dataset_to_coco")):
        pytest.skip("data pipeline not available")
    boxes = [(96, 128, [(0, 10, 10, 50, 40), (2, 60, 20, 120, 90)]),
             (128, 80, [(1, 5, 30, 70, 120)]),
             (128, 128, [(0, 0, 0, 128, 128), (1, 30, 30, 40, 44), (1, 32, 31, 42, 45)]),
             (100, 128, [])]  # a background image
    yml = write_yolo_dataset(tmp_path / "ds", boxes)
    out = tmp_path / "dets.json"
    m = evaluate(PixelOracle(boxes), str(yml), imgsz=128, batch_size=2, workers=0,
                 save_json=out)
    assert m["n_images"] == 4 and m["n_detections"] == 6
    assert m["AP"] == pytest.approx(1.0) and m["AR100"] == pytest.approx(1.0)
    gt = data.dataset_to_coco(data.load_data_config(str(yml)), "val")
    assert [m[k] for k in METRIC_KEYS] == pycocotools_stats(dump(tmp_path, "gt.json", gt),
                                                            out).tolist()
    assert set(m["per_class"]) == {"a", "b", "c"}


def test_evaluate_dataset_without_labels_warns_and_returns_zeros(tmp_path):
    data = pytest.importorskip("yolov9lite.data")
    if not all(hasattr(data, f) for f in ("build_dataloader", "dataset_to_coco")):
        pytest.skip("data pipeline not available")
    boxes = [(96, 128, []), (128, 80, [])]
    yml = write_yolo_dataset(tmp_path / "ds", boxes)
    model = PixelOracle([(h, w, [(0, 1, 1, 20, 20)]) for h, w, _ in boxes])  # false positives
    with pytest.warns(RuntimeWarning, match="no annotations"):
        m = evaluate(model, str(yml), imgsz=128, batch_size=2, workers=0)
    assert all(m[k] == 0.0 for k in METRIC_KEYS) and m["n_detections"] == 2
