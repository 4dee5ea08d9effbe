"""``python -m appliance`` is ``ketang``."""

from .cli import main

main(prog_name="ketang")
