"""``python -m bench``: every benchmark (see :mod:`bench.suite`)."""

from bench.suite import main

main()
