import inspect
import subprocess
import sys
from pathlib import Path

import tracehint


def test_every_public_name_is_exported() -> None:
    for name in tracehint.__all__:
        assert hasattr(tracehint, name), name


def test_all_is_exactly_the_public_names() -> None:
    """Checked both ways: nothing public is missing from ``__all__``, nothing listed twice."""
    public = {
        name
        for name, value in vars(tracehint).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(tracehint.__all__) - {"__version__"}
    assert len(tracehint.__all__) == len(set(tracehint.__all__))


def test_every_exported_name_is_documented() -> None:
    """Classes and functions by their own docstring; constants and aliases in the README."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name in tracehint.__all__:
        value = getattr(tracehint, name)
        if inspect.isclass(value):
            assert (value.__dict__.get("__doc__") or "").strip(), name
        elif inspect.isfunction(value):
            assert (value.__doc__ or "").strip(), name
        elif name != "__version__":
            assert f"`{name}`" in readme, name


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
