"""The official YOLOv9 code as the oracle: our models, loss, training step, schedule, EMA and
augmentation against the real official classes and functions (PyPI ``yolo9``, pinned; see
:mod:`official_code`). Skipped, with the reason, when the test extra is not installed.

Every comparison is against what the official code computes on the same inputs, never against a
transcription of it.
"""
from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from official_code import YOLO9_VERSION, official, official_model

from yolov9lite import build_model
from yolov9lite.nn.head import DDetect, DualDDetect
from yolov9lite.nn.models import OFFICIAL_MODELS
from yolov9lite.training.loss import DetectionLoss
from yolov9lite.utils.safe_pickle import OFFICIAL_CLASSES, TORCH_NN_CLASSES
from yolov9lite.weights.official import official_key_map

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def default_dtype(dtype):
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def rel(a, b) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def test_pin_is_the_one_the_makefile_installs_and_the_package_never_imports_it():
    assert f"yolo9=={YOLO9_VERSION}" in (ROOT / "Makefile").read_text()
    for path in (ROOT / "yolov9lite").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+yolo9\b", path.read_text(),
                              re.MULTILINE), path


# ----------------------------------------------------------------------------------- models

_ALLOWED = ({f"{mod}.{name}" for mod, names in OFFICIAL_CLASSES.items() for name in names}
            | {f"{c.__module__}.{c.__qualname__}" for c in TORCH_NN_CLASSES})


def _released_name(cls) -> str:
    """The name a released checkpoint pickles ``cls`` under (``models.common.Conv`` ...)."""
    return f"{cls.__module__.removeprefix('yolo9.')}.{cls.__qualname__}"


@pytest.mark.parametrize("name", [*OFFICIAL_MODELS, "yolov7-af"])
def test_models_equal_the_official_builder(name):
    """Parameter count, every state-dict key (through our official key map) and every shape
    equal the official ``DetectionModel(models/detect/<name>.yaml)``; every class the official
    model is made of is one the checkpoint loader allows. Shape-only (meta device) builds."""
    theirs = official_model(name, meta=True)
    with torch.device("meta"):
        ours = build_model(name, 80)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    their_state, our_state = theirs.state_dict(), ours.state_dict()
    if name == "yolov7-af":  # a baseline with our own layout: same tensors, in the same order
        assert [tuple(t.shape) for t in our_state.values()] == \
            [tuple(t.shape) for t in their_state.values()]
        return
    mapping = official_key_map(ours)
    assert sorted(mapping.values()) == sorted(their_state)
    bad = [k for k, off in mapping.items() if our_state[k].shape != their_state[off].shape]
    assert not bad, bad[:5]
    used = {_released_name(type(m)) for m in theirs.modules()}
    assert used <= _ALLOWED, sorted(used - _ALLOWED)


# ------------------------------------------------------------------------------------- loss

NC, CH = 3, (8, 16, 16)
HYP = {"cls_pw": 1.0, "fl_gamma": 0.0, "label_smoothing": 0.0}  # official hyp.scratch-high.yaml


class _OfficialLossHost(torch.nn.Module):
    """The minimum the official ComputeLoss reads from a model: ``model[-1]`` (the head) and
    ``hyp``. The head is the real official one."""

    def __init__(self, head):
        super().__init__()
        self.model = torch.nn.ModuleList([head])
        self.hyp = HYP


def _official_head(dual: bool):
    yolo = official().yolo
    head = yolo.DualDDetect(NC, CH + CH) if dual else yolo.DDetect(NC, CH)
    head.stride = torch.tensor([8.0, 16.0, 32.0])
    return head


