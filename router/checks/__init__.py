"""Cheap checks of a generated answer: does its code parse, do the task's own examples pass.

Pure helpers the routing graph calls; this package imports no other router module.
"""
