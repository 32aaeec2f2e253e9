"""The official Albumentations step (``utils/augmentations.py``, class ``Albumentations``: Blur,
MedianBlur, ToGray, CLAHE with p=0.01 each, called by ``LoadImagesAndLabels.__getitem__`` after
the mosaic / letterbox branch and before augment_hsv) against our OpenCV version,
``yolov9lite.data.augment.albumentations_step``.

* each transform of ours against albumentations' own transform with the same parameters;
* the official class itself, every transform forced to p=1 (each subset of the four), with its
  random parameters played back to ours: same pixels, in the same order;
* the probabilities and ranges read from the official class equal our Hyp defaults and
  constants; the frequencies of both, with fixed seeds, agree with p=0.01;
* the dataset applies the step where the official code does, and switching it does not move any
  other random draw.

Tests needing albumentations or the official code skip, with the reason, when the test extra
'official' is absent (without albumentations the official class does nothing at all).
"""
from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from official_code import ALBUMENTATIONS_VERSION, albumentations, official
from scipy.stats import beta

from yolov9lite.data import augment as A
from yolov9lite.data import build_dataset, make_synthetic

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("Blur", "MedianBlur", "ToGray", "CLAHE")  # the official order
HYP_KEYS = dict(zip(NAMES, ("blur", "median_blur", "to_gray", "clahe")))
OUR_FUNCTIONS = dict(zip(NAMES, ("blur", "median_blur", "to_gray", "clahe")))


def _images():
    """Smooth and noisy uint8 BGR images of awkward sizes (odd, smaller than the 8 x 8 CLAHE
    grid in pixels per tile, not a multiple of it) with distinct channels."""
    import cv2

    rng = np.random.default_rng(7)
    out = []
    for h, w in ((64, 80), (37, 53), (9, 15), (120, 96)):
        noise = rng.integers(0, 256, (h, w, 3), np.uint8)
        coarse = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), np.uint8)
        out += [noise, cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)]
    return out


def test_pins_agree():
    """The albumentations the tests pin is the one the Makefile and the extra install."""
    pin = f"albumentations=={ALBUMENTATIONS_VERSION}"
    assert pin in (ROOT / "Makefile").read_text()
    extra = re.search(r"^official = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(),
                      re.MULTILINE | re.DOTALL).group(1)
    assert f'"{pin}"' in extra


# ------------------------------------------------------------------------ single transforms

def test_each_transform_equals_albumentations():
    """Same image, same parameter -> the same bytes as the albumentations transform's ``apply``
    (what its ``__call__`` runs once the parameter is drawn). Exact: both end in the same
    OpenCV calls."""
    alb = albumentations()
    blur, median, gray, clahe = (alb.Blur(p=1.0), alb.MedianBlur(p=1.0), alb.ToGray(p=1.0),
                                 alb.CLAHE(p=1.0))
    for k, image in enumerate(_images()):
        for ksize in A.BLUR_KERNEL_SIZES:
            assert np.array_equal(A.blur(image, ksize), blur.apply(image.copy(), ksize=ksize))
            assert np.array_equal(A.median_blur(image, ksize),
                                  median.apply(image.copy(), ksize=ksize))
        ours = A.to_gray(image)
        assert np.array_equal(ours, gray.apply(image.copy()))
        assert (ours == ours[..., :1]).all()
        for clip_limit in (1.0, 2.37, 4.0):
            assert np.array_equal(A.clahe(image, clip_limit),
                                  clahe.apply(image.copy(), clip_limit=clip_limit)), (k, clip_limit)
        assert not np.array_equal(A.clahe(image, 4.0), image)  # it does something


def test_transforms_leave_their_input_alone():
    image = _images()[1]
    before = image.copy()
    for out in (A.blur(image, 5), A.median_blur(image, 5), A.to_gray(image), A.clahe(image, 3.0)):
        assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(image, before)


# ----------------------------------------------------------------- against the official class

class _Playback:
    """Stand-in for our ``np.random.Generator``: ``random()`` is 0 (so a transform with p > 0
    applies, p = 0 does not), ``choice`` / ``uniform`` return what the official transforms drew
    with ``random.choice`` / ``random.uniform``, in order, after checking the same range."""

    def __init__(self, draws):
        self.draws = list(draws)

    def random(self):
        return 0.0

    def choice(self, options):
        kind, population, value = self.draws.pop(0)
        assert (kind, population) == ("choice", tuple(options))
        return value

    def uniform(self, low, high):
        kind, bounds, value = self.draws.pop(0)
        assert (kind, bounds) == ("uniform", (low, high))
        return value