def _maps(batch: int, size: int, seed: int, heads: int):
    gen = torch.Generator().manual_seed(seed)
    out = [[torch.randn(batch, 64 + NC, size // s, size // s, generator=gen) * 2
            for s in (8, 16, 32)] for _ in range(heads)]
    return out if heads == 2 else out[0]


def _targets(seed: int, batch: int, per_image=(3, 0, 5, 1)):
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(batch):
        n = per_image[i % len(per_image)]
        xy = torch.rand(n, 2, generator=gen) * 0.8 + 0.1
        wh = torch.rand(n, 2, generator=gen) * 0.3 + 0.02
        cls = torch.randint(0, NC, (n, 1), generator=gen).to(xy.dtype)
        rows.append(torch.cat([torch.full((n, 1), float(i)), cls, xy, wh], 1))
    return torch.cat(rows)


@pytest.mark.parametrize("dual", [True, False])
def test_loss_equals_official_compute_loss(dual):
    """Ours vs the official ComputeLoss (``utils/loss_tal_dual.py`` for the dual head,
    ``utils/loss_tal.py`` for GELAN) on the same train-mode maps and targets, float64: loss and
    its three items within 1e-9 relative, and so are the gradients w.r.t. the maps."""
    off = official()
    with default_dtype(torch.float64):
        compute = (off.loss_tal_dual if dual else off.loss_tal).ComputeLoss(
            _OfficialLossHost(_official_head(dual)))
        ours = DetectionLoss(DualDDetect(NC, CH, CH) if dual else DDetect(NC, CH))
        for seed, batch, size in ((0, 4, 64), (1, 2, 96)):
            maps = _maps(batch, size, seed, 2 if dual else 1)
            flat = [m for head in maps for m in head] if dual else maps
            targets = _targets(seed, batch)
            a = [m.clone().requires_grad_() for m in flat]
            b = [m.clone().requires_grad_() for m in flat]
            pa = [a[:3], a[3:]] if dual else a
            pb = [b[:3], b[3:]] if dual else b
            loss_theirs, items_theirs = compute(pa, targets.clone())
            loss_ours, items_ours = ours(pb, targets.clone())
            assert items_theirs.dtype == torch.float64
            assert rel(loss_ours, loss_theirs) <= 1e-9
            assert rel(items_ours, items_theirs) <= 1e-9
            loss_theirs.backward()
            loss_ours.backward()
            for x, y in zip(b, a):
                assert rel(x.grad, y.grad) <= 1e-9


# -------------------------------------------------------------------------------------- EMA

def test_ema_is_bit_identical_to_official_model_ema():
    """Our ModelEMA vs the official ``utils/torch_utils.py`` ModelEMA over five updates of a
    model whose weights and BN statistics change between updates: every float tensor equal bit
    for bit, the integer BN counters left alone by both."""
    from yolov9lite.training.optim import ModelEMA

    torch.manual_seed(0)
    model = build_model("gelan-nano", 3)
    ours, theirs = ModelEMA(model), official().torch_utils.ModelEMA(model)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        with torch.no_grad():
            for t in model.state_dict().values():
                if t.is_floating_point():
                    t.add_(torch.randn(t.shape, generator=gen) * 0.1)
        ours.update(model)
        theirs.update(model)
    a, b = ours.module.state_dict(), theirs.ema.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]
    assert ours.updates == theirs.updates == 5


# --------------------------------------------------------------------------------- schedule

SCHEDULE_HYP = {"lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "warmup_momentum": 0.8,
                "warmup_bias_lr": 0.1, "weight_decay": 5e-4}  # official hyp.scratch-high.yaml


