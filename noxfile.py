"""Nox sessions for krylovadv: tests, slow, lint, docs, bench, bench-compare, mutation, fuzz."""

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint"]

CONSTRAINTS = ("-c", "constraints-cpu.txt")
LINT_PATHS = ("krylovadv", "tests", "benchmarks", "noxfile.py")
ASV_CONFIG = ("--config", "benchmarks/asv.conf.json")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the default (non-slow) test suite."""
    session.install(*CONSTRAINTS, "-e", ".[test]")
    session.install("--no-deps", "torchattacks==3.5.1")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """Run the long experiments marked ``slow`` (not run by CI)."""
    session.install(*CONSTRAINTS, "-e", ".[test]")
    session.run("python", "-m", "pytest", "-m", "slow", *session.posargs)


@nox.session(venv_backend="none")
def gpu(session: nox.Session) -> None:
    """Run the CUDA-against-CPU tests (marker ``gpu``) in the current environment.

    No virtualenv: the CI constraints pin torch's CPU build, and a GPU machine
    brings its own CUDA torch.  Fails when no CUDA device is visible rather than
    skipping, so that a green run means the GPU checks ran.
    """
    session.run(
        "python", "-c", "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)"
    )
    session.run("python", "-m", "pytest", "-m", "gpu", "tests/torch/test_cuda.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff lint and format checks."""
    session.install(*CONSTRAINTS, "ruff>=0.5")
    session.run("ruff", "check", *LINT_PATHS)
    session.run("ruff", "format", "--check", *LINT_PATHS)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the Sphinx HTML docs, treating warnings as errors."""
    session.install(*CONSTRAINTS, "-e", ".[docs,torch]")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the asv benchmarks once, quickly, in the current environment."""
    session.install(*CONSTRAINTS, "-e", ".[bench,torch]")
    session.run("asv", "machine", "--yes", *ASV_CONFIG)
    # --python=same: the current interpreter and the installed krylovadv, nothing built.
    session.run(
        "asv", "run", "--python=same", "--quick", "--show-stderr", *ASV_CONFIG, *session.posargs
    )


@nox.session(name="bench-compare")
def bench_compare(session: nox.Session) -> None:
    """Compare HEAD with a base commit: ``nox -s bench-compare -- BASE [asv options]``.

    Runs ``asv continuous --factor 1.1 BASE HEAD``: asv builds both commits into
    its own virtualenvs (CPU torch, benchmarks/asv.conf.json), times them and
    exits non-zero when a benchmark is more than 10 % slower at HEAD, which
    fails the session.  Extra options go to asv, e.g. ``--bench gmres``.
    """
    if not session.posargs:
        session.error("name the base commit: nox -s bench-compare -- BASE [asv options]")
    base, *options = session.posargs
    session.install(*CONSTRAINTS, "asv>=0.6", "virtualenv")
    session.run("asv", "machine", "--yes", *ASV_CONFIG)
    session.run(
        "asv",
        "continuous",
        "--factor",
        "1.1",
        "--show-stderr",
        *ASV_CONFIG,
        *options,
        base,
        "HEAD",
    )


@nox.session
def mutation(session: nox.Session) -> None:
    """Mutation testing (mutmut) of the core and the torch adapter, one module at a time.

    ``nox -s mutation -- givens finite_difference`` runs chosen modules;
    without arguments every module of tools/run_mutation.py (core and torch).
    """
    session.install(*CONSTRAINTS, "-e", ".[test]", "mutmut>=3.3")
    session.install("--no-deps", "torchattacks==3.5.1")
    args = session.posargs or ["--all"]
    session.run("python", "tools/run_mutation.py", *args, env={"OMP_NUM_THREADS": "1"})


@nox.session
def fuzz(session: nox.Session) -> None:
    """Fuzz every problem family through every solver (hypothesis profile ``fuzz``).

    The closing line reads ``fuzz: N problems (...), S silent failures``;
    ``FUZZ_EXAMPLES`` sets the examples per property (2,500 by default).
    """
    session.install(*CONSTRAINTS, "-e", ".[test]")
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "tests/test_fuzz.py",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": "fuzz", "OMP_NUM_THREADS": "1"},
    )
