"""Cross-validation: run every fold, then aggregate fold scores, out-of-fold predictions and the fold ensemble."""