def _official_run(model, epochs, nb, batch, cos_lr, start_epoch=0, resume_from=None,
                  stop_after=None):
    """The schedule part of the official train_dual.py loop, driving the official optimizer
    (``smart_optimizer``) and ``one_cycle``, and torch's ``LambdaLR`` as the loop does: created
    before the loop, ``last_epoch = start_epoch - 1``, stepped at each epoch's end; the warm-up
    block sets lr and momentum per batch. A resume loads the optimizer state as
    ``smart_resume`` does. Yields ``(ni, epoch, [lr per group], momentum, accumulate)``; returns
    the optimizer state after epoch ``stop_after``. (The loop body itself is a function of the
    official ``train()``, which cannot be run piecewise; these are its scheduling lines.)"""
    off = official()
    hyp, nbs = dict(SCHEDULE_HYP), 64
    accumulate = max(round(nbs / batch), 1)
    hyp["weight_decay"] *= batch * accumulate / nbs
    optimizer = off.torch_utils.smart_optimizer(model, "SGD", hyp["lr0"], hyp["momentum"],
                                                hyp["weight_decay"])
    if cos_lr:
        lf = off.general.one_cycle(1, hyp["lrf"], epochs)
    else:  # train_dual.py's own lambda
        lf = lambda x: (1 - x / epochs) * (1.0 - hyp["lrf"]) + hyp["lrf"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lf)
    if resume_from is not None:
        optimizer.load_state_dict(resume_from)
    nw = max(round(3.0 * nb), 100)
    scheduler.last_epoch = start_epoch - 1
    for epoch in range(start_epoch, epochs):
        for i in range(nb):
            ni = i + nb * epoch
            if ni <= nw:
                xi = [0, nw]
                accumulate = max(1, np.interp(ni, xi, [1, nbs / batch]).round())
                for j, x in enumerate(optimizer.param_groups):
                    x["lr"] = np.interp(ni, xi, [hyp["warmup_bias_lr"] if j == 0 else 0.0,
                                                 x["initial_lr"] * lf(epoch)])
                    if "momentum" in x:
                        x["momentum"] = np.interp(ni, xi, [hyp["warmup_momentum"],
                                                           hyp["momentum"]])
            groups = optimizer.param_groups
            yield ni, epoch, [g["lr"] for g in groups], groups[0]["momentum"], int(accumulate)
        with warnings.catch_warnings():  # no optimizer.step() here: only the schedule is run
            warnings.simplefilter("ignore")
            scheduler.step()
        if epoch == stop_after:
            return optimizer.state_dict()
    return None


def _check_against_ours(run, epochs, nb, batch, cos_lr) -> int:
    from yolov9lite.training.optim import schedule, warmup_iters

    nw, n = warmup_iters(nb, 3.0), 0
    for ni, epoch, lrs, momentum, accumulate in run:
        ours = schedule(ni, epoch, epochs=epochs, nw=nw, batches_per_epoch=nb, batch_size=batch,
                        cos_lr=cos_lr, nominal_batch=64,
                        **{k: v for k, v in SCHEDULE_HYP.items() if k != "weight_decay"})
        where = f"ni {ni}, epoch {epoch}"
        assert ours["lr"] == pytest.approx(lrs, rel=1e-12, abs=1e-15), where
        assert ours["momentum"] == pytest.approx(momentum, rel=1e-12), where
        assert ours["accumulate"] == accumulate, where
        n += 1
    return n


@pytest.mark.parametrize("cos_lr", [False, True])
def test_schedule_over_a_500_epoch_run_and_resume_equals_the_official_loop(cos_lr):
    """Every batch of a 500-epoch run (7 batches per epoch: warm-up of 100 batches ends in
    epoch 14), then the same run resumed after epoch 5 (inside warm-up) and after epoch 250:
    lr of each group, momentum and accumulate equal the official loop's. The optimizer's groups
    hold the same trainable parameters as the official smart_optimizer's, in the same order."""
    from yolov9lite.training.optim import build_optimizer, scaled_weight_decay

    epochs, nb, batch = 500, 7, 16
    model = build_model("gelan-nano", 3)
    assert _check_against_ours(_official_run(model, epochs, nb, batch, cos_lr),
                               epochs, nb, batch, cos_lr) == epochs * nb
    theirs = official().torch_utils.smart_optimizer(model, "SGD", 0.01, 0.937, 5e-4)
    ours = build_optimizer(model, weight_decay=scaled_weight_decay(5e-4, batch), fused=False)
    for a, b in zip(ours.param_groups, theirs.param_groups, strict=True):
        # the official groups also hold the frozen DFL projection weight (no gradient, so SGD
        # skips it); ours leave frozen parameters out
        assert [id(p) for p in a["params"]] == [id(p) for p in b["params"] if p.requires_grad]
        assert a["weight_decay"] == b["weight_decay"] * batch * 4 / 64  # scaled as the loop does
    for k in (5, 250):
        gen = _official_run(model, epochs, nb, batch, cos_lr, stop_after=k - 1)
        try:
            while True:
                next(gen)
        except StopIteration as done:
            state = done.value
        resumed = _official_run(model, epochs, nb, batch, cos_lr, start_epoch=k, resume_from=state)
        assert _check_against_ours(resumed, epochs, nb, batch, cos_lr) == (epochs - k) * nb


# ---------------------------------------------------------------------------- training step

