"""digits-svm: a support-vector classifier (Platt-scaled probabilities) over 8x8 digits."""

from chorus_local.models.digits import input_fn, model_fn, output_fn, predict_fn

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]
