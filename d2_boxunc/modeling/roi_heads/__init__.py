"""ROI heads and box predictors (registered in detectron2's registries on import)."""
