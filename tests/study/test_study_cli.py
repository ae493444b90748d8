"""A tiny end-to-end study: trains, caches, analyses, and writes a schema-valid results.json."""

import json
import os

import pytest

from d2_boxunc.study.__main__ import main

COMPARISON_KEYS = {"name", "metric", "diff", "ci_low", "ci_high", "verdict"}


@pytest.mark.slow
def test_tiny_study_runs_caches_and_reports(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "study"
    args = ["--methods", "baseline,iou", "--seeds", "2", "--max-iter", "2", "--val-images", "8"]
    args += ["--resamples", "20", "--jobs", "2", "--output", str(out)]
    results = main(args)
    first = capsys.readouterr().out
    assert "[study] 4 runs, 0 cached" in first

    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["seeds"] == 2 and on_disk["val_images"] == 8
    assert on_disk["backbone_dtype"] == "bfloat16"  # the default: every run's backbone in bf16
    key = json.loads((out / "runs" / "iou" / "s1" / "study_key.json").read_text())
    assert "+model.backbone.autocast_dtype=bfloat16" in key["args"]
    rows = {r["row"]: r for r in on_disk["rows"]}
    assert set(rows) == {"baseline", "iou"}
    assert rows["baseline"]["seeds"] == [0, 1]
    for metric in ("AP", "AP50", "AP75", "AP80", "AP90", "oLRP"):
        assert set(rows["iou"][metric]) == {"mean", "sd", "n"}
    assert on_disk["comparisons"], "iou vs baseline is compared"
    for c in on_disk["comparisons"] + on_disk["claims"]:
        assert COMPARISON_KEYS <= set(c)
        assert c["ci_low"] <= c["diff"] <= c["ci_high"] or c["ci_low"] != c["ci_low"]  # NaN
    claim_names = {c["name"] for c in on_disk["claims"]}
    assert "IoU loss > smooth L1" in claim_names
    assert results["claims"] == on_disk["claims"]
    report = (out / "report.md").read_text()
    assert "## Claims" in report and "IoU loss > smooth L1" in report
    assert os.path.isfile(out / "runs" / "iou" / "s1" / "model_final.pth")

    # a rerun trains nothing; one more seed trains only the new seed's runs
    main(args)
    assert "[study] 0 runs, 4 cached" in capsys.readouterr().out
    main([*args[:3], "3", *args[4:]])
    assert "[study] 2 runs, 4 cached" in capsys.readouterr().out


def test_unknown_method_is_one_line():
    with pytest.raises(SystemExit, match="unknown method 'foo'"):
        main(["--methods", "baseline,foo"])
