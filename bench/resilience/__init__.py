"""The resilience benchmark (``python -m bench.resilience``); see :mod:`bench.resilience.run`."""
