"""Official checkpoint import, our checkpoint format, convert/deploy, and refusing unsafe files.

Official sources: the layer order of ``models/detect/*.yaml``, ``tools/reparameterization.ipynb``
(converted checkpoints), ``train_dual.py`` (what a ``.pt`` holds). The official-layout files are
written by ``tests/fixtures_official.py`` without the official code; equality is checked against
our model holding the same weights (the reference). The layer table itself is checked here against
facts measured with the official builder (tensor counts, per-layer parameter counts). Crafted
files (code execution, resource bombs) must be refused through every entry point.
"""
from __future__ import annotations

import builtins
import functools
import importlib.util
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from fixtures_official import official_modules, write_official_checkpoint
from helpers import randomize_batchnorm

from yolov9lite import build_model
from yolov9lite.cli.checkpoints import convert_main, deploy_main
from yolov9lite.nn.models import OFFICIAL_MODELS
from yolov9lite.utils.safe_pickle import CheckpointError, UnsafeCheckpointError
from yolov9lite.weights.checkpoint import (
    load_checkpoint,
    load_model,
    model_from_checkpoint,
    save_checkpoint,
)
from yolov9lite.weights.official import load_official, official_key_map, recognise_official

# Number of state-dict tensors of each official model (official builder, nc=80).
OFFICIAL_TENSORS = {
    "gelan-t": 1339, "gelan-s": 1339, "gelan-m": 907, "gelan-c": 937, "gelan-e": 1811,
    "yolov9-t": 1772, "yolov9-s": 1772, "yolov9-m": 1412, "yolov9-c": 1460, "yolov9-e": 2172,
}

# Per-layer parameter counts of the official gelan models (official builder printout), layer -> params.
_IDX = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 18, 19, 21, 22)
SPEC_LAYER_PARAMS = {
    "gelan-t": dict(zip(_IDX, (464, 4672, 7872, 18560, 65216, 55488, 145824, 110848, 258432, 41344,
                               158112, 71360, 27744, 150432, 55424, 266624, 1004224))),
    "gelan-s": dict(zip(_IDX, (928, 18560, 31104, 73984, 258432, 221568, 579648, 442880, 1028864,
                               164608, 628800, 283008, 110784, 598080, 221440, 1061632, 1501888))),
    "gelan-m": dict(zip(_IDX, (928, 18560, 171648, 276960, 629520, 778320, 1414080, 1556160,
                               2511840, 577440, 1586880, 715920, 397808, 1480320, 778080, 2627040,
                               4602496))),
    "gelan-c": dict(zip(_IDX, (1856, 73984, 212864, 164352, 847616, 656384, 2857472, 656384,
                               2857472, 656896, 3119616, 912640, 164352, 2988544, 656384, 3119616,
                               5552320))),
    # GELAN-E's P5 unit (layer 41; 48 in yolov9-e) and yolov9-e's DualDDetect (official
    # builder printout)
    "gelan-e": {41: 12_860_416},
    "yolov9-e": {48: 12_860_416, 49: 11_104_640},
}

# A few official keys and shapes (official builder).
SAMPLE_KEYS = {
    "yolov9-c": {"model.38.cv4.0.0.conv.weight": (64, 256, 3, 3), "model.38.dfl2.conv.weight": (1, 16, 1, 1),
                 "model.38.cv2.0.0.conv.weight": (128, 512, 3, 3), "model.25.conv.weight": (1280, 512, 1, 1),
                 "model.1.conv.weight": (64, 3, 3, 3)},
    "gelan-c": {"model.22.cv2.0.0.conv.weight": (64, 256, 3, 3), "model.0.conv.weight": (64, 3, 3, 3)},
    "gelan-e": {"model.14.conv.weight": (1984, 1024, 1, 1), "model.42.cv3.0.2.bias": (80,)},
    "yolov9-e": {"model.49.cv5.2.2.weight": (80, 256, 1, 1), "model.29.cv1.conv.weight": (256, 1024, 1, 1)},
    "yolov9-s": {"model.29.cv4.0.0.conv.weight": (64, 128, 3, 3), "model.22.cv5.conv.weight": (256, 512, 1, 1)},
}


