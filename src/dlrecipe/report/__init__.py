"""What a run leaves for people to read: the summary table, summary.json, learning curves."""
