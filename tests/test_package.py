import subprocess
import sys


def test_import_reprolab_leaves_the_heavy_extras_alone():
    """Plots, widgets and the digits data are extras: importing the package must not load them."""
    code = ("import sys, reprolab; "
            "print(sorted(m for m in ('matplotlib', 'ipywidgets', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
