"""The job XML: exact round trips for any Job, the schema agrees with the reader, and bad input
gives one-line JobXMLErrors, never another exception."""

from __future__ import annotations

import math
import re
import string

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from jobtui import jobxml
from jobtui.jobxml import UNITS, JobXMLError, format_value, parse, to_element, to_xml, validate
from jobtui.model import FrozenMap, Job, JobKey, JobState, JobType

# --- strategies ---------------------------------------------------------------------------

ODD = ["", " ", "  padded  ", "<&'\">", "]]>", "a\r\nb", "\t", "\x00", "\x1b[31m", "\ud800",
       "\ufffe", "é日本🐍", "007", "-0", "42", "1e5", "yes", "param", "current", "end", "bandwidth",
       "xml-key", "XMLx", "a:b", "{ns}x", "1abc", "with space", "a.b-c_d"]  # fmt: skip

odd_text = st.one_of(st.sampled_from(ODD), st.text(max_size=30))
keys = st.one_of(
    st.sampled_from(ODD),
    st.sampled_from(sorted(UNITS)),
    st.from_regex(r"[a-z_][a-z0-9_.-]{0,12}", fullmatch=True),
    st.text(max_size=12),
)
values = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    odd_text,
)
maps = st.dictionaries(keys, values, max_size=8).map(FrozenMap)
times = st.floats(allow_nan=False)
ints = st.none() | st.integers(min_value=-(2**64), max_value=2**64)


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    key = JobKey(host=draw(odd_text), domain_uuid=draw(odd_text), name=draw(odd_text),
                 started=draw(times))  # fmt: skip
    return Job(
        key=key,
        domain=draw(odd_text),
        type=draw(st.sampled_from(JobType)),
        state=draw(st.sampled_from(JobState)),
        config=draw(maps),
        stats=draw(maps),
        current=draw(ints),
        end=draw(ints),
        bandwidth=draw(ints),
        finished=draw(st.none() | times),
        message=draw(odd_text),
        qemu_id=draw(odd_text),
        stalled=draw(st.booleans()),
        sampled=draw(st.none() | times),
        stale=draw(st.booleans()),
        rate=draw(ints),
        started_before_seen=draw(st.booleans()),
    )


def typed(m: FrozenMap) -> list[tuple[str, type, str]]:
    # Job equality says True == 1 and 0.0 == -0.0; the round trip must keep types and bits too.
    return [(k, type(v), repr(v)) for k, v in m.items()]


SAMPLE = Job(
    key=JobKey("qemu:///system", "7c2b0c4e-2f4b-4e0a-9d1e-0c6a3f1b2d4e", "copy-vda", 1700000000.25),
    domain="web1",
    type=JobType.BLOCK_COPY,
    state=JobState.READY,
    config=FrozenMap(disk="vda", destination="/var/lib/copy.qcow2"),
    stats=FrozenMap(time_elapsed=83000, memory_total=1610612736),
    current=268435456,
    end=268435456,
    bandwidth=33554432,
)


# --- round trips --------------------------------------------------------------------------


@given(jobs())
@example(SAMPLE)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip_is_exact(job: Job) -> None:
    text = to_xml(job)
    validate(text)
    assert standalone_schema().validate(etree.fromstring(text).getroottree())
    back = parse(text)
    assert back == job
    assert typed(back.config) == typed(job.config)
    assert typed(back.stats) == typed(job.stats)
    assert repr(back.key.started) == repr(float(job.key.started))
    assert repr(back.finished) == repr(job.finished)
    assert to_xml(back) == text


def test_nan_survives() -> None:
    job = SAMPLE.evolve(key=JobKey("h", "u", "n", math.nan), stats=FrozenMap(x=math.nan))
    back = parse(to_xml(job))
    assert math.isnan(back.key.started)
    assert math.isnan(back.stats["x"])


def test_sample_document_shape() -> None:
    root = etree.fromstring(to_xml(SAMPLE))
    assert root.attrib == {"name": "copy-vda", "type": "block-copy", "state": "ready"}
    assert [c.tag for c in root] == ["domain", "host", "time", "config", "stats"]
    assert root.find("time").get("started") == "1700000000.25"
    bw = root.find("config/bandwidth")
    assert (bw.text, bw.get("unit")) == ("33554432", "bytes/s")
    assert root.find("config/disk").text == "vda"
    assert root.find("stats/current").get("unit") == "bytes"
    assert root.find("stats/time_elapsed").attrib == {"unit": "ms"}
    assert to_element(SAMPLE).tag == "job"


