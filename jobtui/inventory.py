"""Hosts by name: the inventory file (hosts.toml) and a short name for a URI without one.

A URI is for libvirt, a name is for people. The file::

    [hosts.kvm1]
    uri = "qemu+ssh://root@kvm1.lab/system"
    group = "rack1"          # optional

Plain data: no libvirt, no Textual, so the CLI can refuse a bad file before it loads
either, and every front end names hosts the same way.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jobtui.model import EngineEvent, Host, HostChanged
from jobtui.source import JobSource, Subscriber

# A name never contains ':' or '/', so no name can be mistaken for a URI and the reverse.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_HOST_KEYS = frozenset({"uri", "group"})


class InventoryError(ValueError):
    """A problem with the inventory or a host name: one line naming the file (and line)."""


@dataclass(frozen=True)
class HostEntry:
    name: str
    uri: str
    group: str | None = None


@dataclass(frozen=True)
class Inventory:
    path: Path | None
    hosts: tuple[HostEntry, ...] = ()

    def by_name(self, name: str) -> HostEntry | None:
        return next((h for h in self.hosts if h.name == name), None)

    def groups(self) -> list[str]:
        return sorted({h.group for h in self.hosts if h.group is not None})

    def names(self) -> dict[str, str]:
        """URI → name, for every host of the file."""
        return {h.uri: h.name for h in self.hosts}


def inventory_path(env: Mapping[str, str] = os.environ) -> Path:
    """`$JOBTUI_HOSTS`, else `$XDG_CONFIG_HOME/jobtui/hosts.toml` (~/.config by default)."""
    explicit = env.get("JOBTUI_HOSTS", "")
    if explicit:
        return Path(explicit)
    config = env.get("XDG_CONFIG_HOME", "") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config) / "jobtui" / "hosts.toml"


def load_inventory(path: Path | None = None, env: Mapping[str, str] = os.environ) -> Inventory:
    """The inventory at `path` (default: inventory_path()); raises InventoryError.

    A missing default file is an empty inventory; a missing file the user named
    (`JOBTUI_HOSTS`, or `path`) is an error: they asked for it.
    """
    named = path is not None or bool(env.get("JOBTUI_HOSTS"))
    path = path if path is not None else inventory_path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if named:
            raise InventoryError(f"{path}: no such file") from None
        return Inventory(None)
    except (OSError, UnicodeDecodeError) as err:
        raise InventoryError(f"{path}: cannot read: {err}") from None
    return parse_inventory(text, path)


def parse_inventory(text: str, path: Path) -> Inventory:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # tomllib says where in its message, "Invalid value (at line 3, column 7)";
        # put the line where compilers put it: FILE:LINE: what.
        m = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(err))
        if m is None:
            raise InventoryError(f"{path}: {err}") from None
        raise InventoryError(f"{path}:{m[2]}: {m[1]} (column {m[3]})") from None
    for key in data:
        if key != "hosts":
            raise InventoryError(
                f"{path}{_at(text, key)}: unknown key '{key}' (expected [hosts.NAME])"
            )
    tables = data.get("hosts", {})
    if not isinstance(tables, dict):
        raise InventoryError(f"{path}{_at(text, 'hosts')}: 'hosts' must be tables [hosts.NAME]")
    hosts: list[HostEntry] = []
    seen: dict[str, str] = {}
    for name, table in tables.items():
        where = f"{path}{_at(text, name)}"
        if not _NAME.match(name):
            what = "is a URI" if ":" in name else "is not a valid name"
            raise InventoryError(
                f"{where}: host name '{name}' {what}: use letters, digits, '.', '_', '-' "
                'and put the URI in uri = "..."'
            )
        if not isinstance(table, dict):
            raise InventoryError(f'{where}: hosts.{name} must be a table with uri = "..."')
        unknown = sorted(set(table) - _HOST_KEYS)
        if unknown:
            raise InventoryError(
                f"{path}{_at(text, name, unknown[0])}: unknown key '{unknown[0]}' "
                f"in [hosts.{name}] (known: group, uri)"
            )
        uri = table.get("uri")
        if not isinstance(uri, str) or not uri.strip():
            raise InventoryError(f'{where}: [hosts.{name}] needs uri = "..."')
        if ":" not in uri:
            raise InventoryError(f"{where}: [hosts.{name}] uri '{uri}' is not a libvirt URI")
        group = table.get("group")
        if group is not None and (not isinstance(group, str) or not _NAME.match(group)):
            raise InventoryError(f'{where}: [hosts.{name}] group must be a name like "rack1"')
        if uri in seen:
            raise InventoryError(f"{where}: {uri} is listed twice ({seen[uri]} and {name})")
        seen[uri] = name
        hosts.append(HostEntry(name, uri, group))
    return Inventory(path, tuple(hosts))


def _at(text: str, key: str, inner: str | None = None) -> str:
    """`:LINE` of the table header or key that names `key` (then of its key `inner`),
    when one can be found: tomllib gives lines for syntax errors only."""
    quoted = re.escape(key)
    pattern = re.compile(
        rf"^\s*(\[\s*hosts\s*\.\s*(?:{quoted}|\"{quoted}\"|'{quoted}')\s*\]"
        rf"|\[\s*{quoted}\b|{quoted}\s*=|hosts\s*\.\s*(?:{quoted}|\"{quoted}\")\s*\.)"
    )
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if pattern.match(line):
            if inner is not None:
                key_line = re.compile(rf"^\s*[\"']?{re.escape(inner)}[\"']?\s*=")
                for offset, after in enumerate(lines[number:], number + 1):
                    if after.lstrip().startswith("["):
                        break
                    if key_line.match(after):
                        return f":{offset}"
            return f":{number}"
    return ""


def resolve_hosts(
    inventory: Inventory,
    connect: Sequence[str] | None,
    group: str | None,
    default: Sequence[str],
) -> list[str]:
    """The URIs to open: `-c NAME|URI`..., then every host of `--group`; with neither,
    the inventory's hosts, else `default` (LIBVIRT_DEFAULT_URI's rule). Raises
    InventoryError for an unknown name or group, and for `-c ''`."""
    where = str(inventory.path) if inventory.path is not None else str(inventory_path())
    uris: list[str] = []
    for arg in connect or ():
        if not arg.strip():
            # libvirt would take '' as "the default URI" and we would report a host named
            # ''; a blank word on a command line is far more likely a mistake.
            raise InventoryError("-c '' names no host: give a host name or a URI")
        entry = inventory.by_name(arg)
        if entry is not None:
            uris.append(entry.uri)
        elif ":" in arg:
            uris.append(arg)
        else:
            known = ", ".join(h.name for h in inventory.hosts) or "none"
            raise InventoryError(
                f"unknown host '{arg}': not a name in {where} (names: {known}) and not a URI"
            )
    if group is not None:
        members = [h.uri for h in inventory.hosts if h.group == group]
        if not members:
            known = ", ".join(inventory.groups()) or "none"
            raise InventoryError(f"unknown group '{group}' in {where} (groups: {known})")
        uris += members
    if connect is None and group is None:
        uris = [h.uri for h in inventory.hosts] or list(default)
    return list(dict.fromkeys(uris))


def host_names(inventory: Inventory, uris: Sequence[str]) -> dict[str, str]:
    """URI → what people call it: its inventory name, else short_name(uri)."""
    named = inventory.names()
    return {uri: named.get(uri) or short_name(uri) for uri in uris}


# Directories that say nothing about which daemon a socket belongs to.
_GENERIC_DIRS = frozenset({"sock", "run", "libvirt", "var", "tmp", "socket"})
# What a transport is called in a short name; plain qemu://HOST/ is TLS in libvirt.
_TRANSPORTS = {
    "": "tls",
    "tls": "tls",
    "ssh": "ssh",
    "libssh": "ssh",
    "libssh2": "ssh",
    "tcp": "tcp",
    "ext": "ext",
    "unix": "",
}


def short_name(uri: str) -> str:
    """A host without an inventory name, as short as a tree needs and still unambiguous.

    - remote: `TRANSPORT:HOST[:PORT]` — `qemu+ssh://root@kvm1/system` → `ssh:kvm1`,
      `qemu+tls://127.0.0.1:16514/system` → `tls:127.0.0.1:16514`; the user is dropped,
      a path other than /system is kept (`ssh:kvm1/session`);
    - a private daemon's socket (`qemu+unix:///system?socket=/…/hosta/sock/libvirt-sock`)
      → `system@hosta` (the nearest directory that is not a generic one);
    - an embedded root (`qemu:///embed?root=/tmp/lab1`) → `embed:lab1` (its last directory);
    - local QEMU → `system`, `session`; another driver keeps its name (`test:default`).
    Anything else is the URI itself.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    driver, _, transport = parts.scheme.partition("+")
    path = parts.path.strip("/")
    query = parse_qs(parts.query)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if netloc:
        kind = _TRANSPORTS.get(transport, transport)
        suffix = "" if path in ("system", "") else f"/{path}"
        prefix = "" if driver == "qemu" else f"{driver}+"
        return f"{prefix}{kind}:{netloc}{suffix}"
    if "root" in query:
        return f"{path or driver}:{PurePosixPath(query['root'][0]).name}"
    if "socket" in query:
        dirs = [d for d in PurePosixPath(query["socket"][0]).parent.parts if d != "/"]
        named = [d for d in dirs if d not in _GENERIC_DIRS]
        return f"{path or driver}@{named[-1]}" if named else uri
    if not driver:
        return uri
    if driver == "qemu":
        return path or uri
    return f"{driver}:{path}" if path else driver


class NamedHosts:
    """A JobSource whose hosts carry their names for people (`Host.hostname`).

    Front ends show `hostname` when a host has one, so wrapping the engine gives every
    view (host bar, tree, status line, event log) the inventory's names without the
    engine knowing about them. Everything else is the wrapped source's.
    """

    def __init__(self, source: JobSource, names: Mapping[str, str]) -> None:
        self._source = source
        self._names = dict(names)

    def __getattr__(self, attr: str) -> Any:
        # options, start, stop, jobs, control, focus... pass through.
        return getattr(self._source, attr)

    def _named(self, host: Host) -> Host:
        name = self._names.get(host.uri)
        return replace(host, hostname=name) if name else host

    def hosts(self) -> list[Host]:
        return [self._named(h) for h in self._source.hosts()]

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        def named(event: EngineEvent) -> None:
            if isinstance(event, HostChanged):
                event = replace(event, host=self._named(event.host))
            callback(event)

        return self._source.subscribe(named)
