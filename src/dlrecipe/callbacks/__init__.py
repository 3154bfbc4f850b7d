"""Project callbacks: what Lightning's own callbacks do not already do."""
