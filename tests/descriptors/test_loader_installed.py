"""The loader imports the generated packages only, also when they are installed as a
wheel among other packages (site-packages), not everything beside them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from meshadapter.codegen import PACKAGES

from adapter.descriptors.loader import import_generated_modules

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, meshadapter
from adapter.descriptors.loader import import_generated_modules
print(json.dumps({"root": meshadapter.__file__, "files": sorted(f.name for f in import_generated_modules())}))
"""


def test_codegen_names_every_generated_package() -> None:
    on_disk = sorted(p.name for p in (ROOT / "generated").iterdir() if (p / "__init__.py").is_file())
    assert sorted(PACKAGES) == on_disk


def test_installed_beside_other_packages_imports_only_the_generated_ones(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    for package in PACKAGES:
        shutil.copytree(ROOT / "generated" / package, site / package)
    # A neighbour with a *_pb2 module whose import fails loudly, as matplotlib's test
    # package did when the loader scanned site-packages.
    decoy = site / "neighbour"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise RuntimeError('the loader imported a neighbour package')\n")
    (decoy / "thing_pb2.py").write_text("")

    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={"PYTHONPATH": f"{site}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["root"].startswith(str(site))  # the copies were loaded, not the checkout's
    assert found["files"] == sorted(f.name for f in import_generated_modules())
