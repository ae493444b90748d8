"""The console progress bar of the study and the demo: trainings count the iterations their
``metrics.json`` reports, evaluations count when they end, earlier runs' lines do not count."""

import io
import json

import pytest

from d2_boxunc.study.progress import RunProgress, eval_iters


def _log(path, *iterations):
    with open(path, "a") as f:
        for it in iterations:
            f.write(json.dumps({"iteration": it, "total_loss": 1.0}) + "\n")


@pytest.fixture
def progress():
    p = RunProgress(1000, "test", poll_s=3600, file=io.StringIO())
    yield p
    p.close()


def test_a_training_moves_the_bar_as_metrics_json_grows(tmp_path, progress):
    with progress.run(600, str(tmp_path)):
        progress.refresh()
        assert progress.bar.n == 0
        _log(tmp_path / "metrics.json", 19, 39)
        progress.refresh()
        assert progress.bar.n == 40
        with open(tmp_path / "metrics.json", "a") as f:
            f.write('{"iteration": 59, "tot')  # a line being written is not read
        progress.refresh()
        assert progress.bar.n == 40
    assert progress.bar.n == 600  # the run's whole weight once it ends


def test_lines_of_an_earlier_run_in_the_same_folder_do_not_count(tmp_path, progress):
    _log(tmp_path / "metrics.json", 499)  # detectron2 appends to metrics.json
    with progress.run(600, str(tmp_path)):
        progress.refresh()
        assert progress.bar.n == 0
        _log(tmp_path / "metrics.json", 9)
        progress.refresh()
        assert progress.bar.n == 10


def test_a_training_never_fills_its_weight_before_it_ends(tmp_path, progress):
    with progress.run(100, str(tmp_path)):
        _log(tmp_path / "metrics.json", 99, 150)
        progress.refresh()
        assert progress.bar.n == 99


def test_evaluations_and_failed_runs_count_when_they_end(progress):
    with progress.run(30):
        progress.refresh()
        assert progress.bar.n == 0
    with pytest.raises(RuntimeError), progress.run(50):
        raise RuntimeError("train_net.py failed")
    assert progress.bar.n == 80


def test_eval_cost_grows_with_the_validation_split():
    assert eval_iters(500) > eval_iters(100) > 0
