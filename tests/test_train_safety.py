"""Training never loses a run, never writes outside its run folder, and never "succeeds" on
garbage: resume decides its folder from where ``last.pt`` lies, ``best.pt`` is written before
``last.pt`` records the new best, a lock keeps two processes out of one run, bad settings fail
at the start with one line, and ``kill -9`` at any point (also mid-save) leaves a run that
resumes bit-identically."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import run_cli_cases

import yolov9lite.cli.train as train_cli
import yolov9lite.training.trainer as T
from yolov9lite.data import make_synthetic
from yolov9lite.training.config import TrainConfig, TrainError
from yolov9lite.training.engine import NonFiniteLossError
from yolov9lite.training.runfolder import LOCK_NAME

TINY = {"model": "gelan-nano", "imgsz": 64, "workers": 0, "tensorboard": False, "plots": False,
        "verbose": False, "device": "cpu", "batch_size": 4, "max_batches": 1,
        "warmup_epochs": 0, "close_mosaic": 0}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return str(make_synthetic(root, num_train=8, num_val=4, imgsz=64, seed=1))


class _Stop(Exception):
    pass


def _stop_after(n):
    def callback(history):
        if len(history) == n:
            raise _Stop  # "killed" right after the epoch's checkpoints were written
    return {"on_epoch_end": callback}


@pytest.fixture(scope="module")
def stopped_run(data_yaml, tmp_path_factory):
    """A 3-epoch run stopped after epoch 1: weights/last.pt, weights/best.pt, args.yaml."""
    project = tmp_path_factory.mktemp("runs")
    with pytest.raises(_Stop):
        T.train(data=data_yaml, epochs=3, project=project, name="stopped",
                callbacks=_stop_after(1), **TINY)
    return project / "stopped"


@pytest.fixture
def run_copy(stopped_run, tmp_path):
    """A private copy of the stopped run (tests resume it, lock it, break it)."""
    return Path(shutil.copytree(stopped_run, tmp_path / "runs" / "stopped"))


# --------------------------------------------------------------------------- data loss
def test_resume_only_into_the_run_folder_that_holds_last_pt(run_copy, tmp_path):
    """A last.pt anywhere but in its run's weights/ (e.g. Downloads) is refused: resuming it
    used to create ../../weights and replace ../../results.csv."""
    downloads = tmp_path / "home" / "Downloads"
    downloads.mkdir(parents=True)
    stray = shutil.copy(run_copy / "weights" / "last.pt", downloads / "last.pt")
    with pytest.raises(TrainError, match="expected a run's weights/last.pt"):
        T.train(resume=stray, **TINY)
    lone = tmp_path / "lone" / "weights"
    lone.mkdir(parents=True)
    shutil.copy(stray, lone / "last.pt")
    with pytest.raises(TrainError, match="is not a run folder"):
        T.train(resume=lone / "last.pt", **TINY)
    assert sorted(p.name for p in (tmp_path / "home").rglob("*")) == ["Downloads", "last.pt"]
    assert sorted(p.name for p in (tmp_path / "lone").rglob("*")) == ["last.pt", "weights"]
    assert T.run_folder_of(run_copy / "weights" / "last.pt") == run_copy.resolve()


def test_resume_from_best_pt_is_refused(run_copy):
    """best.pt is an earlier state than last.pt: resuming it would rewind the run."""
    last = run_copy / "weights" / "last.pt"
    before = last.read_bytes()
    with pytest.raises(TrainError, match="best.pt is the best epoch.*Resume from .*last.pt"):
        T.train(resume=run_copy / "weights" / "best.pt", **TINY)
    assert last.read_bytes() == before


def test_best_pt_is_written_before_last_pt(data_yaml, tmp_path, monkeypatch):
    """Die right when last.pt (recording the new best fitness) is written: best.pt exists."""
    real, written = T.save_training_checkpoint, []

    def save(run, path):
        if path.name == "last.pt":
            raise _Stop
        real(run, path)
        written.append(path.name)
    monkeypatch.setattr(T, "save_training_checkpoint", save)
    with pytest.raises(_Stop):
        T.train(data=data_yaml, epochs=2, project=tmp_path, name="r", **TINY)
    assert written == ["best.pt"] and (tmp_path / "r" / "weights" / "best.pt").is_file()


def test_a_second_process_cannot_train_in_a_locked_run(run_copy):
    """train.lock names a live process (this one): a second resume is refused by name."""
    lock = run_copy / LOCK_NAME
    lock.write_text(f"{os.getpid()} {socket.gethostname()}")
    last = run_copy / "weights" / "last.pt"
    before = last.read_bytes()
    with pytest.raises(TrainError, match=f"in use by process {os.getpid()}"):
        T.train(resume=last, **TINY)
    assert last.read_bytes() == before and lock.is_file()


def test_resume_takes_over_a_dead_lock_and_removes_stale_temp_files(run_copy):
    """A run killed mid-save leaves weights/.last.pt.XXXX.tmp and a train.lock of a dead pid:
    the resume removes the former and takes the latter over with a warning."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run_copy / LOCK_NAME).write_text(f"{dead.pid} {socket.gethostname()}")
    tmp = run_copy / "weights" / ".last.pt.k3j2x9.tmp"
    tmp.write_bytes(b"half a checkpoint")
    with pytest.warns(RuntimeWarning, match=f"process {dead.pid} that held it is no longer"):
        h = T.train(resume=run_copy / "weights" / "last.pt", **TINY)
    assert len(h) == 3 and h.save_dir == run_copy.resolve()
    assert not tmp.exists() and not (run_copy / LOCK_NAME).exists()  # released at the end


