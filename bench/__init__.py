"""The benchmark (`make bench`, `python -m bench`): photoshare beside the source article's
approach, measured in one run. Never imported by `app/`."""
