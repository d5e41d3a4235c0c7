"""Local development: the runner and its helpers. Not deployed."""
