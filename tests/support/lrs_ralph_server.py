"""Run Ralph's LRS API like ``ralph runserver -b fs``, in one process, appending.

Run with the Ralph virtualenv's python: ``python lrs_ralph_server.py FD STORE``, where FD
is a listening TCP socket the caller bound and passed on (so the port is never free
between being chosen and being served).
``ralph runserver`` is uvicorn over ``ralph.api:app`` with the backend named in the
environment, plus a file-watching reloader. Two differences here: no reloader (tests
need one process to stop), and Ralph 5's file-system LRS backend writes each POST with
the CREATE operation, which refuses every POST after the first ("already exists and
overwrite is not allowed"); it is switched to APPEND, which the backend supports.
"""

from __future__ import annotations

import os
import socket
import sys


def main() -> None:
    fd, store = int(sys.argv[1]), sys.argv[2]
    os.environ["RALPH_RUNSERVER_BACKEND"] = "fs"
    os.environ["RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH"] = store
    import uvicorn
    from ralph.backends.data.base import BaseOperationType
    from ralph.backends.lrs.fs import FSLRSBackend

    FSLRSBackend.default_operation_type = BaseOperationType.APPEND
    listener = socket.socket(fileno=fd)  # family and type are read from the socket
    server = uvicorn.Server(uvicorn.Config("ralph.api:app", log_level="warning"))
    server.run(sockets=[listener])


if __name__ == "__main__":
    main()
