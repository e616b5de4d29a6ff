"""The tree on the left: hosts → domains → jobs, and what it selects.

The tree is reconciled against a description of what it should show, node by
node, so expansion state and the cursor survive updates. Labels carry a symbol
as well as a colour, so they read the same under NO_COLOR.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widgets import Tree
from textual.widgets.tree import TreeNode, UnknownNodeID

from jobtui.model import Domain, Host, HostState, Job, JobKey, JobState
from jobtui.tui.format import short_host
from jobtui.tui.store import ALL, Scope, sort_key
from jobtui.tui.styles import COLOR, Palette
from jobtui.tui.widgets.boxed import ContentBoxed
from jobtui.tui.widgets.drawn import Drawn, restamp
from jobtui.units import printable


@dataclass(frozen=True)
class HostRef:
    uri: str


@dataclass(frozen=True)
class HostErrorRef:
    uri: str


@dataclass(frozen=True)
class DomainRef:
    host: str
    uuid: str


@dataclass(frozen=True)
class JobRef:
    key: JobKey


NodeRef = HostRef | HostErrorRef | DomainRef | JobRef | None


@dataclass
class NodeSpec:
    ref: NodeRef
    label: Text
    children: list[NodeSpec] = field(default_factory=list)


STATE_SYMBOL: dict[JobState, str] = {
    JobState.RUNNING: "▶",
    JobState.READY: "◆",
    JobState.PAUSED: "‖",
    JobState.COMPLETED: "✔",
    JobState.FAILED: "✖",
    JobState.ABORTED: "■",
    JobState.UNKNOWN: "?",
    JobState.ORPHANED: "!",
}
_HOST_SYMBOL = {
    HostState.CONNECTED: "●",
    HostState.CONNECTING: "◌",
    HostState.DISCONNECTED: "✖",
}


def host_label(host: Host, pal: Palette = COLOR) -> Text:
    style = {
        HostState.CONNECTED: pal.ok,
        HostState.CONNECTING: pal.warn,
        HostState.DISCONNECTED: pal.alert,
    }[host.state]
    text = Text.assemble(
        (_HOST_SYMBOL[host.state], style), " ", (short_host(host.uri, host.hostname), "bold")
    )
    if host.state is not HostState.CONNECTED:
        text.append(" ")
        text.append(str(host.state), style=style)
    elif host.error:
        # Connected, yet something keeps jobs from showing (a driver with no job API):
        # its gist here, the whole of libvirt's words in the host's detail.
        text.append(f" ⚠ {host.error.split(':', 1)[0]}", style=pal.warn)
    if host.readonly:
        text.append(" (read-only)", style=pal.muted)
    return text


def domain_label(name: str, domain: Domain | None, pal: Palette = COLOR) -> Text:
    text = Text(printable(name))
    if domain is None:
        # Undefined, or migrated away: only its finished jobs keep it in the tree.
        text.append(" gone", style=pal.muted)
        return text
    if not domain.responsive:
        # Its last known state is stale anyway; the warning is what matters here.
        text.append(" ⚠ unresponsive", style=pal.warn)
    else:
        text.append(f" {domain.state}", style=pal.muted)
    return text


def job_label(job: Job, pal: Palette = COLOR) -> Text:
    style = pal.state[job.state]
    return Text.assemble(
        (STATE_SYMBOL[job.state], style), " ", printable(job.name), (f" {job.state}", style)
    )


def describe(
    hosts: list[Host],
    domains: list[Domain],
    jobs: list[Job],
    *,
    keep_domain: set[tuple[str, str]] | None = None,
    pal: Palette = COLOR,
) -> list[NodeSpec]:
    """The tree for these hosts, domains and (already filtered, sorted) jobs.

    Every domain shows unless `keep_domain` says which to keep (the filter);
    a job whose domain we have not heard of still gets a node under its host.
    """
    by_domain: dict[tuple[str, str], list[Job]] = {}
    names: dict[tuple[str, str], str] = {}
    for job in jobs:
        dk = (job.host, job.key.domain_uuid)
        by_domain.setdefault(dk, []).append(job)
        names[dk] = job.domain
    known = {(d.host, d.uuid): d for d in domains}
    for dk, d in known.items():
        names[dk] = d.name
    specs = []
    for host in sorted(hosts, key=lambda h: h.uri):
        children: list[NodeSpec] = []
        if host.state is HostState.DISCONNECTED and host.error:
            error = Text(host.error, style=pal.alert)
            children.append(NodeSpec(HostErrorRef(host.uri), error))
        host_domains = sorted((dk for dk in names if dk[0] == host.uri), key=lambda dk: names[dk])
        for dk in host_domains:
            if keep_domain is not None and dk not in keep_domain and dk not in by_domain:
                continue
            children.append(
                NodeSpec(
                    DomainRef(*dk),
                    domain_label(names[dk], known.get(dk), pal),
                    [NodeSpec(JobRef(j.key), job_label(j, pal)) for j in by_domain.get(dk, [])],
                )
            )
        specs.append(NodeSpec(HostRef(host.uri), host_label(host, pal), children))
    return specs


class DomainTree(Tree[NodeRef], ContentBoxed):
    _syncing = False  # inside sync(): it repaints the lines that changed itself

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__("all jobs", data=None, id=id)
        self.guide_depth = 2
        self.root.expand()
        self._job_nodes: dict[JobKey, TreeNode[NodeRef]] = {}
        self._drawn = Drawn(5_000)  # see _render_line

    @property
    def scope(self) -> Scope:
        node = self.cursor_node
        ref = node.data if node is not None else None
        if isinstance(ref, HostRef | HostErrorRef):
            return Scope(host=ref.uri)
        if isinstance(ref, DomainRef):
            return Scope(host=ref.host, domain_uuid=ref.uuid)
        if isinstance(ref, JobRef):
            return Scope(host=ref.key.host, domain_uuid=ref.key.domain_uuid)
        return ALL

    def _invalidate(self) -> None:
        # Tree's own, less its layout of the whole screen for every node added or
        # removed: the tree's box is fixed; ContentBoxed lays out if a scrollbar comes.
        self._clear_line_cache()
        self._updates += 1
        # Tree's root._reset(), less its version bump: the root is on every line's path,
        # and a new version would draw every line again (see _render_line).
        self.root._hover_ = self.root._selected_ = False
        if not self._syncing:  # sync() repaints the lines that changed, not all
            self.refresh()

    def _line_keys(self) -> list[tuple[object, ...]]:
        """What each line shows, as far as a sync can change it (see _render_line)."""
        return [
            (
                line.last,
                line.node._id,
                line.node._updates,
                tuple((n._id, n.is_last) for n in line.path),
            )
            for line in self._tree_lines
        ]

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """Tree's line, drawn again only when the line or its look changed (see
        jobtui.tui.widgets.drawn): a line keys on its node's version (label,
        expansion, marks), what the guides of the nodes above it show, and everything
        else Tree's drawing reads; a line that only moved gets its new line number in
        its mouse metadata. The versions of the nodes above are left out: they move
        with every child added and every cursor move, and would draw every line. So is
        the tree's virtual width (a longer label, "completed"): Tree pads a line to it
        and then crops it to x1..x2, which never reach past the padding."""
        lines = self._tree_lines
        if y >= len(lines):
            return super()._render_line(y, x1, x2, base_style)
        line = lines[y]
        slot = (
            line.node._id,
            self.hover_line == y,
            self.cursor_line == y,
            self.has_focus,
            self._pseudo_class_state,
        )
        look = (
            x1,
            x2,
            base_style,
            self.size.width,
            self.hover_line >= 0,
            line.last,
            line.node._updates,
            tuple((n._id, n.is_last, n._hover_, n._selected_) for n in line.path),
        )
        return self._drawn.get(  # type: ignore[no-any-return]
            slot,
            look,
            {"line": y},
            lambda: super(DomainTree, self)._render_line(y, x1, x2, base_style),
            lambda strip, meta: Strip(restamp(strip, meta), strip.cell_length),
        )

    def notify_style_update(self) -> None:
        self._drawn.clear()
        super().notify_style_update()

    def sync(self, specs: list[NodeSpec]) -> None:
        cursor = self.cursor_node
        before = self._line_keys()
        self._syncing = True
        try:
            _sync_children(self.root, specs)
        finally:
            self._syncing = False
        after = self._line_keys()
        # A job that came shifts the lines below it; one that finished changes its own
        # line: those are drawn again, and the lines left empty at the end.
        for y in range(max(len(before), len(after))):
            if y >= len(before) or y >= len(after) or before[y] != after[y]:
                self._refresh_line(y)
        self._job_nodes = {n.data.key: n for n in _walk(self.root) if isinstance(n.data, JobRef)}
        if cursor is not None and not self._alive(cursor):
            # Its node went away (filtered, dismissed): fall back to "all jobs" rather
            # than to whatever line now sits under the cursor.
            _ = self.last_line  # rebuilds lines, so node positions are current
            self.move_cursor(self.root)

    def relabel(self, jobs: list[Job], pal: Palette = COLOR) -> None:
        """New labels for jobs whose state changed, when no node needs to move."""
        for job in jobs:
            node = self._job_nodes.get(job.key)
            if node is not None:
                label = job_label(job, pal)
                if node.label != label:
                    node.set_label(label)

    def keeps_places(self, moved: Iterable[JobKey], jobs: dict[JobKey, Job]) -> bool:
        """Whether these jobs (finished, or active again) stay where they are among
        their domain's jobs: then a new label is all the tree needs (an aborted copy
        newer than its domain's finished runs of that name stays first)."""
        for key in moved:
            node = self._job_nodes.get(key)
            if node is None or node.parent is None:
                return False
            keys = [c.data.key for c in node.parent.children if isinstance(c.data, JobRef)]
            if len(keys) != len(node.parent.children) or any(k not in jobs for k in keys):
                return False
            if sorted(keys, key=lambda k: sort_key(jobs[k])) != keys:
                return False
        return True

    def _alive(self, node: TreeNode[NodeRef]) -> bool:
        try:
            self.get_node_by_id(node.id)
        except UnknownNodeID:
            return False
        return True

    def select_ref(self, ref: NodeRef) -> None:
        for node in _walk(self.root):
            if node.data == ref:
                _ = self.last_line
                self.move_cursor(node)
                return


