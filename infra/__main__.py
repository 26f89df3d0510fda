"""Entry point Pulumi runs (`main: infra/` in Pulumi.yaml): build the stack, export its outputs."""

import sys
from pathlib import Path

import pulumi

# Pulumi runs this directory as a script, with `infra/` first on sys.path; import the program
# as the `infra` package from the repository root instead, so module names never shadow others.
_INFRA = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _INFRA]
sys.path.insert(0, str(_INFRA.parent))

from infra.program import build  # noqa: E402

for _name, _value in build().items():
    pulumi.export(_name, _value)
