"""Dataset YAML -> normalised config dict (official `data/coco.yaml` style, plus COCO-JSON keys).

Accepted keys:
- `path`: dataset root; relative roots are resolved against the YAML file's own folder;
- `train`, `val` (optional `test`): an image folder, a `.txt` list of images, or a list of
  those, relative to `path`. YOLO layout: labels are found by replacing the last `images`
  folder of each image path with `labels` and the suffix with `.txt`;
- `train_json`, `val_json` (optional): COCO instances JSON of that split. When given, that
  split is read from the JSON and `train`/`val` must be the image folder;
- `names`: a list or an {index: name} mapping (optional for COCO-JSON: taken from the JSON);
- `category_ids` (optional): dataset category id of each contiguous class index. Defaults to
  the sorted JSON category ids for COCO-JSON, else `range(nc)` (what the official val.py does
  for non-COCO sets). `data/coco.yaml` lists the 80 -> 91 mapping.

`load_data_config("synthetic")` generates the synthetic set (see `synthetic.py`) under
`$YOLOV9LITE_SYNTHETIC` or `runs/data/synthetic` and returns its config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from .synthetic import make_synthetic

SPLITS = ("train", "val", "test")


class DataConfigError(ValueError):
    """A dataset YAML that cannot be used; the message names the file and the key."""


def synthetic_root() -> Path:
    return Path(os.environ.get("YOLOV9LITE_SYNTHETIC", "runs/data/synthetic"))


def load_data_config(data) -> dict:
    """Normalise a dataset description. `data` is a YAML path, "synthetic", or a dict.

    Returns a dict with `yaml` (source), `path` (root, absolute), `names` (list), `nc`,
    `train`/`val` (absolute image source: str or list of str), `train_json`/`val_json`
    (absolute JSON path or None), `category_ids` (list, class index -> dataset category id),
    `format` ("coco" if any split has a JSON, else "yolo").
    """
    if isinstance(data, dict):
        if data.get("_normalised"):
            return data
        return normalise(dict(data), "<dict>", Path.cwd())
    if str(data) == "synthetic":
        data = make_synthetic(synthetic_root())
    yaml_path = Path(data)
    if not yaml_path.is_file():
        raise DataConfigError(f"dataset YAML not found: {yaml_path}")
    raw = read_yaml_file(yaml_path)
    if not isinstance(raw, dict):
        raise DataConfigError(f"{yaml_path}: expected a mapping with train/val/names keys")
    return normalise(raw, str(yaml_path), yaml_path.resolve().parent)


def _read_text_file(path: Path, parse, syntax_errors, describe):
    """``parse(file)`` of a UTF-8 text file; every failure becomes one DataConfigError naming
    the file: unreadable, not UTF-8, or a syntax error (``describe(err)`` says where)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return parse(f)
    except syntax_errors as e:
        raise DataConfigError(f"{path}: {describe(e)}") from None
    except UnicodeDecodeError as e:
        raise DataConfigError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") \
            from None
    except OSError as e:
        raise DataConfigError(f"{path}: cannot read ({e.strerror or e})") from None


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"not valid YAML{where}: {getattr(e, 'problem', None) or str(e).splitlines()[0]}"


def read_yaml_file(path: Path):
    """Parsed YAML; a file that is unreadable, not UTF-8 or not valid YAML raises
    DataConfigError naming the file and, for syntax errors, the line and column."""
    return _read_text_file(path, yaml.safe_load, yaml.YAMLError, _yaml_problem)


def read_json_file(path: Path):
    """Parsed JSON; a file that is unreadable, not UTF-8 or not valid JSON raises
    DataConfigError naming the file and, for syntax errors, the line and column."""
    return _read_text_file(path, json.load, json.JSONDecodeError, lambda e: (
        f"not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}"))


def is_scalar(value) -> bool:
    return type(value) in (str, int)


def check_shapes(raw: dict, fail) -> None:
    """Every key this reader uses holds what it should (a string, an integer, or a flat list of
    those) before anything is converted or printed: `str()` or `repr()` of a YAML alias bomb
    (nested lists sharing aliases, 500 bytes in the file) expands to gigabytes."""
    def flat(value, item_ok) -> bool:
        return isinstance(value, (list, tuple)) and all(item_ok(v) for v in value)

    if raw.get("path") is not None and type(raw["path"]) is not str:
        fail(f"'path' must be a folder name (a string), got {type(raw['path']).__name__}")
    for split in SPLITS:
        value = raw.get(split)
        if value not in (None, "") and type(value) is not str \
                and not flat(value, lambda v: type(v) is str):
            fail(f"'{split}' must be an image folder, a .txt list or a list of those (strings), "
                 f"got a {type(value).__name__} holding other things")
        json_value = raw.get(f"{split}_json")
        if json_value is not None and type(json_value) is not str:
            fail(f"'{split}_json' must be a file name (a string), got "
                 f"{type(json_value).__name__}")
    names = raw.get("names")
    if isinstance(names, dict):
        names = list(names.values())
    if isinstance(names, (list, tuple)) and not all(is_scalar(n) for n in names):
        bad = next(n for n in names if not is_scalar(n))
        fail(f"'names' must hold plain names (strings or numbers), got a {type(bad).__name__}")
    if "nc" in raw and type(raw["nc"]) is not int:
        nc = raw["nc"]
        shown = repr(nc) if isinstance(nc, (str, float, bool)) and len(repr(nc)) < 40 else (
            f"a {type(nc).__name__}")
        fail(f"'nc' is {shown}; it must be an integer, the number of names")
    ids = raw.get("category_ids")
    if ids is not None and not flat(ids, lambda v: type(v) is int):
        fail("'category_ids' must be a list of integers")


