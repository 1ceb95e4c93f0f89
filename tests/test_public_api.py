import subprocess
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
    # In a fresh interpreter: other tests in this session may have imported Ray themselves.
    code = (
        "import sys, tracehint, tracehint._main, tracehint._bench; "
        "assert not {'ray', 'matplotlib'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
