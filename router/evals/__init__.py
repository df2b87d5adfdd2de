"""Evaluation harnesses (benchmarks that score the router), kept out of serving code.

``humaneval`` loads the problems and scores answers; ``run`` runs each problem three ways
(local only, cloud only, routed) into a JSON lines file; ``report`` and ``curve`` read that file.
"""