def _record_draws(monkeypatch) -> list:
    draws = []
    real_choice, real_uniform = random.choice, random.uniform

    def choice(seq):
        value = real_choice(seq)
        draws.append(("choice", tuple(seq), value))
        return value

    def uniform(a, b):
        value = real_uniform(a, b)
        draws.append(("uniform", (a, b), value))
        return value

    monkeypatch.setattr(random, "choice", choice)
    monkeypatch.setattr(random, "uniform", uniform)
    return draws


def _official_step(size: int):
    albumentations()  # skip unless the pinned package is there: the class needs it
    step = official().augmentations.Albumentations(size=size)
    assert step.transform is not None  # the official class found albumentations and built it
    return step


@pytest.mark.parametrize("subset", [s for n in range(1, 5)
                                    for s in itertools.combinations(NAMES, n)],
                         ids=lambda s: "+".join(s))
def test_official_class_forced_to_p1_equals_ours(subset, monkeypatch):
    """The official ``Albumentations.__call__`` (its Compose, bounding-box handling and all) with
    the transforms of `subset` at p=1 and the others at p=0, against ours with the same
    probabilities and the official random parameters played back: the same bytes. The official
    labels come back equal to what went in (to float rounding), as ours are not touched."""
    step = _official_step(64)
    by_name = {type(t).__name__: t for t in step.transform.transforms}
    for name in NAMES:
        monkeypatch.setattr(by_name[name], "p", 1.0 if name in subset else 0.0)
    hyp = A.Hyp(**{HYP_KEYS[n]: 1.0 if n in subset else 0.0 for n in NAMES})
    labels = np.array([[0, 0.5, 0.5, 0.4, 0.3], [2, 0.2, 0.7, 0.1, 0.2]])
    for seed, image in enumerate(_images()[:4]):
        random.seed(seed)
        with monkeypatch.context() as patch:
            draws = _record_draws(patch)
            their_image, their_labels = step(image.copy(), labels.copy())
        playback = _Playback(draws)
        ours = A.albumentations_step(image.copy(), playback, hyp)
        assert not playback.draws  # every official draw used, none missing
        assert np.array_equal(ours, their_image), (subset, seed)
        assert np.allclose(their_labels, labels, rtol=0, atol=1e-12)


def test_probabilities_and_ranges_equal_the_official_class():
    """What the official class builds: the four transforms with p > 0 in our order, their p
    equal to our Hyp defaults, every other transform p = 0, the kernel sizes, CLAHE clip range
    and tile grid equal to our constants."""
    transforms = _official_step(64).transform.transforms
    active = [(type(t).__name__, t.p) for t in transforms if t.p > 0]
    assert active == [(n, getattr(A.Hyp(), HYP_KEYS[n])) for n in NAMES]
    by_name = {type(t).__name__: t for t in transforms}
    for name in ("Blur", "MedianBlur"):
        low, high = by_name[name].blur_limit
        assert tuple(range(low, high + 1, 2)) == A.BLUR_KERNEL_SIZES
    assert tuple(by_name["CLAHE"].clip_limit) == A.CLAHE_CLIP_LIMIT
    assert tuple(by_name["CLAHE"].tile_grid_size) == A.CLAHE_TILE_GRID


def test_probability_threshold_is_strict():
    """Applied when the draw is below p, not at p (the official ``random.random() < p``)."""

    class Fixed:
        def __init__(self, value):
            self.value = value

        def random(self):
            return self.value

        def choice(self, options):
            return options[0]

        def uniform(self, low, high):
            return low

    image = _images()[1]
    hyp = A.Hyp()
    assert A.albumentations_step(image, Fixed(0.01), hyp) is image
    assert not np.array_equal(A.albumentations_step(image, Fixed(np.nextafter(0.01, 0)), hyp),
                              image)
    off = A.Hyp(blur=0.0, median_blur=0.0, to_gray=0.0, clahe=0.0)
    assert A.albumentations_step(image, Fixed(0.0), off) is image


def _clopper_pearson(k: int, n: int, alpha: float = 1e-6) -> tuple[float, float]:
    low = 0.0 if k == 0 else beta.ppf(alpha / 2, k, n - k + 1)
    high = 1.0 if k == n else beta.ppf(1 - alpha / 2, k + 1, n - k)
    return low, high


def _counting(monkeypatch, owner, name: str, counts: dict, key: str):
    real = getattr(owner, name)

    def counted(*args, **kwargs):
        counts[key] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)


