"""The labelled workload of the criteria benchmark: ``generate.py`` writes ``workload.json``."""
