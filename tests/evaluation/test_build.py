"""The box-quality evaluators join any config's COCOEvaluator once."""

from detectron2.evaluation import COCOEvaluator, DatasetEvaluators
from omegaconf import OmegaConf

from d2_boxunc.data.register import prepare_dataset
from d2_boxunc.data.tiny import TINY_VAL
from d2_boxunc.evaluation import BoxUncertaintyEvaluator, LRPEvaluator, add_box_quality_evaluators


def _cfg(**dataloader):
    return OmegaConf.create(
        {"dataloader": {"test": {"dataset": {"names": TINY_VAL}}, **dataloader}}
    )


def test_adds_lrp_and_uncertainty_once(tmp_path):
    prepare_dataset(TINY_VAL)
    coco = COCOEvaluator(TINY_VAL, use_fast_impl=False)
    ev = add_box_quality_evaluators(_cfg(), coco, str(tmp_path))
    kinds = [type(e) for e in ev._evaluators]
    assert kinds == [COCOEvaluator, LRPEvaluator, BoxUncertaintyEvaluator]
    again = add_box_quality_evaluators(_cfg(), ev, str(tmp_path))  # nested: nothing added twice
    assert [type(e) for e in again._evaluators] == kinds
    off = add_box_quality_evaluators(_cfg(box_quality_eval=False), coco, str(tmp_path))
    assert isinstance(off, DatasetEvaluators) and [type(e) for e in off._evaluators] == [
        COCOEvaluator
    ]
