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


def test_a_long_redacted_text_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    kept = Kept(max_kept_chars=50)
    text = f"aws_access_key_id = {AWS_ID}\n" + "x = 1\n" * 20
    assert kept(text).count == 1 and kept(text).count == 1
    assert kept.scanned == 2
    clean = "x = 1\n" * 20  # nothing to redact: kept (no copy of it is held)
    kept(clean), kept(clean)
    assert kept.scanned == 3


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