def test_map_keys_named_like_fields_do_not_collide() -> None:
    job = SAMPLE.evolve(
        stats=FrozenMap(current="mine", end=7, param=True),
        config=FrozenMap(bandwidth=1.5, param="x"),
        current=None,
    )
    text = to_xml(job)
    root = etree.fromstring(text)
    assert root.find("stats/current") is None  # Job.current is None: only the map entry remains
    assert root.xpath("stats/param/@name") == ["current", "end", "param"]
    assert root.xpath("config/param/@name") == ["bandwidth", "param"]
    assert parse(text) == job


def test_type_attribute_only_where_needed() -> None:
    job = SAMPLE.evolve(stats=FrozenMap(i=5, s="five", n="5", f=5.0, b=False))
    root = etree.fromstring(to_xml(job))
    assert {c.tag: c.get("type") for c in root.find("stats")} == {
        "current": None, "end": None, "i": None, "s": None, "n": "str", "f": "float", "b": "bool"
    }  # fmt: skip


def test_text_xml_cannot_carry_is_base64() -> None:
    job = SAMPLE.evolve(message="bell\x07", key=JobKey("h", "u\x00", "n", 1.0))
    root = etree.fromstring(to_xml(job))
    assert root.find("message").get("encoding") == "base64"
    assert "uuid-base64" in root.find("domain").attrib
    assert parse(to_xml(job)) == job


# --- the schema and the reader agree ------------------------------------------------------


def standalone_schema() -> etree.RelaxNG:
    from importlib import resources

    return etree.RelaxNG(etree.parse(str(resources.files("jobtui") / "schemas" / "job.rng")))


def _reader_accepts(root: etree._Element) -> bool | None:
    try:
        jobxml._read_job(root)
    except JobXMLError as e:
        if re.search(r"key .* appears twice|base64 but not of UTF-8", e.problem):
            return None  # unique keys and UTF-8 in base64: rules RelaxNG cannot express
        return False
    return True


# --- mutated documents --------------------------------------------------------------------

LINE = re.compile(r"line [1-9][0-9]*: \S")


def _pick(data: st.DataObject, options: list) -> object:
    assume(options)  # an earlier mutation may have left nothing of this kind to mutate
    return data.draw(st.sampled_from(options))


def _mutate(data: st.DataObject, text: str) -> str:
    kind = data.draw(
        st.sampled_from(
            ["drop-attr", "enum", "truncate", "insert", "letters", "drop-line", "dup-line",
             "swap-lines", "rename-tag", "attr-value"]
        ),
        label="mutation",
    )  # fmt: skip
    lines = text.splitlines(keepends=True)
    if kind == "drop-attr":
        a, b = _pick(data, [m.span() for m in re.finditer(r' [\w.-]+="[^"]*"', text)])
        return text[:a] + text[b:]
    if kind == "enum":
        which = data.draw(st.sampled_from(["type", "state"]))
        junk = data.draw(st.sampled_from(["foo", "bar", "", "RUNNING", " ready"]) | st.text())
        return re.sub(rf'{which}="[^"]*"', lambda _: f'{which}="{junk}"', text, count=1)
    if kind == "truncate":
        return text[: data.draw(st.integers(0, len(text)))]
    if kind == "insert":
        at = data.draw(st.integers(0, len(text)))
        junk = data.draw(
            st.sampled_from(["<junk/>", "abc", "&", "<", "]]>", "<!--c-->", "<?pi x?>", "\x00",
                             "<stalled/>", "<param name='x'>1</param>", "<current>1</current>",
                             '<!DOCTYPE job [<!ENTITY e "x">]>', "&e;", "&#1;", "\ud800"])
            | st.text(max_size=10)
        )  # fmt: skip
        return text[:at] + junk + text[at:]
    if kind == "letters":
        a, b = _pick(data, [m.span() for m in re.finditer(r"[0-9]+", text)])
        letters = data.draw(st.text(string.ascii_letters, min_size=1, max_size=4))
        return text[:a] + letters + text[b:]
    assume(lines)
    if kind == "drop-line":
        del lines[data.draw(st.integers(0, len(lines) - 1))]
    elif kind == "dup-line":
        i = data.draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[i])
    elif kind == "swap-lines":
        i, j = data.draw(st.integers(0, len(lines) - 1)), data.draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "rename-tag":
        tags = sorted(set(re.findall(r"<([\w.-]+)", text)))
        old = _pick(data, tags)
        new = data.draw(st.sampled_from(["job", "param", "stats", "x", "current", "ns:x"]))
        return re.sub(rf"(</?){re.escape(old)}\b", lambda m: m.group(1) + new, text)
    elif kind == "attr-value":
        a, b = _pick(data, [m.span(1) for m in re.finditer(r'="([^"]*)"', text)])
        return text[:a] + data.draw(st.text(max_size=8)).replace('"', "") + text[b:]
    return "".join(lines)