@functools.lru_cache(maxsize=4)  # the small models are reused; the big ones are not kept
def reference_model(name: str, nc: int = 80):
    """Our model with random BN statistics and fp16-representable weights (as in an official file,
    so the fp16 file round trip is exact), in eval mode."""
    torch.manual_seed(0)
    model = build_model(name, nc)
    randomize_batchnorm(model, seed=1)
    with torch.no_grad():
        for t in model.state_dict().values():  # fp16 rounding, in place (no copies)
            if t.is_floating_point():
                t.copy_(t.half())
    return model.eval()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def image(h=64, w=96, seed=0):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------ key mapping

@pytest.mark.parametrize("name", OFFICIAL_MODELS)
def test_key_map_is_one_to_one_with_official_keys(name):
    model = build_model(name)
    sd = model.state_dict()
    key_map = official_key_map(model)
    assert key_map.keys() == sd.keys()
    assert len(set(key_map.values())) == len(key_map) == OFFICIAL_TENSORS[name]
    assert all(k.startswith("model.") for k in key_map.values())
    shapes = {key_map[k]: tuple(v.shape) for k, v in sd.items()}
    for key, shape in SAMPLE_KEYS.get(name, {}).items():
        assert shapes[key] == shape, key
    params = {}
    for k, p in model.named_parameters():
        layer = int(key_map[k].split(".")[1])
        params[layer] = params.get(layer, 0) + p.numel()
    for layer, n in SPEC_LAYER_PARAMS.get(name, {}).items():
        assert params[layer] == n, (name, layer)


# ------------------------------------------------------------- official layout, every size

@pytest.mark.parametrize("name", OFFICIAL_MODELS)
def test_official_checkpoint_loads_for_every_size(name, tmp_path):
    ref = reference_model(name)
    path = write_official_checkpoint(tmp_path / f"{name}.pt", ref)
    # the loader must not need the official code: nothing named `models` is importable
    assert "models" not in sys.modules and importlib.util.find_spec("models") is None
    model = load_official(path)
    assert model.name == name and model.nc == 80 and not model.training
    assert model.names[:2] == ["class0", "class1"]
    assert next(model.parameters()).dtype == torch.float32
    x = image(32, 64)  # small: forwarding the big models on CPU is what costs time here
    with torch.no_grad():
        assert rel_err(model(x), ref(x)) <= 1e-4
    # load_model(path) = this model deployed; deploy() equality is tested in test_models.py, the
    # deployed loading path on the small models below


@pytest.mark.parametrize("name", ["gelan-nano", "yolov9-nano", "yolov9-nano-icn"])
def test_official_layout_other_nc_names_and_ema(name, tmp_path):
    ref, other = reference_model(name, 5), build_model(name, 5).eval()
    names = ["cat", "dog", "car", "bus", "cup"]
    path = write_official_checkpoint(tmp_path / "last.pt", other, names=names, ema=ref, training=True)
    model = load_official(path)  # the EMA weights win, as in the official attempt_load
    assert (model.name, model.nc, model.names) == (name, 5, names)
    x = image()
    with torch.no_grad():
        assert rel_err(model(x), ref(x)) <= 1e-4
    assert recognise_official(model_state_in_official_keys(ref)) == (name, 5)


def model_state_in_official_keys(model):
    key_map = official_key_map(model)
    return {key_map[k]: v for k, v in model.state_dict().items()}


def test_unrecognised_weights_fail_clearly():
    state = model_state_in_official_keys(reference_model("gelan-nano", 5))
    state.pop(next(k for k in state if k.startswith("model.4.")))
    with pytest.raises(CheckpointError, match="unrecognised model"):
        recognise_official(state)
    with pytest.raises(CheckpointError, match="do not look like"):
        recognise_official({"model.0.conv.weight": torch.zeros(1)})


# ------------------------------------------------------------------------------- safety

