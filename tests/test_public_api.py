import sys

import tracehint


def test_every_public_name_is_exported() -> None:
    for name in tracehint.__all__:
        assert hasattr(tracehint, name), name


def test_exceptions_share_one_root() -> None:
    for name in tracehint.__all__:
        obj = getattr(tracehint, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, tracehint.TracehintError), name


def test_core_does_not_import_optional_engines() -> None:
    assert "ray" not in sys.modules
