"""Optuna sweeps: search spaces, storages, the sweep loop, in-job pruning and the sweep report."""
