"""A township shares one satellite: which device is the hub, and when a web seed may run.

Pure decisions, no I/O, so they are unit-tested with plain values
(``tests/appliance/test_sync_township.py``); :mod:`appliance.sync.service` feeds them
what zeroconf and the neighbours' feeds say, and what libtorrent sees.

- **The hub** (:func:`elect_hub`) is the one device of a LAN that polls the national
  feeds over its uplink. ``sync.hub`` names it (a device id), or ``"auto"`` lets the
  devices elect it: the lowest device id among the hub candidates that answered within
  ``sync.hub_timeout`` seconds. ``"never"`` keeps a device out of the election. Every
  device computes the same answer from the same neighbours, so no vote is needed; when
  the hub stops answering, the next lowest takes over once ``sync.hub_timeout`` passed.
- **Where bytes came from** (:class:`ByteSources`): LAN peers or web seeds.
- **LAN first** (:func:`web_seed_wanted`): a transfer's web seeds (the mirror, over the
  uplink) are held back while LAN peers can supply a piece it lacks, and used for pieces
  no neighbour has (on the hub, or on a device with no hub), or on any device once its
  LAN transfer has stalled for ``sync.lan_stall_seconds``. Outside the uplink windows or
  over the daily quota they stay off; LAN transfers go on.
- **Shares of the mirror** (:func:`mirror_share`, :func:`own_pieces`): while no
  neighbour holds a release yet, the schools fetching it split the pieces that no LAN
  peer has between their uplinks (piece ``i`` is fetched by the ``i % count``-th of them
  by device id), so the mirror still sends each piece about once and the township's
  uplinks work side by side rather than every school waiting on the hub's alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

AUTO = "auto"
NEVER = "never"


def hub_candidate(hub_setting: str) -> bool:
    """Whether this device takes part in the election (``sync.hub`` is not "never")."""
    return hub_setting != NEVER


@dataclass(frozen=True)
class Hub:
    """Who the hub is, and why."""

    id: str          # '' when there is no hub (no candidate at all)
    how: str         # "configured", "elected" or "alone" (no neighbour answers)
    is_self: bool


def elect_hub(self_id: str, hub_setting: str, candidates: Iterable[str],
              neighbours: Iterable[str]) -> Hub:
    """The township's hub as this device sees it.

    ``candidates``: ids of live neighbours that are hub candidates; ``neighbours``: ids
    of every live neighbour. A configured hub (``sync.hub`` = a device id) wins while it
    is this device or a live neighbour; otherwise the lowest candidate id (this device
    included unless ``sync.hub`` is "never") is elected. Deterministic: each device
    reaches the same answer from the same set.
    """
    alive = set(neighbours)
    pool = set(candidates) & alive
    if hub_setting not in (AUTO, NEVER) and (hub_setting == self_id or hub_setting in alive):
        return Hub(hub_setting, "configured", hub_setting == self_id)
    if hub_candidate(hub_setting):
        pool.add(self_id)
    if not alive:
        return Hub(self_id if self_id in pool else "", "alone", self_id in pool)
    if not pool:
        return Hub("", "elected", False)
    winner = min(pool)
    return Hub(winner, "elected", winner == self_id)


def web_seed_wanted(*, uplink_open: bool, uses_uplink: bool, lan_can_supply: bool,
                    lan_idle: float, stall: float, lan_expected: bool = False) -> bool:
    """Whether a transfer's web seeds (the mirror, over the uplink) should run now.

    ``uplink_open``: a window is open and quota is left. ``uses_uplink``: this device is
    the hub, or no hub answers (a school alone behaves as before). ``lan_can_supply``: a
    connected LAN peer has a wanted piece this device lacks. ``lan_idle``: seconds since
    LAN peers last sent payload (or since the transfer started). ``stall``:
    ``sync.lan_stall_seconds``. ``lan_expected``: the transfer has just started and a
    neighbour holds or fetches the release, but its pieces are not known yet (the
    connection is being made): wait for them rather than ask the mirror first.
    """
    if not uplink_open:
        return False
    stalled = lan_idle >= stall
    if (lan_can_supply or lan_expected) and not stalled:
        return False
    return uses_uplink or stalled


def mirror_share(self_id: str, self_takes_part: bool, version: int,
                 neighbours: Iterable[tuple[str, int, int, bool]]) -> tuple[int, int] | None:
    """How the schools fetching ``version`` of a channel split what the mirror sends.

    ``neighbours``: for each live neighbour, (device id, version of the channel it holds
    or 0, version it is fetching or 0, whether it may use its uplink for the township: a
    hub candidate). ``self_takes_part``: the same for this device (a hub candidate with a
    web seed for the release).

    None when sharing does not apply: a neighbour already holds ``version`` (every piece
    is on the LAN) or no other school fetches it (a school alone, or the hub alone,
    behaves as :func:`web_seed_wanted` says). Otherwise ``(rank, count)``: the schools
    taking part are this device and the neighbours fetching ``version`` or holding an
    older version of the channel (they will fetch it once they hear of it), ordered by
    id; this device fetches from the mirror the pieces ``i`` with ``i % count == rank``
    (rank -1: none, it does not take part). Each device computes the same split from
    the same neighbours, so no vote is needed; when one stops answering it drops out
    after ``sync.hub_timeout`` and its pieces are split among the rest.
    """
    live = list(neighbours)
    if any(held >= version for _, held, _, _ in live):
        return None
    fellows = {nid for nid, held, fetching, candidate in live
               if candidate and (fetching == version or 0 < held < version)}
    if not fellows:
        return None
    if self_takes_part:
        fellows.add(self_id)
    order = sorted(fellows)
    return (order.index(self_id) if self_id in fellows else -1), len(order)


def own_pieces(missing: Iterable[int], share: tuple[int, int],
               on_lan: Iterable[int]) -> list[int]:
    """The pieces of ``missing`` this device fetches from the mirror for its ``share``
    (:func:`mirror_share`): its own, less those a LAN peer has (they come from it)."""
    rank, count = share
    lan = set(on_lan)
    return [i for i in missing if rank >= 0 and i % count == rank and i not in lan]


def lan_supply(our_pieces: list[bool], wanted: list[bool],
               peer_pieces: Iterable[list[bool]]) -> int:
    """How many pieces this device wants and lacks that some LAN peer has."""
    return len(lan_pieces(our_pieces, wanted, peer_pieces))


def lan_pieces(our_pieces: list[bool], wanted: list[bool],
               peer_pieces: Iterable[list[bool]]) -> set[int]:
    """The pieces this device wants and lacks that some LAN peer has."""
    missing = missing_pieces(our_pieces, wanted)
    found: set[int] = set()
    for pieces in peer_pieces:
        found |= {i for i in missing if i < len(pieces) and pieces[i]}
        if found == missing:
            break
    return found


def missing_pieces(our_pieces: list[bool], wanted: list[bool]) -> set[int]:
    """The pieces this device wants and lacks."""
    return {i for i, (have, want) in enumerate(zip(our_pieces, wanted, strict=False))
            if want and not have}


def in_networks(address: str, networks: Iterable[str]) -> bool:
    """True if ``address`` lies in one of ``networks`` (CIDR strings)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    for net in networks:
        try:
            if ip in ipaddress.ip_network(net, strict=False):
                return True
        except (ValueError, TypeError):
            continue
    return False


