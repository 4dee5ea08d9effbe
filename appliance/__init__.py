"""The running device: HTTP app and server, command line, and (later) USB, sync, usage."""
