"""Ketang's content core: blobs, signed releases, catalogs, import.

A library with no web in it, shared by the national publisher and the school
appliance. It must never import Flask or anything from ``appliance``.
"""