# --------------------------------------------------------------------------- garbage runs
def test_resume_refuses_changed_settings(run_copy, data_yaml):
    last = run_copy / "weights" / "last.pt"
    for change, flag in (({"batch_size": 8}, "--batch 8"), ({"imgsz": 128}, "--img 128"),
                         ({"epochs": 5}, "--epochs 5"), ({"data": "synthetic"}, "--data"),
                         ({"lr0": 0.02}, "--lr0 0.02")):
        with pytest.raises(TrainError, match=f"{flag}.* differs from the run's"):
            T.train(resume=last, **{**TINY, **change})
    saved = TrainConfig.from_dict(torch.load(last, weights_only=True)["train_config"])
    assert saved.data == data_yaml  # the refused resumes changed nothing


def test_resume_refuses_a_model_other_than_the_one_the_checkpoint_holds(run_copy, monkeypatch):
    """The model of a resume is built from the checkpoint's saved settings, which nothing bounds:
    an edited train_config asking for a huge model is refused before any model is built."""
    import yolov9lite.training.trainsetup as S

    last = run_copy / "weights" / "last.pt"
    original = torch.load(last, weights_only=True)
    monkeypatch.setattr(S, "build_model", lambda *a, **k: pytest.fail("built a model"))
    for edit in ({"model_kwargs": {"depth_elan": 10**6}}, {"model": "gelan-e"}):
        torch.save({**original, "train_config": {**original["train_config"], **edit}}, last)
        with pytest.raises(TrainError, match="do not describe the model whose weights it holds"):
            T.train(resume=last, **{k: v for k, v in TINY.items() if k != "model"})


def test_an_epoch_without_a_finite_loss_fails_instead_of_averaging_to_zero(
        data_yaml, tmp_path, monkeypatch):
    """Epoch 2's only batch is NaN: the run stops by name; no 0.0 loss row is recorded."""
    real_cls, calls = T.DetectionLoss, []

    def factory(model, **kw):
        real = real_cls(model, **kw)

        def loss_fn(preds, targets):
            loss, items = real(preds, targets)
            calls.append(1)
            return (loss * float("nan") if len(calls) == 2 else loss), items
        return loss_fn
    monkeypatch.setattr(T, "DetectionLoss", factory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NonFiniteLossError, match="epoch 2: no batch had a finite loss"):
            T.train(data=data_yaml, epochs=2, project=tmp_path, name="nan", **TINY)
    rows = (tmp_path / "nan" / "results.csv").read_text().splitlines()
    assert len(rows) == 2  # header + epoch 1


def test_exploding_loss_warns_and_nonfinite_weights_are_never_saved(tmp_path):
    history = [{"epoch": 1, "train/loss": 5.0}]
    with pytest.warns(RuntimeWarning, match="the run is diverging"):
        T.warn_if_exploding(history, {"epoch": 2, "train/loss": 5.0 * 2e4})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        T.warn_if_exploding(history, {"epoch": 2, "train/loss": 50.0})
    model = torch.nn.Linear(2, 2)
    run = SimpleNamespace(state=SimpleNamespace(model=model, ema=None),
                          last=tmp_path / "last.pt")
    T.check_weights_finite(run, 0)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="non-finite in epoch 3.*not saved"):
        T.check_weights_finite(run, 2)


