"""Dataset evaluators (detectron2 ``DatasetEvaluator``s) for localisation quality."""

__all__: list[str] = []
