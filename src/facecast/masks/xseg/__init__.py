"""XSeg-style segmentation: model, training (with no-label pretraining) and applying masks."""
