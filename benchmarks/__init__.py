"""asv benchmarks for krylovadv's numerical core (run with ``nox -s bench``)."""