def _sync_children(parent: TreeNode[NodeRef], desired: list[NodeSpec]) -> None:
    wanted = [s.ref for s in desired]
    wanted_set = set(wanted)
    for child in list(parent.children):
        if child.data not in wanted_set:
            child.remove()
    nodes = {c.data: c for c in parent.children}
    order = [nodes[r] for r in wanted if r in nodes]
    if order != list(parent.children):
        # Survivors out of order (a job finished and moves down) keep their nodes, so
        # their drawn lines are kept too (see DomainTree._render_line); Tree has no
        # move, and re-adding them would give every job below a new node to draw.
        parent._children[:] = order
        parent.tree._invalidate()
    prev: TreeNode[NodeRef] | None = None
    for spec in desired:
        node = nodes.get(spec.ref)
        if node is None:
            placement = {"after": prev} if prev is not None else {"before": 0}
            if not parent.children:
                placement = {}
            node = parent.add(
                spec.label,
                spec.ref,
                expand=True,
                allow_expand=bool(spec.children),
                **placement,
            )
        else:
            if node.label != spec.label:
                node.set_label(spec.label)
            if node.allow_expand != bool(spec.children):
                node.allow_expand = bool(spec.children)
        _sync_children(node, spec.children)
        prev = node


def _walk(node: TreeNode[NodeRef]) -> list[TreeNode[NodeRef]]:
    out = [node]
    for child in node.children:
        out.extend(_walk(child))
    return out
