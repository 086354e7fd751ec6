"""Bundled data (package data): the demo study, model bundles."""
