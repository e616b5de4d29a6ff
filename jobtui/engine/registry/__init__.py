"""The job registry: the state machine that turns libvirt's samples and events
into the job model, one module per concern (see docs/decisions.md, "The
registry by concern"). Each concern is a class built on the ones before it:

    book -> migration -> domain_jobs -> limbo -> block_jobs -> lifecycle -> facade

`Registry` (facade.py) is what the monitor uses.
"""

from jobtui.engine.registry.book import DomainId, DomainInfo, MigrationId, Track, TrackId
from jobtui.engine.registry.domain_jobs import domain_progress
from jobtui.engine.registry.facade import Registry
from jobtui.engine.registry.migration import Convergence

__all__ = [
    "Convergence",
    "DomainId",
    "DomainInfo",
    "MigrationId",
    "Registry",
    "Track",
    "TrackId",
    "domain_progress",
]
