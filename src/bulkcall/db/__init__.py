"""Storage: models, repositories (every query lives there), engine and migrations."""