def _copy_official_weights(ours, theirs) -> None:
    state = theirs.state_dict()
    ours.load_state_dict({k: state[off] for k, off in official_key_map(ours).items()})


def _max_rel(ours_tensors: dict, their_tensors: dict) -> float:
    """Largest difference over all tensors relative to the largest magnitude among them."""
    keys = [k for k in ours_tensors if their_tensors[k].is_floating_point()]
    diff = max((ours_tensors[k] - their_tensors[k]).abs().max().item() for k in keys)
    return diff / max(their_tensors[k].abs().max().item() for k in keys)


@pytest.mark.parametrize("name", ["gelan-t", "yolov9-t"])
def test_two_training_steps_equal_the_official_ones(name):
    """One batch, forward + loss + backward + clip at 10 + SGD step, twice, in float64 at 64 px:
    the official model, ComputeLoss and smart_optimizer (lr 0.01, momentum 0.937, weight decay
    5e-4 on the decayed group) vs our model (same weights), DetectionLoss, build_optimizer and
    the engine's train_step / optimizer_step. Loss, every gradient and every weight and BN
    statistic after each step within 1e-12 relative to the largest of them; each step starts
    from the official weights (see below). (Float64 throughout, the default dtype
    included: the official loss keeps a float32 running total otherwise.)"""
    from yolov9lite.training.engine import State, optimizer_step, train_step
    from yolov9lite.training.optim import build_optimizer
    from yolov9lite.utils.runtime import DistInfo

    off = official()
    with default_dtype(torch.float64):
        torch.manual_seed(0)
        theirs = official_model(name, nc=NC).train()
        theirs.hyp = dict(HYP, box=7.5, cls=0.5, dfl=1.5)
        ours = build_model(name, NC).train()
        _copy_official_weights(ours, theirs)
        key = official_key_map(ours)
        loss_module = off.loss_tal_dual if ours.has_aux else off.loss_tal
        compute = loss_module.ComputeLoss(theirs)
        their_opt = off.torch_utils.smart_optimizer(theirs, "SGD", 0.01, 0.937, 5e-4)
        state = State(model=ours, net=ours, optimizer=build_optimizer(ours, weight_decay=5e-4),
                      scaler=torch.amp.GradScaler("cpu", enabled=False), ema=None)
        loss_fn = DetectionLoss(ours)
        gen = torch.Generator().manual_seed(3)
        for step in range(2):
            # each step starts from the official weights: the second step's gradient is so
            # sensitive that the official model's own gradient moves by ~2e-11 when its weights
            # get 5e-15 relative noise (the size of the first step's rounding differences), so
            # without this the second step would compare rounding noise, not the computation.
            # The optimizer states (momentum buffers) stay each implementation's own.
            _copy_official_weights(ours, theirs)
            x = torch.rand(2, 3, 64, 64, generator=gen, dtype=torch.float64)
            targets = _targets(step, 2, per_image=(3, 2))
            their_loss, _ = compute(theirs(x), targets.clone())
            their_loss.backward()
            ok, our_loss, _ = train_step(state, x, targets.clone(), loss_fn, DistInfo(), None,
                                         torch.zeros(3), step_due=False)
            assert ok and rel(our_loss, their_loss) <= 1e-12, step
            their_grads = {n: p.grad for n, p in theirs.named_parameters() if p.grad is not None}
            our_grads = {key[n]: p.grad for n, p in ours.named_parameters() if p.grad is not None}
            assert our_grads.keys() == their_grads.keys()
            assert _max_rel(our_grads, their_grads) <= 1e-12, step
            torch.nn.utils.clip_grad_norm_(theirs.parameters(), max_norm=10.0)
            their_opt.step()
            their_opt.zero_grad()
            optimizer_step(state)
            our_state = {key[k]: v for k, v in ours.state_dict().items()}
            assert _max_rel(our_state, theirs.state_dict()) <= 1e-12, step


# ----------------------------------------------------------------------------- augmentation