def _check_outcome(text: str) -> Job | None:
    try:
        job = parse(text)
    except JobXMLError as e:
        message = str(e)
        assert len(message.splitlines()) == 1, message
        assert LINE.match(message), message
        try:
            validate(text)  # may pass: the schema leaves some checks (duplicate keys) to parse
        except JobXMLError as v:
            assert str(v) == message  # the same explanation either way
        return None
    # Whatever was accepted is a real job: it serialises and comes back the same.
    assert parse(to_xml(job)) == job
    return job


@given(jobs(), st.data())
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_documents_give_a_job_or_a_one_line_error(job: Job, data: st.DataObject) -> None:
    text = to_xml(job)
    for _ in range(data.draw(st.integers(1, 3), label="rounds")):
        text = _mutate(data, text)
    _check_outcome(text)


@given(jobs(), st.data())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_schema_and_reader_accept_the_same_documents(job: Job, data: st.DataObject) -> None:
    text = _mutate(data, to_xml(job))
    try:
        root = jobxml._parse_syntax(text)
    except JobXMLError:
        return
    reader = _reader_accepts(root)
    assume(reader is not None)
    assert standalone_schema().validate(root.getroottree()) == reader, text


@given(st.text() | st.binary())
def test_arbitrary_input_never_escapes_as_another_exception(text: str | bytes) -> None:
    try:
        parse(text)
    except JobXMLError as e:
        assert len(str(e).splitlines()) == 1
        assert LINE.match(str(e)), str(e)


# --- exact messages -------------------------------------------------------------------------

HEAD = """<job name="copy-vda" type="block-copy" state="ready">
  <domain name="web1" uuid="u"/>
  <host uri="qemu:///system"/>
  <time started="1.5"/>
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEAD.replace("block-copy", "foo") + "</job>",
         "line 1: element 'job': type 'foo' is not one of migration-out, migration-in, save, "
         "restore, dump, snapshot, snapshot-revert, snapshot-delete, backup, block-pull, "
         "block-copy, block-commit, block-commit-active, blockdev-create, unknown"),
        (HEAD.replace('state="ready"', 'state="bar"') + "</job>",
         "line 1: element 'job': state 'bar' is not one of running, ready, paused, completed, "
         "failed, aborted, unknown, orphaned"),
        (HEAD.replace(' uuid="u"', "") + "</job>",
         "line 2: element 'domain': missing attribute 'uuid'"),
        (HEAD.replace('<time started="1.5"/>', "<time/>") + "</job>",
         "line 4: element 'time': missing attribute 'started'"),
        (HEAD.replace("1.5", "soon") + "</job>",
         "line 4: element 'time': started 'soon' is not a number"),
        (HEAD + "  <stats>\n    <current>12.5</current>\n  </stats>\n</job>",
         "line 6: element 'current': '12.5' is not an integer"),
        (HEAD + "  <config><bandwidth>fast</bandwidth></config>\n</job>",
         "line 5: element 'bandwidth': 'fast' is not an integer"),
        (HEAD + "  <stats><x type='bool'>maybe</x></stats>\n</job>",
         "line 5: element 'x': 'maybe' is not 'yes' or 'no'"),
        (HEAD + "  <stats><x type='complex'>1j</x></stats>\n</job>",
         "line 5: element 'x': type 'complex' is not one of int, float, bool, str"),
        (HEAD + "  <stats><x>1</x>\n<x>2</x></stats>\n</job>",
         "line 6: element 'x': key 'x' appears twice in 'stats'"),
        (HEAD + "  <stats>oops</stats>\n</job>",
         "line 5: element 'stats': unexpected text 'oops'"),
        (HEAD + "  <junk/>\n</job>",
         "line 5: element 'job' cannot contain element 'junk'"),
        (HEAD.replace('  <host uri="qemu:///system"/>\n', "") + "</job>",
         "line 1: element 'job': missing element 'host'"),
        (HEAD + "  <stats>\n</job>",
         "line 6: Opening and ending tag mismatch: stats line 5 and job (column 7)"),
        ("", "line 1: Document is empty (column 1)"),
        ("<domain/>", "line 1: element 'domain': the document element must be 'job'"),
        ('<!DOCTYPE job [<!ENTITY e "x">]>\n' + HEAD + "</job>",
         "line 1: a DOCTYPE is not allowed in job XML"),
    ],
)  # fmt: skip
def test_exact_messages(text: str, message: str) -> None:
    with pytest.raises(JobXMLError) as err:
        parse(text)
    assert str(err.value) == message
    with pytest.raises(JobXMLError):
        validate(text)


def test_hand_written_document_is_accepted() -> None:
    text = (
        HEAD
        + """  <!-- comments are fine -->
  <message>done</message>
  <stalled/>
  <stats>
    <end>100</end>
    <current unit='bytes'>50</current>
    <param name='a b' type='float'>0.5</param>
    <flag type='bool'>no</flag>
  </stats>
