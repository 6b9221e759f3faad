"""The pipeline domain."""