@pytest.mark.parametrize("training", [False, True])
def test_resized_images_equal_the_official_load_image(training, tmp_path):
    """Our load_resized vs the official ``LoadImagesAndLabels.load_image`` (run on a stand-in
    dataset object holding only what it reads) on PNGs of awkward sizes, shrinking and enlarging:
    same size (the official code truncates) and bit-identical pixels."""
    import cv2

    from yolov9lite.data.dataset import load_resized
    from yolov9lite.data.records import ImageRecord

    load_image = official().dataloaders.LoadImagesAndLabels.load_image
    rng = np.random.default_rng(0)
    imgsz = 64
    for h, w in ((37, 50), (100, 73), (127, 33), (48, 64), (30, 41), (64, 64), (97, 113)):
        path = tmp_path / f"{h}x{w}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        dataset = type("Stand-in", (), {"ims": [None], "im_files": [str(path)],
                                        "img_size": imgsz, "augment": training,
                                        "npy_files": [tmp_path / "absent.npy"]})()
        theirs = load_image(dataset, 0)[0]
        record = ImageRecord(str(path), 0, (h, w), np.zeros(0, np.int64), np.zeros((0, 4)))
        ours = load_resized(record, imgsz, training)
        assert ours.shape == theirs.shape, (h, w)
        assert np.array_equal(ours, theirs), (h, w)


class _Replay:
    """Records the random numbers an official function draws (its ``random.uniform`` and
    ``np.random.uniform`` / ``np.random.beta`` calls, in order), then plays them back to ours as
    a ``np.random.Generator`` stand-in: same draws, same ranges (checked)."""

    def __init__(self, monkeypatch):
        import random

        self.draws: list[tuple[str, float, float, float]] = []
        real_uniform, real_np_uniform, real_beta = random.uniform, np.random.uniform, np.random.beta

        def uniform(a, b):
            value = real_uniform(a, b)
            self.draws.append(("uniform", a, b, value))
            return value

        def np_uniform(low=0.0, high=1.0, size=None):
            values = real_np_uniform(low, high, size)
            self.draws += [("uniform", low, high, v) for v in np.atleast_1d(values)]
            return values

        def beta(a, b, size=None):
            value = real_beta(a, b, size)
            self.draws.append(("beta", a, b, value))
            return value

        real_sample = random.sample

        def sample(population, k):
            chosen = real_sample(population, k)
            self.draws.append(("sample", tuple(population), k, chosen))
            return chosen

        monkeypatch.setattr(random, "sample", sample)
        monkeypatch.setattr(random, "uniform", uniform)
        monkeypatch.setattr(np.random, "uniform", np_uniform)
        monkeypatch.setattr(np.random, "beta", beta)

    def _take(self, kind, a, b, size):
        n = 1 if size is None else int(np.prod(size))
        taken, self.draws = self.draws[:n], self.draws[n:]
        assert [(k, x, y) for k, x, y, _ in taken] == [(kind, a, b)] * n, (taken, kind, a, b)
        values = np.array([v for *_, v in taken])
        return values[0] if size is None else values.reshape(size)

    def uniform(self, low=0.0, high=1.0, size=None):
        return self._take("uniform", low, high, size)

    def beta(self, a, b, size=None):
        return self._take("beta", a, b, size)

    def choice(self, a, size, replace=True):
        """``rng.choice(a, k, replace=False)``: the official ``random.sample(list(a), k)``."""
        kind, population, k, chosen = self.draws.pop(0)
        assert (kind, population, k, replace) == ("sample", tuple(a), size, False)
        return np.array(chosen, dtype=np.asarray(a).dtype)


def _random_image(h, w, seed):
    """A smooth random image (noise would make every interpolation difference look large)."""
    import cv2

    noise = np.random.default_rng(seed).integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), np.uint8)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)