</job>"""
    )
    job = parse(text)
    assert (job.current, job.end, job.message, job.stalled) == (50, 100, "done", True)
    assert job.stats == {"a b": 0.5, "flag": False}
    assert job.config == {}


def test_error_is_a_value_error() -> None:
    assert issubclass(JobXMLError, ValueError)


# --- units and format_value ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("memory_total", 1610612736, "1.5 GiB"),
        ("memory_bps", 33554432, "32.0 MiB/s"),
        ("bandwidth", 33554432, "32.0 MiB/s"),
        ("disk_processed", 512, "512 B"),
        ("disk_processed", 1048575, "1.0 MiB"),
        ("time_elapsed", 83000, "1m 23s"),
        ("time_elapsed", 450, "450 ms"),
        ("time_remaining", 12345, "12.3 s"),
        ("time_remaining", 7_380_000, "2h 03m"),
        ("downtime", 90_000_000, "1d 01h"),
        ("memory_dirty_rate", 1234, "1234 pages/s"),
        ("memory_constant", 7, "7 pages"),
        ("auto_converge_throttle", 20, "20%"),
        ("memory_iteration", 3, "3"),
        ("newer_field", 2.5, "2.5"),
        ("success", True, "yes"),
        ("errmsg", "boom", "boom"),
        ("memory_total", -2048, "-2.0 KiB"),
        ("memory_total", math.inf, "inf bytes"),
    ],
)
def test_format_value(key: str, value: object, shown: str) -> None:
    assert format_value(key, value) == shown  # type: ignore[arg-type]


def test_units_cover_libvirt_job_stats() -> None:
    for key in ("memory_total", "memory_processed", "memory_remaining", "disk_total",
                "disk_processed", "disk_remaining", "data_total", "data_processed",
                "data_remaining"):  # fmt: skip
        assert UNITS[key] == "bytes"
    assert UNITS["memory_bps"] == UNITS["disk_bps"] == "bytes/s"
    assert UNITS["time_elapsed"] == UNITS["setup_time"] == UNITS["downtime"] == "ms"
    assert UNITS["memory_dirty_rate"] == "pages/s"
    assert UNITS["memory_page_size"] == "bytes"


@given(keys, values)
def test_format_value_never_fails(key: str, value: object) -> None:
    assert isinstance(format_value(key, value), str)  # type: ignore[arg-type]


def test_operation_is_shown_by_name() -> None:
    from jobtui.jobxml import format_value

    assert format_value("operation", 2) == "save"
    assert format_value("operation", 5) == "outgoing migration"
    assert format_value("operation", 99) == "operation 99"


def test_per_disk_and_derived_stats_have_units() -> None:
    from jobtui.jobxml import format_value

    assert format_value("vda.current", 64 * 1024 * 1024) == "64.0 MiB"
    assert format_value("vdb.bandwidth", 2 * 1024 * 1024) == "2.0 MiB/s"
    assert format_value("memory_dirty_bps", 1024 * 1024) == "1.0 MiB/s"
