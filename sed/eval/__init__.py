"""Evaluation: predictions and validation (`evaluation`), events from frame scores (`postprocess`), event F1
and PSDS (`metrics`, `threshold_free`), the DCASE-format files (`outputs`)."""