def test_config_validation_names_the_flag():
    for bad, message in (({"lr0": float("nan")}, "--lr0 nan"), ({"lr0": 1e4}, "--lr0 10000"),
                         ({"lr0": -1}, "--lr0 -1"), ({"max_batches": 0}, "--max-batches 0"),
                         ({"imgsz": 100}, "--img 100: must be a multiple of 32"),
                         ({"nominal_batch": 0}, "--nominal-batch 0"),
                         ({"hyp": {"mosiac": 0.5}}, r"unknown hyperparameter\(s\) \['mosiac'\]"),
                         ({"hyp": {"mixup": "lots"}}, "mixup = 'lots': expected a finite")):
        with pytest.raises(TrainError, match=message):
            TrainConfig.from_options(**bad)


# --------------------------------------------------------------------------- one line, exit 2


def test_bad_training_input_is_one_line_through_the_console_entry_point(run_copy, tmp_path):
    """Each case in a fresh process, through ``yolov9lite.cli.main`` (the console script):
    exit code 2, one ``yolov9lite train: error:`` line naming the flag or file, no traceback."""
    broken_yaml = tmp_path / "broken.yaml"
    broken_yaml.write_text("lr0: [0.01\nmosaic: 1.0\n")
    typo, words = tmp_path / "typo.yaml", tmp_path / "words.yaml"
    typo.write_text("mosiac: 0.5\n")
    words.write_text("lr0: high\n")
    empty_run = tmp_path / "empty_run"
    (empty_run / "weights").mkdir(parents=True)
    (empty_run / "args.yaml").write_text("{}\n")
    (empty_run / "weights" / "last.pt").write_bytes(b"")  # 0-byte last.pt
    last, best = run_copy / "weights" / "last.pt", run_copy / "weights" / "best.pt"
    base = ["train", "--device", "cpu", "--workers", "0", "--project", str(tmp_path / "new")]
    cases = {  # argv tail: what the message must name
        ("--hyp", str(broken_yaml)): "broken.yaml",
        ("--hyp", str(typo)): "mosiac",
        ("--hyp", str(words)): "lr0",
        ("--img", "0"): "--img 0",
        ("--img", "-64"): "--img -64",
        ("--nominal-batch", "0"): "--nominal-batch 0",
        ("--lr0", "-1"): "--lr0 -1",
        ("--lr0", "nan"): "--lr0 nan",
        ("--lr0", "1e4"): "--lr0 10000",
        ("--max-batches", "0"): "--max-batches 0",
        ("--device", "banana"): "banana",
        ("--resume", str(empty_run / "weights" / "last.pt")): "last.pt",
        ("--resume", str(best)): "best.pt",
        ("--resume", str(last), "--batch", "8"): "--batch 8",
        ("--resume", str(last), "--epochs", "100"): "--epochs 100",  # = default, but given
    }
    argvs = [base + list(tail) for tail in cases]
    for (argv, code, err), named in zip(run_cli_cases(argvs, cwd=tmp_path), cases.values()):
        where = f"yolov9lite {' '.join(argv)} -> {code}: {err}"
        lines = err.strip().splitlines()
        assert code == 2 and "Traceback" not in err and len(lines) == 1, where
        assert lines[0].startswith("yolov9lite train: error:") and named in lines[0], where
    assert not (tmp_path / "new").exists()  # no run folder was started
    # and the installed entry point itself (python -m yolov9lite)
    proc = subprocess.run([sys.executable, "-m", "yolov9lite", "train", "--img", "-64"],
                          capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "yolov9lite train: error: --img -64: must be an integer >= 32"


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
                                     RuntimeError("[enforce fail at inline_container.cc:603] . "
                                                  "unexpected pos 3392 vs 3280")])
def test_disk_full_while_saving_is_one_line(data_yaml, tmp_path, monkeypatch, capsys, failure):
    import yolov9lite.weights.checkpoint as C

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise failure
    monkeypatch.setattr(C.torch, "save", full_disk)
    argv = ["--data", data_yaml, "--project", str(tmp_path), "--epochs", "2", "--quiet",
            "--no-tensorboard", "--no-plots", "--warmup-epochs", "0", "--close-mosaic", "0"
            ] + [a for k in ("model", "imgsz", "workers",
            "device", "batch_size", "max_batches") for a in (T.flag_of(k), str(TINY[k]))]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("yolov9lite train: error: cannot write ")
    assert str(failure.strerror if isinstance(failure, OSError) else "unexpected pos") in err
    assert not list((tmp_path / "exp" / "weights").glob("*.tmp"))  # the temp file is removed


