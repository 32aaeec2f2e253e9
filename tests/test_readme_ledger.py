"""The README's default-scale results agree with the claims ledger.

Every ``\\`NN.claim_id\\` **verdict**`` in README.md must name a claim of ``figures/claims/*.json``
with that verdict, and ``figures/claims.md`` must be what :func:`yolov9lite.study.claims.write_summary`
makes of those files (so nobody edits a verdict by hand).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from yolov9lite.study.claims import load_claims, write_summary

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = ROOT / "figures" / "claims"
MENTION = re.compile(r"`(\d\d\.[A-Za-z0-9_]+)`:?\s*"
                     r"\*\*(supports|contradicts|inconclusive|control failed)\*\*")


def readme_mentions(text: str) -> list[tuple[str, str]]:
    return MENTION.findall(text)


def check_mentions(text: str, ledger: dict[str, str]) -> list[str]:
    problems = []
    for claim_id, verdict in readme_mentions(text):
        if claim_id not in ledger:
            problems.append(f"README names {claim_id}, which is not in figures/claims/")
        elif ledger[claim_id] != verdict:
            problems.append(f"README says {claim_id} {verdict}; the ledger says "
                            f"{ledger[claim_id]}")
    return problems


def test_readme_verdicts_match_the_ledger():
    ledger = {c.id: c.verdict for c in load_claims(CLAIMS)}
    text = (ROOT / "README.md").read_text()
    assert readme_mentions(text), "the README quotes no ledger verdict"
    assert "figures/claims.md" in text
    problems = check_mentions(text, ledger)
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_disagreement():
    ledger = {"01.x": "supports"}
    assert check_mentions("`01.x` **supports**", ledger) == []
    assert check_mentions("`01.x` **contradicts**", ledger)
    assert check_mentions("`01.y` **supports**", ledger)


def test_claims_md_is_generated_from_the_ledger(tmp_path):
    shutil.copytree(CLAIMS, tmp_path / "claims")
    fresh = write_summary(tmp_path / "claims").read_text()
    assert (ROOT / "figures" / "claims.md").read_text() == fresh, \
        "figures/claims.md is stale: run `yolov9lite figures` (it calls write_summary)"
