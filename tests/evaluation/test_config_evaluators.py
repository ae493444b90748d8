"""``dataloader.evaluator`` lists the evaluators a run uses; train_net instantiates exactly that."""

import os

from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig, instantiate
from detectron2.evaluation import DatasetEvaluators
from omegaconf import OmegaConf

from d2_boxunc.config import to_synthetic
from d2_boxunc.config.synthetic import TEST_DATASET, set_evaluator_dataset
from d2_boxunc.data.register import prepare_dataset
from d2_boxunc.data.tiny import TINY_VAL
from d2_boxunc.evaluation import BoxCOCOEvaluator, BoxUncertaintyEvaluator, LRPEvaluator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KL = os.path.join(ROOT, "configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x.py")
KINDS = [BoxCOCOEvaluator, LRPEvaluator, BoxUncertaintyEvaluator]


def test_config_lists_its_evaluators_on_the_test_set_and_output_dir(tmp_path):
    prepare_dataset(TINY_VAL)
    cfg = LazyConfig.load(KL)
    names = [e._target_ for e in cfg.dataloader.evaluator.evaluators]
    assert names == KINDS  # what the config says is what runs
    cfg.dataloader.test.dataset.names = TINY_VAL
    cfg.train.output_dir = str(tmp_path)
    ev = instantiate(cfg.dataloader.evaluator)
    assert isinstance(ev, DatasetEvaluators)
    assert [type(e) for e in ev._evaluators] == KINDS
    coco, lrp, unc = ev._evaluators
    assert coco._metadata.name == lrp._metadata.name == unc._dataset_name == TINY_VAL
    assert coco._output_dir == unc._output_dir == str(tmp_path)


def test_synthetic_switch_and_overrides_reach_every_evaluator():
    cfg = to_synthetic(LazyConfig.load(KL), max_iter=1)
    evaluators = cfg.dataloader.evaluator.evaluators
    assert {e.dataset_name for e in evaluators} == {TEST_DATASET}
    assert {e.output_dir for e in evaluators} == {cfg.train.output_dir}
    cfg = LazyConfig.apply_overrides(
        cfg, [f"dataloader.test.dataset.names={TINY_VAL}", "train.output_dir=/tmp/elsewhere"]
    )
    assert {e.dataset_name for e in evaluators} == {TINY_VAL}
    assert {e.output_dir for e in evaluators} == {"/tmp/elsewhere"}


def test_set_evaluator_dataset_sets_literals_and_keeps_interpolations():
    cfg = OmegaConf.create({"dataloader": {"test": {"dataset": {"names": "a"}}}})
    cfg.dataloader.evaluator = L(DatasetEvaluators)(
        evaluators=[
            L(BoxCOCOEvaluator)(dataset_name="a"),
            L(DatasetEvaluators)(evaluators=[L(LRPEvaluator)(dataset_name="a")]),
            L(BoxUncertaintyEvaluator)(dataset_name="${dataloader.test.dataset.names}"),
        ]
    )
    set_evaluator_dataset(cfg.dataloader.evaluator, "b")
    ev = cfg.dataloader.evaluator.evaluators
    assert ev[0].dataset_name == ev[1].evaluators[0].dataset_name == "b"
    assert ev[2].dataset_name == "a"  # follows the test set
    single = L(BoxCOCOEvaluator)(dataset_name="a")
    set_evaluator_dataset(single, "b")
    assert single.dataset_name == "b"


def test_a_config_runs_fewer_evaluators_by_listing_fewer():
    prepare_dataset(TINY_VAL)
    cfg = LazyConfig.load(KL)
    cfg.dataloader.test.dataset.names = TINY_VAL
    cfg.dataloader.evaluator.evaluators = [cfg.dataloader.evaluator.evaluators[0]]
    ev = instantiate(cfg.dataloader.evaluator)
    assert [type(e) for e in ev._evaluators] == [BoxCOCOEvaluator]