class _Evil:
    """Pickles as a call of ``func(*args)``: what a malicious checkpoint does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _marker_commands(marker):
    return {
        "os.system": (os.system, f"touch {marker}"),
        "builtins.eval": (builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.check_call": (subprocess.check_call, ["touch", str(marker)]),
        "builtins.exec": (builtins.exec, f"open({str(marker)!r}, 'w').close()"),
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("what", ["os.system", "builtins.eval", "subprocess.check_call", "builtins.exec"])
def test_malicious_pickle_is_refused_and_nothing_runs(what, legacy, tmp_path):
    marker = tmp_path / "pwned"
    func, arg = _marker_commands(marker)[what]
    path = tmp_path / "evil.pt"
    torch.save({"model": _Evil(func, arg), "epoch": -1}, path, _use_new_zipfile_serialization=not legacy)
    refused = func.__name__  # pickled as e.g. posix.system / builtins.eval
    for loader in (load_official, load_model, load_checkpoint):
        with pytest.raises(UnsafeCheckpointError, match=f"refused to load .*{refused}.*Nothing from the file"):
            loader(path)
    assert not marker.exists()


def test_malicious_attribute_inside_official_layout_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = write_official_checkpoint(tmp_path / "evil.pt", reference_model("gelan-nano"),
                                     extra_attrs={"hook": _Evil(os.system, f"touch {marker}")})
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_official(path)
    assert not marker.exists()


def test_unlisted_official_class_is_refused(tmp_path):
    """Only the listed class names are admitted, not everything under ``models.*``."""
    with official_modules():
        cls = type("Evil", (torch.nn.Module,), {"__module__": "models.common", "__qualname__": "Evil"})
        sys.modules["models.common"].Evil = cls
        torch.save({"model": cls()}, tmp_path / "x.pt")
    with pytest.raises(UnsafeCheckpointError, match="models.common.Evil"):
        load_official(tmp_path / "x.pt")


def test_truncated_and_garbage_files_fail_clearly(tmp_path):
    good = write_official_checkpoint(tmp_path / "good.pt", reference_model("gelan-nano"))
    data = good.read_bytes()
    for i, size in enumerate((len(data) // 2, 100, 0)):
        bad = tmp_path / f"bad{i}.pt"
        bad.write_bytes(data[:size])
        with pytest.raises(CheckpointError, match="truncated or corrupted"):
            load_model(bad)
    ours = save_checkpoint(tmp_path / "ours.pt", build_model("gelan-nano", 2))
    (tmp_path / "ours_cut.pt").write_bytes(ours.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(tmp_path / "ours_cut.pt")
    legacy = tmp_path / "legacy.pt"
    torch.save({"a": torch.zeros(1000)}, legacy, _use_new_zipfile_serialization=False)
    (tmp_path / "legacy_cut.pt").write_bytes(legacy.read_bytes()[:300])
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "legacy_cut.pt")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")


# --------------------------------------------------------------------------- our format

def test_our_format_roundtrip_weights_only(tmp_path):
    ref = reference_model("yolov9-nano-icn", 3)
    optim = torch.optim.SGD(ref.parameters(), lr=0.01, momentum=0.9).state_dict()
    path = save_checkpoint(tmp_path / "ckpt.pt", ref, names=["a", "b", "c"], epoch=7, optimizer=optim,
                           rng={"seed": 0})
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]  # no temporary file left behind
    raw = torch.load(path, weights_only=True)  # plain torch, no allowlist needed
    assert raw["format"] == "yolov9lite" and raw["version"] == 1 and raw["epoch"] == 7
    assert raw["model_name"] == "yolov9-nano-icn" and raw["names"] == ["a", "b", "c"]
    model = model_from_checkpoint(load_checkpoint(path))
    assert model.cfg == ref.cfg and model.has_aux and model.names == ["a", "b", "c"]
    x = image()
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
        deployed = load_model(path)
        assert rel_err(deployed(x), ref(x)) <= 1e-4 and deployed.names == ["a", "b", "c"]
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.pt", ref, state_dict={})


def test_baseline_without_knobs_roundtrips(tmp_path):
    """Table 6's yolov7-af has no ModelConfig: it is stored by name and rebuilt from it."""
    ref = reference_model("yolov7-af", 2)
    with torch.no_grad():
        expected = ref(image())
    path = save_checkpoint(tmp_path / "y7.pt", ref)
    ckpt = load_checkpoint(path)
    assert ckpt["config"] == {"baseline": "yolov7-af"} and ckpt["model_name"] == "yolov7-af"
    model = model_from_checkpoint(ckpt)
    assert type(model) is type(ref) and model.nc == 2
    assert deploy_main(["--weights", str(path), "--out", str(tmp_path / "dep.pt")]) == 0
    with torch.no_grad():
        assert torch.equal(model(image()), expected)
        assert rel_err(load_model(tmp_path / "dep.pt")(image()), expected) <= 1e-4
    ckpt["config"] = {"baseline": "yolov5"}
    with pytest.raises(CheckpointError, match="unknown baseline"):
        model_from_checkpoint(ckpt)


