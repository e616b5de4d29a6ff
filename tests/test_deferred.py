"""The deferred source: the TUI draws before the engine is built, and nothing is lost."""

from __future__ import annotations

import pytest
from labtools import wait_until

from jobtui import recorded
from jobtui.deferred import STARTING, DeferredSource
from jobtui.engine.early_open import EarlyOpen
from jobtui.engine.monitor import JobMonitor
from jobtui.lab import DiskSpec, Lab
from jobtui.model import (
    ControlOp,
    DomainChanged,
    EngineEvent,
    Host,
    HostChanged,
    HostState,
    JobControlError,
    JobState,
)
from jobtui.support import Options

URIS = ["qemu:///system", "qemu+ssh://root@127.0.0.1:2222/system"]


def test_before_start_it_lists_its_hosts_as_connecting_and_builds_nothing() -> None:
    built: list[bool] = []
    build = lambda: built.append(True) or recorded.busy()  # noqa: E731
    src = DeferredSource(build, URIS, Options(readonly=True))
    assert [(h.uri, h.state, h.readonly) for h in src.hosts()] == [
        (u, HostState.CONNECTING, True) for u in URIS
    ]
    assert (src.domains(), src.jobs(), built) == ([], [], [])
    some = recorded.busy().jobs()[0].key
    assert src.job(some) is None
    with pytest.raises(JobControlError, match=STARTING):
        src.control(some, ControlOp.ABORT)
    with pytest.raises(JobControlError, match=STARTING):
        src.job_xml(some)


def test_start_hands_subscribers_and_focus_to_the_real_source() -> None:
    real = recorded.busy()
    src = DeferredSource(lambda: real, URIS, Options())
    heard: list[EngineEvent] = []
    src.subscribe(heard.append)
    gone: list[EngineEvent] = []
    src.subscribe(gone.append)()  # unsubscribed before the build: never attached
    key = real.jobs()[0].key
    src.focus(key)
    src.start()
    assert real.started and real.focused == key
    assert [j.key for j in src.jobs()] == [j.key for j in real.jobs()]
    assert src.hosts() == real.hosts()
    running = next(j for j in real.jobs() if j.state is JobState.RUNNING)
    event = real.progress(running.key, current=1)
    assert (heard, gone) == ([event], [])
    assert src.control(running.key, ControlOp.ABORT)
    assert real.calls[-1].op is ControlOp.ABORT
    src.stop()
    assert not real.started


def test_a_build_that_fails_says_why_on_every_host() -> None:
    def broken() -> recorded.RecordedSource:
        raise OSError("libvirt-python is not installed")

    src = DeferredSource(broken, URIS, Options())
    heard: list[EngineEvent] = []
    src.subscribe(heard.append)
    src.start()  # never raises: the UI shows it
    hosts = src.hosts()
    assert {h.state for h in hosts} == {HostState.DISCONNECTED}
    assert all("cannot start the job engine: libvirt-python" in h.error for h in hosts)
    assert heard == [HostChanged(h) for h in hosts]
    with pytest.raises(JobControlError, match="not installed"):
        src.control(recorded.busy().jobs()[0].key, ControlOp.ABORT)


def test_stopped_before_it_started_it_never_builds() -> None:
    built: list[bool] = []
    src = DeferredSource(lambda: built.append(True) or recorded.busy(), URIS, Options())
    src.stop()
    src.start()
    assert built == []


def test_the_early_listing_is_shown_before_the_engine_and_stays_through_its_start(
    lab: Lab, domname: str
) -> None:
    lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 16, 0))])
    early = EarlyOpen([lab.uri], readonly=False)
    src = DeferredSource(lambda: JobMonitor([lab.uri], early=early), [lab.uri], Options(), early)
    heard: list[EngineEvent] = []
    src.subscribe(heard.append)
    assert [h.state for h in src.hosts()] == [HostState.CONNECTING]
    early.start()
    wait_until(
        lambda: any(isinstance(e, DomainChanged) and e.domain.name == domname for e in heard),
        20,
        "the early listing told",
    )
    assert heard[0] == HostChanged(Host(lab.uri, HostState.CONNECTED))
    assert [h.state for h in src.hosts()] == [HostState.CONNECTED]
    assert {d.name: d.state for d in src.domains()}[domname] == "unknown"
    src.start()
    try:
        # The engine knows the domain and the host from its start: neither goes back.
        assert domname in {d.name for d in src.domains()}
        assert [h.state for h in src.hosts()] == [HostState.CONNECTED]
        wait_until(
            lambda: {d.name: d.state for d in src.domains()}[domname] == "running",
            20,
            "its first look",
        )
    finally:
        src.stop()