def normalise(raw: dict, source: str, base: Path) -> dict:
    def fail(message: str):
        raise DataConfigError(f"{source}: {message}")

    check_shapes(raw, fail)

    root = Path(str(raw.get("path") or "."))
    root = (root if root.is_absolute() else base / root).resolve()
    cfg = {"yaml": source, "path": str(root), "_normalised": True}
    for key in ("train", "val"):
        if key not in raw or raw[key] in (None, ""):
            fail(f"missing key '{key}'")
    for split in SPLITS:
        value = raw.get(split)
        json_value = raw.get(f"{split}_json")
        cfg[split] = None if value in (None, "") else resolve_source(value, root, split, fail)
        cfg[f"{split}_json"] = None
        if json_value:
            json_path = resolve(json_value, root)
            if not json_path.is_file():
                fail(f"'{split}_json' file not found: {json_path}")
            if cfg[split] is None or not Path(cfg[split]).is_dir():
                fail(f"'{split}' must be the image folder when '{split}_json' is given")
            cfg[f"{split}_json"] = str(json_path)
    names = raw.get("names")
    need_json = names is None or raw.get("category_ids") is None
    json_categories = categories_from_json(cfg) if need_json else None
    if names is None:
        if json_categories is None:
            fail("missing key 'names'")
        names = [c["name"] for c in json_categories]
    elif isinstance(names, dict):
        keys = sorted(names, key=str)
        if not all(type(k) is int for k in keys) or sorted(keys) != list(range(len(keys))):
            fail(f"'names' keys must be 0..{len(keys) - 1}, got {keys[:5]}...")
        keys = sorted(keys)
        names = [str(names[k]) for k in keys]
    elif isinstance(names, (list, tuple)):
        names = [str(n) for n in names]
    else:
        fail(f"'names' must be a list or a mapping, got {type(names).__name__}")
    if "nc" in raw and (type(raw["nc"]) is not int or raw["nc"] != len(names)):
        fail(f"'nc' is {raw['nc']!r} but 'names' has {len(names)} entries")
    category_ids = raw.get("category_ids")
    if category_ids is None:
        category_ids = ([c["id"] for c in json_categories] if json_categories is not None
                        else list(range(len(names))))
    if not isinstance(category_ids, (list, tuple)) or \
            not all(type(c) is int for c in category_ids):
        fail("'category_ids' must be a list of integers")
    category_ids = [int(c) for c in category_ids]
    if len(category_ids) != len(names):
        fail(f"'category_ids' has {len(category_ids)} entries but there are {len(names)} names")
    cfg.update(names=names, nc=len(names), category_ids=category_ids,
               format="coco" if any(cfg[f"{s}_json"] for s in SPLITS) else "yolo")
    return cfg


def resolve(value, root: Path) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else (root / p)


def resolve_source(value, root: Path, split: str, fail):
    """Image folder / .txt list / list of them -> absolute string(s); missing ones are errors."""
    if isinstance(value, (list, tuple)):
        return [resolve_source(v, root, split, fail) for v in value]
    p = resolve(value, root)
    if not p.exists():
        fail(f"'{split}' path not found: {p}")
    return str(p)


def categories_from_json(cfg: dict):
    """Sorted categories of the first split that has a JSON (val first: it is the small one)."""
    for split in ("val", "train", "test"):
        if cfg.get(f"{split}_json"):
            path = cfg[f"{split}_json"]
            coco = read_json_file(path)
            categories = coco.get("categories") if isinstance(coco, dict) else None
            if not isinstance(categories, list) or not all(
                    isinstance(c, dict) and type(c.get("id")) is int and "name" in c
                    for c in categories):
                raise DataConfigError(f"{path}: 'categories' must be a list of objects with an "
                                      "integer 'id' and a 'name'")
            return sorted(categories, key=lambda c: c["id"])
    return None


def split_source(cfg: dict, split: str) -> dict:
    """What `labels.load_records` needs for one split."""
    if split not in SPLITS or cfg.get(split) is None:
        raise DataConfigError(f"{cfg.get('yaml')}: no split '{split}'")
    return {"images": cfg[split], "json": cfg.get(f"{split}_json"),
            "category_ids": cfg["category_ids"]}
