"""`smallcode calibrate` from recorded outcomes, and writing the threshold into a config."""

from __future__ import annotations

import json
from pathlib import Path

from router.settings import load_settings
from tests.helpers import smallcode


def outcomes(tmp_path: Path) -> Path:
    path = tmp_path / "outcomes.jsonl"
    rows = [{"confidence": i / 10, "local_passed": i >= 5, "cloud_passed": True}
            for i in range(10)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_target_cloud_share_prints_and_writes_only_when_asked(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("# keep me\npolicies:\n  default:\n    confidence_threshold: 0.55\n")
    result = smallcode("--config", str(config), "calibrate", str(outcomes(tmp_path)),
                       "--target-cloud-share", "0.3", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["expected_cloud_share"] <= 0.3 and summary["written"] is False
    assert "0.55" in config.read_text()  # untouched without --write

    result = smallcode("--config", str(config), "calibrate", str(outcomes(tmp_path)),
                       "--target-quality", "1.0", "--write", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["expected_quality"] == 1.0
    settings = load_settings(config)
    assert settings.policies.default.confidence_threshold == round(summary["threshold"], 4)
    assert config.read_text().startswith("# keep me")


def test_bad_outcomes_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"confidence": 0.5, "local_passed": true}\nnot json\n')
    result = smallcode("calibrate", str(path), "--target-cloud-share", "0.2")
    assert result.returncode == 2 and "2" in result.stderr and "Traceback" not in result.stderr
