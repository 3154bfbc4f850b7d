"""Glue for experiment trackers beyond Lightning's own loggers (conf/logger/ picks the loggers)."""
