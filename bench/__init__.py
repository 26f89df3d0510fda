"""The benchmark of issue 6 (`make bench`, `python -m bench`): photoshare beside the source
article's approach, measured in one run. Never imported by `app/`."""
