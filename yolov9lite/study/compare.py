"""Two claims ledgers side by side (``yolov9lite claims compare A B``): the same notebooks run at
two scales, on two machines or with two seed bases. Reads ledgers as stored, any verdict."""
from __future__ import annotations

import json
from pathlib import Path

from .claims import CLAIMS_SUBDIR, fmt


def read_ledgers(where: str | Path) -> dict[str, dict]:
    """Claims by id, as stored (any verdict), from a ledger file, a ``claims/`` folder, a figures
    folder holding ``claims/`` or a scale's runs folder holding ``figures/claims/``."""
    where = Path(where)
    folders = [where / CLAIMS_SUBDIR, where / "figures" / CLAIMS_SUBDIR, where]
    files = [where] if where.is_file() else next(
        (sorted(f.glob("*.json")) for f in folders if f.is_dir() and any(f.glob("*.json"))), [])
    if not files:
        raise FileNotFoundError(f"{where}: no claims ledger (a claims/NN_name.json file or a "
                                "folder holding claims/); run `yolov9lite figures` first")
    out = {}
    for path in files:
        try:
            out.update({c["id"]: c for c in json.loads(path.read_text())["claims"]})
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a claims ledger ({err})") from None
    return out


def compare_table(a: dict[str, dict], b: dict[str, dict], names: tuple[str, str]) -> str:
    """Markdown: one row per claim id of either ledger, estimate [interval] and verdict of each."""
    def cell(c):
        return (f"{fmt(c['estimate'])} [{fmt(c['ci'][0])}, {fmt(c['ci'][1])}] | {c['verdict']}"
                if c else "– | –")
    rows = [f"| claim | {names[0]} | verdict | {names[1]} | verdict | same verdict |",
            "|---|---|---|---|---|---|"]
    for cid in sorted(set(a) | set(b)):
        same = "yes" if cid in a and cid in b and a[cid]["verdict"] == b[cid]["verdict"] else "NO"
        rows.append(f"| `{cid}` | {cell(a.get(cid))} | {cell(b.get(cid))} | {same} |")
    changed = sum(r.endswith("| NO |") for r in rows)
    return "\n".join(rows) + f"\n\n{changed} of {len(rows) - 2} claims differ (verdict, presence)."
