"""One node of the software-over-BitTorrent test, run inside a network namespace the test
made (``ip netns exec NS python -m tests.support.software_node …``).

``mirror ROOT HOST``: the feed's mirror, a web seed serving ROOT on HOST (prints its URL).
``device FEED DATA CONF ENV LISTEN [PEER]``: a device fetching the update the feed offers
(web seed, and PEER ``host:port`` if given), having RAUC verify it, then seeding it to its
neighbours; prints one JSON line with what happened, then ``listening PORT``.
``peer TORRENT DATA CONF ENV LISTEN PEER``: the same from a torrent a neighbour handed over.
Both run until stdin closes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from appliance.sync.software import SoftwareFetch, fetch_update, spool_dir
from content_cache.transfer import make_session
from provisioning.update import Device

from .webseed import web_seed


def main(argv: list[str]) -> None:
    if argv[0] == "mirror":
        with web_seed(Path(argv[1]), host=argv[2]) as (url, _):
            print(f"serving {url}", flush=True)
            sys.stdin.read()
        return
    source, data, conf, env, listen = argv[1:6]
    peers = []
    if len(argv) > 6:
        host, port = argv[6].rsplit(":", 1)
        peers.append((host, int(port)))
    session = make_session(f"{listen}:0")
    device = Device(rauc_conf=Path(conf), image_env=Path(env), data_dir=Path(data))
    if argv[0] == "device":
        got = fetch_update(session, source, device, peers=peers, timeout=300)
        assert got is not None, "the feed offered nothing newer"
        bundle, fetch = got
    else:      # "peer": the torrent as a LAN neighbour hands it over, fetched from peers
        fetch = SoftwareFetch(session, Path(source).read_bytes(), spool_dir(Path(data)),
                              peers=peers)
        fetch.run(timeout=300)
        bundle = fetch.verified(device)
    st = fetch.handle.status() if fetch.handle else None
    print(json.dumps({"version": bundle.version, "path": str(bundle.path),
                      "size": bundle.path.stat().st_size,
                      "downloaded": st.total_payload_download if st else 0}), flush=True)
    print(f"listening {session.listen_port()}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1:])
