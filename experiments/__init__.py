"""servegym.experiments: running controllers over scenarios and reporting the results."""
