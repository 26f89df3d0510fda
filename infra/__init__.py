"""The Pulumi program that deploys photoshare to Azure: one ComponentResource per concern.

`program.build()` wires the components; `__main__.py` is the thin entry point Pulumi runs.
"""
