"""Kaniko image pushes: read the Dockerfile, size the push, pick a timeout, run and explain.

Submodules are imported on use (start-up speed); nothing is re-exported here.
"""