def test_random_perspective_equals_the_official_one(monkeypatch):
    """Our random_affine vs the official random_perspective with the same draws, at the recipe's
    settings (scale 0.9, translate 0.1) and with rotation and shear on: the image bit-identical,
    the kept boxes the same ones, equal within float32 rounding (ours warp in float32)."""
    from yolov9lite.data.augment import HYP_SCRATCH_HIGH, random_affine
    from yolov9lite.data.instances import Instances

    random_perspective = official().augmentations.random_perspective
    rng = np.random.default_rng(0)
    for seed, (degrees, shear) in enumerate([(0.0, 0.0), (10.0, 0.0), (0.0, 5.0)]):
        hyp = HYP_SCRATCH_HIGH.__class__(**{**vars(HYP_SCRATCH_HIGH), "degrees": degrees,
                                            "shear": shear})
        image = _random_image(96, 128, seed)
        xy = rng.uniform(0, [100, 70], (6, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 30, (6, 2))], 1).astype(np.float32)
        cls = np.arange(6) % NC
        import random

        random.seed(seed)
        replay = _Replay(monkeypatch)
        their_image, their_targets = random_perspective(
            image.copy(), np.concatenate([cls[:, None], boxes], 1).astype(np.float64), (),
            degrees=hyp.degrees, translate=hyp.translate, scale=hyp.scale, shear=hyp.shear,
            perspective=hyp.perspective)
        monkeypatch.undo()
        our_image, ours = random_affine(image.copy(), Instances(cls, boxes.copy()), hyp, replay)
        assert not replay.draws  # every draw used
        assert np.array_equal(our_image, their_image), seed
        assert np.array_equal(ours.cls, their_targets[:, 0].astype(ours.cls.dtype)), seed
        assert np.allclose(ours.boxes, their_targets[:, 1:], atol=1e-3, rtol=0), seed


