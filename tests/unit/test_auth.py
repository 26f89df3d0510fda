import pytest

from app.auth import safe_next


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", "/"),
        ("/photos?x=1", "/photos?x=1"),
        (None, "/"),
        ("", "/"),
        ("https://evil.example", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/\\/evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/\t/evil.example", "/"),
        ("evil.example", "/"),
    ],
)
def test_next_stays_on_site(target, expected):
    assert safe_next(target) == expected
