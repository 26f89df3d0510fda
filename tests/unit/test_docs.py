"""The README's settings table is the contract: it must list exactly what the app declares."""

import re
from pathlib import Path

from app.settings import SETTINGS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_setting_with_its_default():
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| .* \| (.+) \|$", README.read_text(), flags=re.M))
    assert set(rows) == {s.name for s in SETTINGS}
    for setting in SETTINGS:
        shown = setting.default or setting.shown_default
        if shown:
            assert rows[setting.name].strip("`") == shown, setting.name
        if setting.requirement == "required":
            assert rows[setting.name].startswith("required"), setting.name