def test_frequencies_agree_with_p_001(monkeypatch):
    """How often each transform fires, ours (20000 calls, numpy seed 0) and the official class's
    (5000 calls, Python seed 0): p = 0.01 lies in each count's Clopper-Pearson interval at
    alpha = 1e-6. Fixed seeds of platform-independent generators (PCG64, MT19937) and counts that
    do not depend on pixel values: the same counts on every machine."""
    image = np.full((8, 8, 3), 100, np.uint8)
    ours = dict.fromkeys(NAMES, 0)
    for name in NAMES:
        _counting(monkeypatch, A, OUR_FUNCTIONS[name], ours, name)
    rng, n_ours = np.random.default_rng(0), 20000
    for _ in range(n_ours):
        A.albumentations_step(image, rng)
    step = _official_step(8)
    theirs = dict.fromkeys(NAMES, 0)
    for t in step.transform.transforms:
        if type(t).__name__ in NAMES:
            _counting(monkeypatch, t, "apply", theirs, type(t).__name__)
    random.seed(0)
    n_theirs, empty = 5000, np.zeros((0, 5))
    for _ in range(n_theirs):
        step(image, empty)
    for name in NAMES:
        for count, n in ((ours[name], n_ours), (theirs[name], n_theirs)):
            low, high = _clopper_pearson(count, n)
            assert low <= 0.01 <= high, (name, count, n)


# --------------------------------------------------------------------------------- dataset

@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn"), num_train=8, num_val=2, imgsz=96,
                          seed=3)


def test_dataset_calls_it_between_the_geometry_and_hsv(data_yaml, monkeypatch):
    """Order in ``__getitem__`` as in the official one: after random_affine (letterbox branch)
    or MixUp (mosaic branch), before augment_hsv; never in validation."""
    calls = []
    for name in ("random_affine", "mixup", "albumentations_step", "augment_hsv"):
        real = getattr(A, name)
        monkeypatch.setattr(A, name, lambda *a, _real=real, _name=name, **k: (
            calls.append(_name), _real(*a, **k))[1])
    hyp = {"mixup": 1.0}
    train = build_dataset(data_yaml, "train", imgsz=64, hyp=hyp, use_cache=False)
    train[(0, 5)]
    assert calls[-3:] == ["mixup", "albumentations_step", "augment_hsv"]
    calls.clear()
    train.set_mosaic(False)
    train[(0, 5)]
    assert calls == ["random_affine", "albumentations_step", "augment_hsv"]
    calls.clear()
    build_dataset(data_yaml, "val", imgsz=64, use_cache=False)[0]
    assert calls == []


def test_switching_it_moves_no_other_draw(data_yaml):
    """With HSV off, a sample with to_gray=1 is exactly the grey version of the same sample with
    the step off: mosaic, MixUp, affine and flips drew the same numbers (the step draws from a
    child generator), and the labels are the same."""
    base = {"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0, "mixup": 0.5}
    off = build_dataset(data_yaml, "train", imgsz=64, use_cache=False,
                        hyp={**base, "blur": 0.0, "median_blur": 0.0, "to_gray": 0.0, "clahe": 0.0})
    gray = build_dataset(data_yaml, "train", imgsz=64, use_cache=False,
                         hyp={**base, "blur": 0.0, "median_blur": 0.0, "to_gray": 1.0, "clahe": 0.0})
    for index, seed in ((0, 11), (3, 12), (5, 13)):
        image_off, labels_off, _ = off[(index, seed)]
        image_gray, labels_gray, _ = gray[(index, seed)]
        assert torch.equal(labels_off, labels_gray)
        bgr = np.ascontiguousarray(image_off.numpy()[::-1].transpose(1, 2, 0))
        expected = A.to_gray(bgr)
        assert np.array_equal(image_gray.numpy()[::-1].transpose(1, 2, 0), expected), index


def test_its_probabilities_are_checked_hyperparameters():
    """The four keys are known hyperparameters (a --hyp file may set them) and probabilities."""
    from yolov9lite.training.config import TrainConfig, TrainError

    assert TrainConfig(hyp={"blur": 0.0, "median_blur": 0.0, "to_gray": 0.0, "clahe": 0.0})
    assert TrainConfig().hyperparameters()["clahe"] == 0.01
    for key in HYP_KEYS.values():
        with pytest.raises(TrainError, match=f"hyperparameter {key} = 1.5: a probability"):
            TrainConfig(hyp={key: 1.5})
