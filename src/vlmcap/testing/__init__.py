"""Tools for testing vlmcap and the jobs built on it.

corpus   broken and hostile inputs, each with the outcome a job must give
"""
