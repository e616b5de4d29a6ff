"""The job XML: the upstream proposal's `virDomainJobGetXMLDesc` document, built and parsed here.

The scheme (where Job fields go, the <param> escape for awkward keys, value types, base64 for
text XML cannot carry) is documented once, in schemas/job.rng; this module and that schema must
agree, and tests/test_jobxml.py checks that they do for arbitrary jobs.

`parse` trusts nothing: every problem becomes a one-line `JobXMLError` "line N: ...". The schema
is the contract, but libxml2's RelaxNG messages are vague ("failed to validate attributes"), so
when it rejects a document the reader below is asked first to name the problem precisely.
"""

from __future__ import annotations

import base64
import functools
import math
import operator
import re
import threading
from collections.abc import Iterable, Mapping
from importlib import resources
from types import MappingProxyType
from typing import Final, TypeVar

from lxml import etree

from jobtui import units
from jobtui.model import FrozenMap, Job, JobKey, JobState, JobType, StatValue

__all__ = ["UNITS", "JobXMLError", "format_value", "parse", "to_element", "to_xml"]
__all__ += ["unit_of", "validate"]

# The unit of a config or stats entry, by key: the XML's unit= attribute and the TUI's labels.
# Keys are libvirt's typed-parameter names (VIR_DOMAIN_JOB_* in libvirt-domain.h) plus the Job
# fields. Counts (memory_iteration, compression_cache_misses, ...) have no unit. Unknown keys get
# none either: a newer libvirt's field is shown as a bare number rather than with a guessed unit.
UNITS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # Job.current / Job.end / Job.bandwidth (block jobs and the job table)
        "current": "bytes",
        "end": "bytes",
        "bandwidth": "bytes/s",
        "rate": "bytes/s",
        # time
        "time_elapsed": "ms",
        "time_elapsed_net": "ms",
        "time_remaining": "ms",
        "downtime": "ms",
        "downtime_net": "ms",
        "setup_time": "ms",
        # all data (memory + disks)
        "data_total": "bytes",
        "data_processed": "bytes",
        "data_remaining": "bytes",
        # memory
        "memory_total": "bytes",
        "memory_processed": "bytes",
        "memory_remaining": "bytes",
        "memory_constant": "pages",
        "memory_normal": "pages",
        "memory_normal_bytes": "bytes",
        "memory_bps": "bytes/s",
        "memory_dirty_rate": "pages/s",
        "memory_page_size": "bytes",
        # disks (migration with storage, backup)
        "disk_total": "bytes",
        "disk_processed": "bytes",
        "disk_remaining": "bytes",
        "disk_bps": "bytes/s",
        "disk_temp_used": "bytes",
        "disk_temp_total": "bytes",
        # XBZRLE compression
        "compression_cache": "bytes",
        "compression_bytes": "bytes",
        "compression_pages": "pages",
        "auto_converge_throttle": "%",
        # jobtui's own, derived: dirty rate in bytes, what a migration pass began with
        "memory_dirty_bps": "bytes/s",
        "pass_remaining": "bytes",
    }
)

BEFORE_SEEN = "started-before-seen"  # on <time>: Job.started_before_seen