def network_range(net: str) -> tuple[str, str]:
    """(first, last) address of a CIDR network, for libtorrent's ip_filter."""
    n = ipaddress.ip_network(net, strict=False)
    return str(n.network_address), str(n.broadcast_address)


@dataclass
class ByteSources:
    """Payload a transfer received from LAN peers and from web seeds (the mirror).

    libtorrent counts payload per connection and per torrent, and reports no reliable
    per-block source (its block alerts miss blocks). So every second the connections'
    counters are sampled; what the torrent's total grew by beyond them came over
    connections that closed in between, and is given to the LAN when the web seeds were
    off the whole time, to the mirror when no LAN peer was seen, else shared in the
    proportion of the sampled bytes.
    """

    lan: int = 0
    mirror: int = 0
    _total: int = 0
    _live: dict[tuple[str, int, bool], int] = field(default_factory=dict)

    def update(self, connections: Iterable[tuple[str, int, bool, int]], total: int,
               web_seeds_on: bool) -> None:
        """``connections``: (ip, port, is_web_seed, payload from it) now; ``total``: the
        transfer's payload so far; ``web_seeds_on``: web seeds ran since the last look."""
        now = {(ip, port, web): n for ip, port, web, n in connections}
        d_lan = d_web = 0
        for key, n in now.items():
            got = n - self._live.get(key, 0) if n >= self._live.get(key, 0) else n
            if key[2]:
                d_web += got
            else:
                d_lan += got
        rest = max(0, total - self._total - d_lan - d_web)
        if rest:
            lan_seen = d_lan > 0 or any(not k[2] for k in (*now, *self._live))
            if not web_seeds_on:
                d_lan += rest
            elif not lan_seen:
                d_web += rest
            else:
                share = d_lan / (d_lan + d_web) if d_lan + d_web else 0.5
                d_lan += round(rest * share)
                d_web += rest - round(rest * share)
        self.lan += d_lan
        self.mirror += d_web
        self._total = max(self._total, total)
        self._live = now
