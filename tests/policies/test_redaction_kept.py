"""Redaction with its results kept (policies/redaction.py ``Kept``): the same result as a fresh
scan, each text scanned once while it is kept, and the kept texts bounded."""

from __future__ import annotations

import pytest

import policies.redaction
from policies.redaction import Kept, redact

AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"  # built from parts so that no scanner sees a leak


@pytest.mark.parametrize("text", ["", "def add(a, b):\n    return a + b\n",
                                  f"aws_access_key_id = {AWS_ID}\nand more"])
def test_a_kept_result_is_the_result_of_a_fresh_scan(text: str) -> None:
    kept = Kept()
    assert kept(text) == redact(text)
    assert kept(text) == redact(text)  # kept, as it was
    assert kept.scanned == 1


def test_texts_are_kept_up_to_the_bound_the_latest_used_staying() -> None:
    kept = Kept(max_texts=2)
    for text in ["a", "b", "a", "c", "a", "b"]:
        kept(text)
    assert kept.scanned == 4  # "b" was the least recently used when "c" came


def test_the_redacted_copies_kept_are_bounded_in_characters() -> None:
    kept = Kept(max_copied_chars=150)
    secret = f"aws_access_key_id = {AWS_ID}\n"
    long = secret + "x = 1\n" * 30  # its copy alone is over the bound: never kept
    assert kept(long).count == 1 and kept(long).count == 1
    assert kept.scanned == 2
    one, two = secret + "# one\n", secret + "# two\n"  # 52 characters each, redacted
    kept(one), kept(two), kept(one)
    assert kept.scanned == 4  # both kept
    kept(secret + "# three\n" + "y = 2\n" * 5)  # 84: over 150 in all, the least used goes
    kept(one)
    assert kept.scanned == 5  # one stayed
    kept(two)
    assert kept.scanned == 6  # two went
    clean = "x = 1\n" * 100  # nothing to redact: kept whatever its length (no copy is held)
    kept(clean), kept(clean)
    assert kept.scanned == 7


def test_the_shared_instance_scans_through_redact(monkeypatch: pytest.MonkeyPatch) -> None:
    scanned: list[str] = []

    def counting(text: str) -> policies.redaction.Redaction:
        scanned.append(text)
        return redact(text)

    monkeypatch.setattr(policies.redaction, "redact", counting)
    text = f"a text this test alone sends {id(scanned)}"
    policies.redaction.redact_kept(text)
    policies.redaction.redact_kept(text)
    assert scanned == [text]