class JobXMLError(ValueError):
    """Malformed or invalid job XML. `str(err)` is one line: "line N: what is wrong"."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        # One line whatever libxml2 or the input said: messages quote untrusted text.
        self.problem = " ".join(problem.split())
        self.line = line
        super().__init__(f"line {line}: {self.problem}" if line else self.problem)


def unit_of(key: str) -> str | None:
    """The unit of a stat; per-disk entries folded into a job (`vda.current`)
    take the unit of their last part."""
    unit = UNITS.get(key)
    if unit is None and "." in key:
        unit = UNITS.get(key.rsplit(".", 1)[1])
    return unit


# --- writing ------------------------------------------------------------------------------

# Job fields that share a container with map entries; a map key with one of these names (or
# "param") is written as <param name=...> so it cannot be mistaken for the field.
_CONFIG_FIELDS: Final = ("bandwidth",)
_STATS_FIELDS: Final = ("current", "end", "rate")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*", re.ASCII)
# What str(int) produces; any other digits-looking text is a string (so "007" stays "007").
_CANONICAL_INT = re.compile(r"0|-?[1-9][0-9]*", re.ASCII)
_INT = re.compile(r"-?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"-?(inf|nan|[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)", re.ASCII)
# Canonical base64, as b64encode writes it: job.rng has the same pattern, spelt out longhand.
_BASE64 = re.compile(
    r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)?", re.ASCII
)
# Characters XML 1.0 cannot carry at all, not even as character references: the
# complement of its Char production, spelt as what is left out (the negated class
# took 5 ms to compile, at every launch).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def to_xml(job: Job) -> str:
    text: str = etree.tostring(to_element(job), encoding="unicode", pretty_print=True)
    return text


def to_element(job: Job) -> etree._Element:
    root = etree.Element("job")
    _set_str_attr(root, "name", job.key.name)
    root.set("type", JobType(job.type).value)
    root.set("state", JobState(job.state).value)
    domain = etree.SubElement(root, "domain")
    _set_str_attr(domain, "name", job.domain)
    _set_str_attr(domain, "uuid", job.key.domain_uuid)
    _set_str_attr(etree.SubElement(root, "host"), "uri", job.key.host)
    time = etree.SubElement(root, "time", started=repr(float(job.key.started)))
    if job.finished is not None:
        time.set("finished", repr(float(job.finished)))
    if job.sampled is not None:
        time.set("sampled", repr(float(job.sampled)))
    if job.started_before_seen:
        time.set(BEFORE_SEEN, "yes")
    if job.message:
        _set_text(etree.SubElement(root, "message"), job.message)
    if job.qemu_id:
        _set_text(etree.SubElement(root, "qemu-id"), job.qemu_id)
    if job.stalled:
        etree.SubElement(root, "stalled")
    if job.stale:
        etree.SubElement(root, "stale")
    config = etree.SubElement(root, "config")
    _add_field(config, "bandwidth", job.bandwidth)
    _add_entries(config, job.config, _CONFIG_FIELDS)
    stats = etree.SubElement(root, "stats")
    _add_field(stats, "current", job.current)
    _add_field(stats, "end", job.end)
    _add_field(stats, "rate", job.rate)
    _add_entries(stats, job.stats, _STATS_FIELDS)
    return root


def _add_field(parent: etree._Element, name: str, value: int | None) -> None:
    if value is None:
        return
    el = etree.SubElement(parent, name)
    if name in UNITS:
        el.set("unit", UNITS[name])
    el.text = str(operator.index(value))  # a float here is a bug to report, not to round


def _add_entries(
    parent: etree._Element, entries: Mapping[str, StatValue], fields: Iterable[str]
) -> None:
    reserved = {*fields, "param"}
    for key, value in entries.items():
        plain = (
            _PLAIN_KEY.fullmatch(key) is not None
            and key not in reserved
            and not key.lower().startswith("xml")  # names starting "xml" are reserved in XML
        )
        if plain:
            el = etree.SubElement(parent, key)
        else:
            el = etree.SubElement(parent, "param")
            _set_str_attr(el, "name", key)
        if key in UNITS:
            el.set("unit", UNITS[key])
        _set_value(el, key, value)


def _set_value(el: etree._Element, key: str, value: StatValue) -> None:
    # bool before int: bool is an int subclass, and True == 1 would hide the lost type.
    if isinstance(value, bool):
        el.set("type", "bool")
        el.text = "yes" if value else "no"
    elif isinstance(value, int):
        el.text = str(int(value))
    elif isinstance(value, float):
        el.set("type", "float")
        el.text = repr(float(value))
    elif isinstance(value, str):
        if _CANONICAL_INT.fullmatch(value):
            el.set("type", "str")
        _set_text(el, value)
    else:
        raise TypeError(f"{key!r}: {type(value).__name__} is not a job config or stats value")


def _set_text(el: etree._Element, text: str) -> None:
    if _NOT_XML.search(text):
        el.set("encoding", "base64")
        el.text = _b64encode(text)
    else:
        el.text = text


def _set_str_attr(el: etree._Element, name: str, value: str) -> None:
    if _NOT_XML.search(value):
        el.set(f"{name}-base64", _b64encode(value))
    else:
        el.set(name, value)


def _b64encode(text: str) -> str:
    # surrogatepass: a lone surrogate is a legal Python str and must round-trip too.
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")


# --- reading ------------------------------------------------------------------------------

_JOB_CHILDREN: Final = (
    "domain",
    "host",
    "time",
    "message",
    "qemu-id",
    "stalled",
    "stale",
    "config",
    "stats",
)
_REQUIRED_CHILDREN: Final = ("domain", "host", "time")
_VALUE_TYPES: Final = ("int", "float", "bool", "str")
_XML_SPACE: Final = " \t\n\r"
_SCHEMA_LOCK = threading.Lock()  # a RelaxNG object keeps its error log: one validation at a time


@functools.cache
def _schema() -> etree.RelaxNG:
    with resources.files("jobtui").joinpath("schemas/job.rng").open("rb") as f:
        return etree.RelaxNG(etree.parse(f))


def validate(text: str | bytes) -> None:
    """Raise `JobXMLError` unless `text` is a job XML document: valid for job.rng, and
    meaning one Job (the schema cannot say that map keys are unique; the reader can)."""
    _read_job(_valid_root(text))


def parse(text: str | bytes) -> Job:
    return _read_job(_valid_root(text))


def _valid_root(text: str | bytes) -> etree._Element:
    root = _parse_syntax(text)
    schema = _schema()
    with _SCHEMA_LOCK:
        ok = schema.validate(root.getroottree())
        errors = [(e.line, e.message) for e in schema.error_log]
    if not ok:
        _read_job(root)  # names the problem precisely where it can
        line = next((n for n, _ in errors if n > 0), root.sourceline or 1)
        problem = "; ".join(dict.fromkeys(m for _, m in errors)) or "does not match job.rng"
        raise JobXMLError(f"invalid job XML: {problem}", line)
    return root


def _parse_syntax(text: str | bytes) -> etree._Element:
    if isinstance(text, str):
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise JobXMLError(
                "text is not valid Unicode", text.count("\n", 0, e.start) + 1
            ) from None
        encoding: str | None = "utf-8"  # overrides any declaration: we just encoded it so
    else:
        data, encoding = bytes(text), None
    parser = etree.XMLParser(
        encoding=encoding,
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        msg = e.msg or "not well-formed XML"
        m = re.search(r",? line \d+, column (\d+)$", msg)
        if m:
            msg = f"{msg[: m.start()]} (column {m.group(1)})"
        raise JobXMLError(msg, e.lineno or 1) from None
    except (etree.Error, ValueError) as e:
        raise JobXMLError(f"not well-formed XML: {e}", 1) from None
    if root is None:
        raise JobXMLError("document is empty", 1)
    if root.getroottree().docinfo.internalDTD is not None:
        # Entities would let a document say one thing to a person and another to us.
        raise JobXMLError("a DOCTYPE is not allowed in job XML", 1)
    return root


def _fail(el: etree._Element, problem: str) -> JobXMLError:
    return JobXMLError(f"element {el.tag!r}: {problem}", el.sourceline)


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _read_job(root: etree._Element) -> Job:
    if root.tag != "job":
        raise _fail(root, "the document element must be 'job'")
    _check_attrs(root, ("type", "state"), ("name",))
    children = _job_children(root)
    name = _str_attr(root, "name")
    job_type = _enum_attr(root, "type", JobType)
    state = _enum_attr(root, "state", JobState)

    domain = children["domain"]
    _check_attrs(domain, strings=("name", "uuid"))
    _no_content(domain)
    host = children["host"]
    _check_attrs(host, strings=("uri",))
    _no_content(host)
    time = children["time"]
    _check_attrs(time, ("started", "finished", "sampled", BEFORE_SEEN))
    _no_content(time)
    started = _float_attr(time, "started")
    if time.get(BEFORE_SEEN, "yes") != "yes":
        raise _fail(time, f"attribute {BEFORE_SEEN!r} must be 'yes' (or absent)")
    finished = _float_attr(time, "finished") if "finished" in time.attrib else None
    sampled = _float_attr(time, "sampled") if "sampled" in time.attrib else None

    message = _read_string(children["message"]) if "message" in children else ""
    qemu_id = _read_string(children["qemu-id"]) if "qemu-id" in children else ""
    for flag in ("stalled", "stale"):
        if flag in children:
            _check_attrs(children[flag])
            _no_content(children[flag])

    config_fields, config = _read_map(children.get("config"), _CONFIG_FIELDS)
    stats_fields, stats = _read_map(children.get("stats"), _STATS_FIELDS)
    return Job(
        key=JobKey(
            host=_str_attr(host, "uri"),
            domain_uuid=_str_attr(domain, "uuid"),
            name=name,
            started=started,
        ),
        domain=_str_attr(domain, "name"),
        type=job_type,
        state=state,
        config=FrozenMap(config),
        stats=FrozenMap(stats),
        current=stats_fields.get("current"),
        end=stats_fields.get("end"),
        bandwidth=config_fields.get("bandwidth"),
        finished=finished,
        message=message,
        qemu_id=qemu_id,
        stalled="stalled" in children,
        sampled=sampled,
        stale="stale" in children,
        rate=stats_fields.get("rate"),
        started_before_seen=BEFORE_SEEN in time.attrib,
    )


def _job_children(root: etree._Element) -> dict[str, etree._Element]:
    _no_text(root)
    found: dict[str, etree._Element] = {}
    for child in root:
        tag = child.tag
        if tag not in _JOB_CHILDREN:
            raise JobXMLError(f"element 'job' cannot contain element {tag!r}", child.sourceline)
        if tag in found:
            raise _fail(child, "appears twice")
        later = [t for t in found if _JOB_CHILDREN.index(t) > _JOB_CHILDREN.index(tag)]
        if later:
            raise _fail(child, f"must come before {later[0]!r}")
        found[tag] = child
    for tag in _REQUIRED_CHILDREN:
        if tag not in found:
            raise _fail(root, f"missing element {tag!r}")
    return found


def _check_attrs(
    el: etree._Element, plain: Iterable[str] = (), strings: Iterable[str] = ()
) -> None:
    """Refuse unknown attributes; each of `strings` may also come as `<name>-base64`."""
    allowed = {*plain, *strings, *(f"{s}-base64" for s in strings)}
    for attr in el.attrib:
        if attr not in allowed:
            raise _fail(el, f"unexpected attribute {attr!r}")


def _attr(el: etree._Element, name: str) -> str:
    value: str | None = el.get(name)
    if value is None:
        raise _fail(el, f"missing attribute {name!r}")
    return value


def _str_attr(el: etree._Element, name: str) -> str:
    plain: str | None = el.get(name)
    encoded: str | None = el.get(f"{name}-base64")
    if plain is not None and encoded is not None:
        raise _fail(el, f"has both {name!r} and '{name}-base64'")
    if plain is not None:
        return plain
    if encoded is not None:
        return _b64decode(el, encoded)
    raise _fail(el, f"missing attribute {name!r}")


_E = TypeVar("_E", JobType, JobState)


def _enum_attr(el: etree._Element, name: str, enum: type[_E]) -> _E:
    value = _attr(el, name)
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise _fail(el, f"{name} {_show(value)} is not one of {choices}") from None


def _float_attr(el: etree._Element, name: str) -> float:
    value = _attr(el, name)
    if not _FLOAT.fullmatch(value):
        raise _fail(el, f"{name} {_show(value)} is not a number")
    return float(value)


def _no_text(el: etree._Element) -> None:
    for text in (el.text, *(child.tail for child in el)):
        if text and text.strip(_XML_SPACE):
            raise _fail(el, f"unexpected text {_show(text.strip(_XML_SPACE))}")


def _no_content(el: etree._Element) -> None:
    _no_text(el)
    if len(el):
        raise _fail(el, f"cannot contain element {el[0].tag!r}")


def _text(el: etree._Element) -> str:
    if len(el):
        raise _fail(el, f"must hold text, not element {el[0].tag!r}")
    return "".join(el.xpath("text()"))


def _read_string(el: etree._Element) -> str:
    _check_attrs(el, ("encoding",))
    return _decoded_text(el)


def _decoded_text(el: etree._Element) -> str:
    encoding, text = el.get("encoding"), _text(el)
    if encoding is None:
        return text
    if encoding != "base64":
        raise _fail(el, f"encoding {_show(encoding)} is not 'base64'")
    return _b64decode(el, text)


def _b64decode(el: etree._Element, text: str) -> str:
    if not _BASE64.fullmatch(text):
        raise _fail(el, f"{_show(text)} is not base64")
    try:
        return base64.b64decode(text).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # the one check here that job.rng cannot make
        raise _fail(el, f"{_show(text)} is base64 but not of UTF-8 text") from None


def _read_int(el: etree._Element, text: str) -> int:
    if not _INT.fullmatch(text):
        raise _fail(el, f"{_show(text)} is not an integer")
    try:
        return int(text)
    except ValueError:  # Python refuses more than 4300 digits
        raise _fail(el, "integer has too many digits") from None


def _read_map(
    el: etree._Element | None, fields: tuple[str, ...]
) -> tuple[dict[str, int], dict[str, StatValue]]:
    """A <config> or <stats>: the Job fields it carries, and its map entries."""
    field_values: dict[str, int] = {}
    entries: dict[str, StatValue] = {}
    if el is None:
        return field_values, entries
    _check_attrs(el)
    _no_text(el)
    for child in el:
        tag = child.tag
        if tag in fields:
            if tag in field_values:
                raise _fail(child, f"appears twice in {el.tag!r}")
            _check_attrs(child, ("unit",))
            field_values[tag] = _read_int(child, _text(child))
            continue
        if tag == "param":
            _check_attrs(child, ("type", "unit", "encoding"), ("name",))
            key = _str_attr(child, "name")
        elif tag.startswith("{"):
            raise _fail(child, f"namespaced elements are not allowed in {el.tag!r}")
        else:
            _check_attrs(child, ("type", "unit", "encoding"))
            key = tag
        if key in entries:
            raise _fail(child, f"key {_show(key)} appears twice in {el.tag!r}")
        entries[key] = _read_value(child)
    return field_values, entries


def _read_value(el: etree._Element) -> StatValue:
    kind = el.get("type")
    if el.get("encoding") is not None and kind not in (None, "str"):
        raise _fail(el, "encoding='base64' is only for strings")
    text = _decoded_text(el)
    if kind is None:
        return _read_int(el, text) if _CANONICAL_INT.fullmatch(text) else text
    if kind == "str":
        return text
    if kind == "int":
        return _read_int(el, text)
    if kind == "float":
        if not _FLOAT.fullmatch(text):
            raise _fail(el, f"{_show(text)} is not a float")
        return float(text)
    if kind == "bool":
        if text not in ("yes", "no"):
            raise _fail(el, f"{_show(text)} is not 'yes' or 'no'")
        return text == "yes"
    raise _fail(el, f"type {_show(kind)} is not one of {', '.join(_VALUE_TYPES)}")


# --- for people -----------------------------------------------------------------------------


# virDomainJobOperation, as the `operation` stat of a domain job carries it.
OPERATIONS: Mapping[int, str] = MappingProxyType(
    {
        0: "unknown",
        1: "start",
        2: "save",
        3: "restore",
        4: "incoming migration",
        5: "outgoing migration",
        6: "snapshot",
        7: "snapshot revert",
        8: "dump",
        9: "backup",
        10: "snapshot delete",
    }
)


def format_value(key: str, value: StatValue) -> str:
    """A config or stats value as a person reads it: 1.5 GiB, 32.0 MiB/s, 1m 23s, 1234 pages/s."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if key == "operation" and isinstance(value, int):
        return OPERATIONS.get(value, f"operation {value}")
    unit = unit_of(key)
    if unit is None:
        return units.number(value)
    if not math.isfinite(value):
        return f"{value} {unit}"
    if unit == "bytes":
        return units.size(value)
    if unit == "bytes/s":
        return units.rate(value)
    if unit == "ms":
        return units.duration_ms(value)
    if unit == "%":
        return f"{units.number(value)}%"
    return f"{units.number(value)} {unit}"