def test_ctrl_c_names_the_checkpoint_to_resume(data_yaml, tmp_path, monkeypatch, capsys):
    real = T.train_one_epoch

    def interrupted_in_epoch_2(state, loader, plan):
        if state.epoch == 1:
            raise KeyboardInterrupt
        return real(state, loader, plan)
    monkeypatch.setattr(T, "train_one_epoch", interrupted_in_epoch_2)
    argv = ["--data", data_yaml, "--project", str(tmp_path), "--epochs", "2", "--quiet",
            "--no-tensorboard", "--no-plots", "--img", "64", "--batch", "4", "--max-batches",
            "1", "--workers", "0", "--device", "cpu", "--warmup-epochs", "0", "--close-mosaic", "0"]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    last = tmp_path / "exp" / "weights" / "last.pt"
    assert err == f"yolov9lite train: interrupted; resume with yolov9lite train --resume {last}"
    assert last.is_file() and not (tmp_path / "exp" / LOCK_NAME).exists()


# --------------------------------------------------------------------------- kill -9
_KILLED_CHILD = """
import json, os, sys, time
import torch
import yolov9lite.training.trainer as T
kill_at, marker, kw = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
torch.set_num_threads(1)
real_save, saves = torch.save, []

def save_then_hang(obj, f, *args, **kwargs):
    saves.append(1)
    if len(saves) == kill_at:  # half a checkpoint in the temp file, then wait for SIGKILL
        f.write(b"half")
        f.flush()
        open(marker, "w").close()
        time.sleep(600)
    real_save(obj, f, *args, **kwargs)

torch.save = save_then_hang
T.train(**kw)
"""


def test_kill_9_during_checkpoint_writes_then_resume_is_bit_identical(data_yaml, tmp_path):
    """SIGKILL while last.pt (save 2: epoch 2) and while best.pt (save 3: the last epoch's
    best, written before its last.pt) are being written: last.pt stays a valid epoch-1 or
    epoch-2 checkpoint, the temp file and the dead process's lock are cleaned up by the resume,
    and the resumed run ends bit-identical to an uninterrupted one."""
    kw = {**TINY, "data": data_yaml, "epochs": 3, "max_batches": 2, "val_interval": 0,
          "deterministic": True, "project": str(tmp_path)}
    children = {}
    for kill_at in (2, 3):
        marker = tmp_path / f"hang{kill_at}"
        args = json.dumps({**kw, "name": f"killed{kill_at}"})
        children[kill_at] = (marker, subprocess.Popen(
            [sys.executable, "-c", _KILLED_CHILD, str(kill_at), str(marker), args],
            env={**os.environ, "OMP_NUM_THREADS": "1"}))
    straight = T.train(**{**kw, "name": "straight"})
    expected = torch.load(straight.last, weights_only=True)
    for kill_at, (marker, child) in children.items():
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline, "child ended early"
            time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        child.wait()
        run = tmp_path / f"killed{kill_at}"
        assert list((run / "weights").glob(".*.tmp"))  # the interrupted write's temp file
        killed = torch.load(run / "weights" / "last.pt", weights_only=True)
        assert killed["epoch"] == kill_at - 2  # the previous epoch's, intact
        with pytest.warns(RuntimeWarning, match="no longer running"):
            resumed = T.train(resume=run / "weights" / "last.pt", device="cpu", verbose=False)
        got = torch.load(resumed.last, weights_only=True)
        assert not list((run / "weights").glob(".*.tmp")) and resumed.best.is_file()
        ta, tb = expected["train_state"], got["train_state"]
        for a, b in ((ta["model"], tb["model"]), (ta["ema"]["module"], tb["ema"]["module"]),
                     (expected["state_dict"], got["state_dict"])):
            assert all(torch.equal(a[k], b[k]) for k in a), kill_at
        assert [r["train/loss"] for r in straight] == [r["train/loss"] for r in resumed]


# --------------------------------------------------------------------------- leaks
def test_notebook_scratch_space_is_replaced_not_leaked(tmp_path):
    """Notebooks 05-07 keep generated data and runs in ``runs/scratch/<notebook>``, emptied by
    the next run (they used to leave a ``yolov9lite_*`` folder in /tmp per run); a folder that
    is not our scratch space is never deleted."""
    from yolov9lite.utils.runtime import scratch_folder

    first = scratch_folder(tmp_path / "scratch" / "06")
    (first / "data.bin").write_bytes(b"x" * 1000)
    again = scratch_folder(tmp_path / "scratch" / "06")
    assert again == first and sorted(p.name for p in again.iterdir()) == [".yolov9lite-scratch"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(ValueError, match="not a yolov9lite scratch folder"):
        scratch_folder(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    for name in ("05_ablations", "06_train_coco", "07_evaluate"):
        cells = json.loads((notebooks / f"{name}.ipynb").read_text())["cells"]
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert "mkdtemp" not in code and f'scratch_folder("../runs/scratch/{name}")' in code
