import subprocess
import sys


def test_import_reprolab_leaves_the_heavy_extras_alone():
    """Plots, widgets and the digits data are extras: importing the package must not load them."""
    code = ("import sys, reprolab; "
            "print(sorted(m for m in ('matplotlib', 'ipywidgets', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_module_of_the_package_imports_one_that_imports_it_back():
    """Import cycles, counting imports inside functions too (gallery <-> plots was one)."""
    import ast
    from pathlib import Path

    import reprolab

    root = Path(reprolab.__file__).parent
    edges = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module and path.name != "__init__.py":
                deps.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.level == 2 and node.module:  # zoo/__init__ -> ..programs
                deps.add(node.module.split(".")[0])
        edges[name] = deps
    cycles = [(a, b) for a, deps in edges.items() for b in deps if a in edges.get(b, set()) and a < b]
    assert cycles == []
