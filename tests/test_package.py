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


def test_the_wheel_holds_every_zoo_file(tmp_path):
    """A pip install (Colab's) gets the zoo's programs and the galleries' pictures, not only the code."""
    import shutil
    import zipfile
    from pathlib import Path

    from reprolab import zoo

    # built from a copy: an in-tree build would reuse (and leave) the checkout's build/ folder
    repo, src = Path(__file__).resolve().parents[1], tmp_path / "src"
    shutil.copytree(repo / "reprolab", src / "reprolab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("reprolab-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    root = Path(zoo.__file__).parent
    entries = [zoo.path(name) for name in zoo.names()]   # each checks its sha256: once per entry
    expected = {f"reprolab/zoo/{p.relative_to(root).as_posix()}"
                for e in entries for p in ([e] if e.is_file() else e.iterdir())}
    assert "reprolab/zoo/manifest.json" in packed
    assert expected - packed == set(), f"{len(expected - packed)} zoo files missing from the wheel"