def test_deployed_checkpoint_roundtrip(tmp_path):
    ref = reference_model("yolov9-nano", 4)
    with torch.no_grad():
        expected = ref(image())
    src = save_checkpoint(tmp_path / "train.pt", ref)
    assert deploy_main(["--weights", str(src), "--out", str(tmp_path / "deployed.pt")]) == 0
    ckpt = load_checkpoint(tmp_path / "deployed.pt")
    assert ckpt["deployed"] and ckpt["config"]["pgi"] == "none"
    assert not any(".bn." in k or k.startswith("aux.") for k in ckpt["state_dict"])
    model = load_model(tmp_path / "deployed.pt")
    with torch.no_grad():
        assert rel_err(model(image()), expected) <= 1e-4


def test_atomic_save_keeps_old_file_on_failure(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.pt", build_model("gelan-nano", 2), epoch=1)
    before = path.read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint(path, build_model("gelan-nano", 2), epoch=2, bad=lambda: None)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["ckpt.pt"]


def test_convert_cli(tmp_path, capsys):
    from yolov9lite.cli import main as cli_main

    ref = reference_model("yolov9-nano-icn", 3)
    official = write_official_checkpoint(tmp_path / "official.pt", ref, names=["x", "y", "z"])
    assert cli_main(["convert", str(official), str(tmp_path / "ours.pt")]) == 0
    assert cli_main(["convert", str(official), str(tmp_path / "ours_dep.pt"), "--deploy"]) == 0
    assert "yolov9-nano-icn" in capsys.readouterr().out
    x = image()
    with torch.no_grad():
        expected = ref(x)
        ours = load_checkpoint(tmp_path / "ours.pt")
        assert ours["state_dict"]["backbone.conv0.conv.weight"].dtype == torch.float16  # lossless
        assert torch.equal(model_from_checkpoint(ours)(x), expected)
        assert load_checkpoint(tmp_path / "ours_dep.pt")["deployed"]
        assert rel_err(load_model(tmp_path / "ours_dep.pt")(x), expected) <= 1e-4
        assert load_model(tmp_path / "ours_dep.pt").names == ["x", "y", "z"]
    # errors are reported, not raised
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert convert_main([str(tmp_path / "junk.pt"), str(tmp_path / "o.pt")]) == 2
    assert "truncated or corrupted" in capsys.readouterr().err


# ------------------------------------------------------------------ resource bombs

def _our_format(config, nc, state_dict, **extra):
    return {"format": "yolov9lite", "version": 1, "model_name": "x", "config": config, "nc": nc,
            "names": [], "deployed": False, "state_dict": state_dict, **extra}


def _bomb_files(tmp_path) -> dict:
    """Small files that ask for a lot: each must be refused fast, allocating next to nothing."""
    import dataclasses

    import numpy as np

    from yolov9lite.weights.checkpoint import _plain

    conv = [_Evil(torch.nn.Conv2d, 4096, 4096, 3) for _ in range(3)]  # 3 x 604 MB if called
    nano = _plain(dataclasses.asdict(build_model("gelan-nano", 2).cfg))
    huge = {**nano, "conv0": 10**6, "backbone": [[10**6, 10**6]] * 3, "depth_elan": 10**6}
    widest = {**nano, **{k: 4096 for k in ("conv0", "conv1")}, "depth_csp": 4, "depth_elan": 4,
              "backbone": [[4096, 4096]] * 3, "backbone_down": [4096] * 3}  # within the bounds
    spread = torch.zeros(1).expand(10**9)  # one stored float claiming 10^9 elements
    files = {
        "conv_official.pt": {"model": conv[0], "ema": conv[1], "extra": conv[2], "epoch": -1},
        "conv_ours.pt": _our_format(nano, 2, {"backbone.conv0.conv.weight": conv[0]}),
        "config_huge.pt": _our_format(huge, 10**7, {}),
        "config_widest_no_weights.pt": _our_format(widest, 80, {}),
        "stride0_ours.pt": _our_format(nano, 2, {"backbone.conv0.conv.weight": spread}),
        "stride0_official.pt": {"model": {"model.22.cv3.0.2.bias": spread}},
        "stride0_nested.pt": _our_format(nano, 2, {}, train_state={"optimizer": {"state": {
            0: {"momentum_buffer": torch.zeros(1, dtype=torch.float16).expand(10**9)}}}}),
        "bytearray.pt": _our_format(nano, 2, {}, junk=_Evil(bytearray, 3 * 10**9)),
        "numpy.pt": {"model": None, "ema": None,
                     "best_fitness": _Evil(np._core.multiarray._reconstruct, np.ndarray,
                                           (10**10,), "f8")},
    }
    paths = {}
    for name, obj in files.items():
        paths[name] = tmp_path / name
        torch.save(obj, paths[name])
        assert paths[name].stat().st_size < 4000, name  # a few KB each
    paths["conv_legacy.pt"] = tmp_path / "conv_legacy.pt"  # the pre-zip torch.save format
    torch.save(files["conv_official.pt"], paths["conv_legacy.pt"],
               _use_new_zipfile_serialization=False)
    return paths


_BOMB_SCRIPT = r"""
import contextlib, io, json, resource, sys, time
import torch
from yolov9lite import build_model
from yolov9lite.cli.checkpoints import convert_main, deploy_main
from yolov9lite.weights import checkpoint, official
from yolov9lite.evaluation import coco_eval
from yolov9lite.training import trainer

paths, out_dir, warm = json.loads(sys.argv[1])
checkpoint.load_model(warm)  # first use of torch.load and model building: not the bomb's cost
with torch.device("meta"):  # the first shape-only build sets up the meta device (seconds)
    build_model("gelan-nano")
base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def cli(main, argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return f"exit {code}: {err.getvalue()}"

loaders = {
    "load_official": official.load_official,
    "load_model": checkpoint.load_model,
    "model_from_checkpoint":
        lambda p: checkpoint.model_from_checkpoint(checkpoint.load_checkpoint(p)),
    "val load_weights": coco_eval.load_weights,
    "train resume": trainer.load_training_checkpoint,
    "convert": lambda p: cli(convert_main, [p, out_dir + "/converted.pt"]),
    "deploy": lambda p: cli(deploy_main, ["--weights", p, "--out", out_dir + "/d.pt"]),
}
results = []
for path in paths:
    for entry, load in loaders.items():
        t0 = time.perf_counter()
        try:
            value = load(path)
            outcome = ["returned", (value if isinstance(value, str) else repr(value))[:300]]
        except Exception as err:
            outcome = ["raised", f"{type(err).__name__}: {err}"[:300]]
        results.append([path, entry, time.perf_counter() - t0, *outcome])
extra_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_kb) / 1024
print(json.dumps({"results": results, "extra_mb": extra_mb}))
print("\n".join(f"{r[2]:.3f} {r[1]} {r[0].rsplit('/', 1)[-1]}" for r in results), file=sys.stderr)
"""


def test_resource_bombs_are_refused_fast_and_small(tmp_path):
    """Constructor calls (``nn.Conv2d(4096, 4096, 3)``), absurd configs, stride-0 tensors,
    ``bytearray(3e9)`` and a 10^10-element numpy array, each in a file of a few KB, through
    every entry point that reads a checkpoint: each is refused (the convert/deploy CLIs report
    it and exit non-zero) in under 2 s, and all of them together raise the peak memory of the
    process by under 300 MB. A config at the bounds is refused after one shape-only build."""
    paths = _bomb_files(tmp_path)
    warm = save_checkpoint(tmp_path / "warm.pt", build_model("gelan-nano", 2))
    out = subprocess.run([sys.executable, "-c", _BOMB_SCRIPT,
                          json.dumps([[str(p) for p in paths.values()], str(tmp_path), str(warm)])],
                         capture_output=True, text=True, timeout=300, check=False,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.splitlines()[-1])
    for path, entry, seconds, how, what in report["results"]:
        where = f"{os.path.basename(path)} via {entry}: {what}"
        if entry in ("convert", "deploy"):
            assert how == "returned" and what.startswith("exit ") and what[5] != "0", where
            assert "yolov9lite" in what and "Traceback" not in what, where
        else:
            assert how == "raised" and what.split(":")[0] in {
                "CheckpointError", "UnsafeCheckpointError", "TrainError"}, where
        # a config at the bounds without weights costs one shape-only model build, no memory
        limit = 10.0 if "widest" in path else 2.0
        assert seconds < limit, f"{where} took {seconds:.2f} s"
    assert report["extra_mb"] < 300, f"peak memory grew by {report['extra_mb']:.0f} MB"
    assert not (tmp_path / "converted.pt").exists() and not (tmp_path / "d.pt").exists()


def test_refusal_messages_say_what_was_refused(tmp_path):
    paths = _bomb_files(tmp_path)
    with pytest.raises(UnsafeCheckpointError, match=r"calls torch\.nn\.modules\.conv\.Conv2d"):
        load_official(paths["conv_official.pt"])
    with pytest.raises(UnsafeCheckpointError, match=r"builtins\.bytearray.*before unpickling"):
        load_checkpoint(paths["bytearray.pt"])
    with pytest.raises(CheckpointError, match="'conv0' = 1000000 is out of range"):
        load_model(paths["config_huge.pt"])
    with pytest.raises(CheckpointError, match="do not fit the stored config"):
        load_model(paths["config_widest_no_weights.pt"])
    with pytest.raises(UnsafeCheckpointError, match="claims 1000000000 elements over 4 stored"):
        load_model(paths["stride0_ours.pt"])
    with pytest.raises(UnsafeCheckpointError, match="momentum_buffer' claims 1000000000 elements"):
        load_checkpoint(paths["stride0_nested.pt"])  # what a resume would copy into the optimizer
    with pytest.raises(UnsafeCheckpointError, match="claims 1000000000 elements over 4 stored"):
        load_official(paths["stride0_official.pt"])


def test_training_file_numpy_values_are_placeholders(tmp_path):
    """numpy values of an official training file are not rebuilt (no array of a size the file
    chooses), and the rest of the file still loads."""
    from yolov9lite.utils.safe_pickle import NumpyPlaceholder, restricted_load

    path = write_official_checkpoint(tmp_path / "last.pt", reference_model("gelan-nano"),
                                     training=True)
    assert isinstance(restricted_load(path)["best_fitness"], NumpyPlaceholder)
    assert load_official(path).name == "gelan-nano"


def test_only_safe_pickle_calls_torch_load():
    """Every checkpoint read goes through the guarded loader: no other module calls torch.load."""
    import ast
    from pathlib import Path

    import yolov9lite

    callers = []
    for path in Path(yolov9lite.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("torch", "pickle")):
                callers.append(path.name)
    assert set(callers) == {"safe_pickle.py"}, callers
