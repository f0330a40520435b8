"""Every module of benchmarks/ imports cleanly, as asv's discovery imports them all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__")


def test_benchmark_modules_import_without_side_effects():
    # asv runs "benchmark.py discover DIR OUT" and imports each module: a module
    # that parses sys.argv, re-executes itself or exits at import breaks the
    # discovery of the whole suite.  Thread variables are unset on purpose: a
    # script may restart itself with one thread, but only under __main__.
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    imports = "; ".join(f"import benchmarks.{name}" for name in MODULES)
    code = f"import sys; sys.argv = ['benchmark.py', 'discover', 'x', 'y']; {imports}; print('ok')"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "ok", done.stdout[-2000:]
    assert "speed_single" in MODULES and "bench_gmres" in MODULES
