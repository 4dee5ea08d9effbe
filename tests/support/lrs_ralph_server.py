"""Run Ralph's LRS API like ``ralph runserver -b fs``, in one process, appending.

Run with the Ralph virtualenv's python: ``python lrs_ralph_server.py HOST PORT STORE``.
``ralph runserver`` is uvicorn over ``ralph.api:app`` with the backend named in the
environment, plus a file-watching reloader. Two differences here: no reloader (tests
need one process to stop), and Ralph 5's file-system LRS backend writes each POST with
the CREATE operation, which refuses every POST after the first ("already exists and
overwrite is not allowed"); it is switched to APPEND, which the backend supports.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    host, port, store = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.environ["RALPH_RUNSERVER_BACKEND"] = "fs"
    os.environ["RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH"] = store
    import uvicorn
    from ralph.backends.data.base import BaseOperationType
    from ralph.backends.lrs.fs import FSLRSBackend

    FSLRSBackend.default_operation_type = BaseOperationType.APPEND
    uvicorn.run("ralph.api:app", host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