def test_augment_hsv_and_mixup_equal_the_official_ones(monkeypatch):
    from yolov9lite.data.augment import augment_hsv, mixup
    from yolov9lite.data.instances import Instances

    off = official().augmentations
    for seed in range(3):
        image, other = _random_image(64, 80, seed), _random_image(64, 80, seed + 10)
        np.random.seed(seed)
        replay = _Replay(monkeypatch)
        theirs = image.copy()
        off.augment_hsv(theirs, hgain=0.015, sgain=0.7, vgain=0.4)  # in place
        their_mix, _ = off.mixup(image, np.zeros((0, 5)), other, np.zeros((0, 5)))
        monkeypatch.undo()
        assert np.array_equal(augment_hsv(image.copy(), replay, 0.015, 0.7, 0.4), theirs)
        empty = Instances(np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
        our_mix, _ = mixup(image, empty, other, empty, replay)
        assert np.array_equal(our_mix, their_mix), seed


def test_letterbox_equals_the_official_one():
    """Validation letterbox (official val.py: ``auto=False``, ``scaleup=False``) and the
    training one (``scaleup=True``): image, gains and padding."""
    from yolov9lite.data.augment import letterbox

    official_letterbox = official().augmentations.letterbox
    for seed, (h, w, shape) in enumerate([(37, 50, (64, 64)), (100, 73, (64, 96)),
                                          (64, 64, (64, 64)), (20, 90, (96, 64))]):
        image = _random_image(h, w, seed)
        for scaleup in (False, True):
            theirs, ratio, (dw, dh) = official_letterbox(image, shape, auto=False,
                                                         scaleup=scaleup)
            ours, (_, gain_w), (left, top) = letterbox(image, shape, scaleup=scaleup)
            assert np.array_equal(ours, theirs), (h, w, shape, scaleup)
            assert (left, top) == (round(dw - 0.1), round(dh - 0.1))
            assert ratio[0] == pytest.approx(gain_w, rel=0.05)  # theirs: the unrounded gain


def test_mosaic_equals_the_official_load_mosaic(monkeypatch):
    """Our mosaic4 + random_affine (the training sample of the recipe, copy-paste off) vs the
    official ``LoadImagesAndLabels.load_mosaic`` on a stand-in dataset holding four cached images
    (the official tile choice and shuffle fixed to 0, 1, 2, 3; its centre and warp draws replayed
    to ours): the 2s-canvas mosaic warped to s x s bit-identical, the same boxes kept."""
    import random

    from yolov9lite.data.augment import HYP_SCRATCH_HIGH, mosaic4, random_affine
    from yolov9lite.data.instances import Instances

    dataloaders = official().dataloaders
    s, rng = 64, np.random.default_rng(1)
    images = [_random_image(h, w, 20 + k) for k, (h, w) in
              enumerate([(64, 48), (40, 64), (64, 64), (33, 64)])]
    pixel_boxes = []
    for im in images:
        h, w = im.shape[:2]
        xy = rng.uniform(0, [w - 12, h - 12], (3, 2))
        pixel_boxes.append(np.concatenate([xy, np.minimum(xy + rng.uniform(6, 30, (3, 2)),
                                                          [w, h])], 1).astype(np.float32))
    cls = [np.array([0, 1, 2]) for _ in images]

    def xywhn(b, h, w):  # pixel xyxy -> the official label layout (cls, normalised xywh)
        return np.stack([(b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h,
                         (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h], 1)

    hyp = vars(HYP_SCRATCH_HIGH)
    dataset = type("Stand-in", (), {})()
    dataset.__dict__.update(
        img_size=s, mosaic_border=[-s // 2, -s // 2], indices=range(4),
        ims=images, im_hw0=[im.shape[:2] for im in images], im_hw=[im.shape[:2] for im in images],
        im_files=[""] * 4, npy_files=[None] * 4,
        labels=[np.concatenate([c[:, None], xywhn(b.astype(np.float64), *im.shape[:2])], 1)
                for c, b, im in zip(cls, pixel_boxes, images)],
        segments=[[] for _ in images],
        hyp={"copy_paste": 0.0, "degrees": hyp["degrees"], "translate": hyp["translate"],
             "scale": hyp["scale"], "shear": hyp["shear"], "perspective": hyp["perspective"]})
    dataset.load_image = lambda i: dataloaders.LoadImagesAndLabels.load_image(dataset, i)
    for seed in range(3):
        random.seed(seed)
        monkeypatch.setattr(random, "choices", lambda population, k: [1, 2, 3])
        monkeypatch.setattr(random, "shuffle", lambda x: None)
        replay = _Replay(monkeypatch)
        their_image, their_labels = dataloaders.LoadImagesAndLabels.load_mosaic(dataset, 0)
        monkeypatch.undo()
        canvas, inst = mosaic4([im.copy() for im in images],
                               [Instances(c, b.copy()) for c, b in zip(cls, pixel_boxes)],
                               s, replay)
        our_image, ours = random_affine(canvas, inst, HYP_SCRATCH_HIGH, replay, out_hw=(s, s))
        assert not replay.draws
        assert np.array_equal(our_image, their_image), seed
        assert np.array_equal(ours.cls, their_labels[:, 0].astype(ours.cls.dtype)), seed
        assert np.allclose(ours.boxes, their_labels[:, 1:], atol=1e-3, rtol=0), seed


def test_copy_paste_equals_the_official_one(monkeypatch):
    """Our copy_paste vs the official one with the same sample of objects, on an image with
    polygon objects (some mirrored onto others, so the IoA rule removes candidates): image
    bit-identical, the same labels and segments appended in the same order."""
    import random

    from yolov9lite.data.augment import copy_paste
    from yolov9lite.data.instances import Instances

    official_copy_paste = official().augmentations.copy_paste
    rng = np.random.default_rng(3)
    h, w = 96, 128
    for seed in range(4):
        centres = rng.uniform([10, 10], [w - 10, h - 10], (8, 2))
        angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        radii = rng.uniform(3, 12, (8, 1))
        segs = (centres[:, None] + radii[..., None] * np.stack([np.cos(angles), np.sin(angles)],
                                                               1)[None]).clip(0, [w, h])
        segs = segs.astype(np.float32)
        boxes = np.concatenate([segs.min(1), segs.max(1)], 1)
        cls = np.arange(8) % NC
        image = _random_image(h, w, 40 + seed)
        random.seed(seed)
        replay = _Replay(monkeypatch)
        labels = np.concatenate([cls[:, None], boxes], 1).astype(np.float64)
        their_image, their_labels, their_segs = official_copy_paste(
            image.copy(), labels, [sg.astype(np.float64) for sg in segs], p=0.5)
        monkeypatch.undo()
        our_image, ours = copy_paste(image.copy(), Instances(cls, boxes.copy(), segs.copy()),
                                     0.5, replay)
        assert not replay.draws
        assert len(ours) == len(their_labels) > 8, seed  # something was pasted
        assert np.array_equal(our_image, their_image), seed
        assert np.array_equal(ours.cls, their_labels[:, 0].astype(ours.cls.dtype)), seed
        assert np.allclose(ours.boxes, their_labels[:, 1:], atol=1e-4, rtol=0), seed
        assert np.allclose(ours.segments, np.stack(their_segs), atol=1e-4, rtol=0), seed
