"""jobupdates.mjs and the client's MessagePack encoding, in Debian's Chromium.

Two kinds of test:

* the codec and the client's handshake choices, in a page of its own with no
  server (``http://client.test``, answered by Playwright's routing from the
  files in ``jobupdates/static/jobupdates/``): MessagePack values go from
  Python's ``msgpack`` to the JavaScript decoder and from the JavaScript
  encoder back to Python, and a stand-in WebSocket records what the client
  offers and sends;
* end to end, against the real stack (Redis, Daphne with ``DEBUG`` serving
  ``/static/``, the bridge): the same page, written into the site's home page
  (so on its own origin, with no test URL in the project), imports
  ``/static/jobupdates/jobupdates.mjs`` with ``<script type="module">``.

Every wait is on a condition in the page (``wait_for_function``), never a sleep.
"""

from __future__ import annotations

import json
import math
import struct
import urllib.parse
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import redis
from playwright.sync_api import Browser, Page, Route, WebSocket

from harness.processes import ROOT
from harness.updates import CHANNEL, job_update
from tests.browser.conftest import BrowserPage, log_in, open_page
from tests.conftest import Stack

pytestmark = pytest.mark.e2e

STATIC = ROOT / "jobupdates" / "static" / "jobupdates"
NO_SERVER = "http://client.test"
PAGE_PATH = "/client-module-test/"
MSGPACK = "jobupdates.v1.msgpack"

# The page: imports the module, exposes its exports as `harness`, and connects
# one client per encoding named in ?connect= (the msgpack one to /ws/, the other
# spelling of the endpoint, so the test can tell the two sockets apart).
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>jobupdates.mjs</title>
  <link rel="icon" href="data:,">
</head>
<body>
<script type="module">
  import DefaultJobUpdates, { JobUpdates, State, msgpack } from "/static/jobupdates/jobupdates.mjs";

  const clients = {};
  const seen = {};
  function track(name, client) {
    const log = (seen[name] = { opened: [], updates: [], types: [], errors: [], states: [] });
    client.on("open", (info) => log.opened.push(info));
    client.on("job_update", (frame) => log.updates.push(frame));
    client.on("message", (frame) => log.types.push(frame.type));
    client.on("error", (frame) => log.errors.push(frame));
    client.on("state", (change) => log.states.push(change));
    clients[name] = client;
    return client;
  }
  const hexOf = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const bytesOf = (hex) => Uint8Array.from(hex.match(/../g) || [], (pair) => parseInt(pair, 16));

  // A value as a tagged tree Python can compare exactly (see describe() in the test).
  function describe(value) {
    if (value === null) return ["nil"];
    if (typeof value === "boolean") return ["bool", value];
    if (typeof value === "number") {
      if (Number.isNaN(value)) return ["num", "nan"];
      const view = new DataView(new ArrayBuffer(8));
      view.setFloat64(0, value);
      return ["num", hexOf(new Uint8Array(view.buffer))];
    }
    if (typeof value === "bigint") return ["big", value.toString()];
    if (typeof value === "string") return ["str", value];
    if (value instanceof Uint8Array) return ["bin", hexOf(value)];
    if (Array.isArray(value)) return ["arr", value.map(describe)];
    if (Object.getPrototypeOf(value) === Object.prototype) {
      return ["map", Object.keys(value).sort().map((key) => [key, describe(value[key])])];
    }
    return ["other", Object.prototype.toString.call(value)];
  }

  // A stand-in WebSocket: records what the client offers and sends.
  class FakeSocket {
    constructor(url, protocols) {
      this.url = url;
      this.args = arguments.length;
      this.protocols = protocols ?? null;
      this.protocol = "";
      this.binaryType = "blob";
      this.sent = [];
      FakeSocket.made.push(this);
    }
    send(data) { this.sent.push(data); }
    close(code, reason) { this.closed = { code, reason }; }
    open(protocol) { this.protocol = protocol; this.onopen?.({}); }
    receive(data) { this.onmessage?.({ data }); }
    drop(code) { this.onclose?.({ code, reason: "" }); }
  }
  FakeSocket.made = [];

  async function until(condition, what) {
    const deadline = Date.now() + 5000;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }

  window.harness = {
    JobUpdates, DefaultJobUpdates, State, msgpack, clients, seen, track,
    hexOf, bytesOf, describe, FakeSocket, until,
  };
  const wanted = new URLSearchParams(location.search).get("connect");
  for (const encoding of wanted ? wanted.split(",") : []) {
    const url = encoding === "msgpack" ? `ws://${location.host}/ws/` : undefined;
    // No heartbeat: the test counts every frame the client sends.
    track(encoding, new JobUpdates({ encoding, url, heartbeatInterval: 0 })).connect();
  }
  document.documentElement.dataset.ready = "true";
</script>
</body>
</html>
"""


def serve_page(route: Route) -> None:
    route.fulfill(status=200, content_type="text/html; charset=utf-8", body=PAGE)


def serve_static(route: Route) -> None:
    """The client's files straight from the checkout (only for the serverless page)."""
    name = urllib.parse.urlsplit(route.request.url).path.removeprefix("/static/jobupdates/")
    path = STATIC / name
    if "/" in name or not path.is_file():
        route.fulfill(status=404, body="not found")
        return
    route.fulfill(status=200, content_type="text/javascript", body=path.read_text())


def wait_ready(page: Page) -> None:
    page.wait_for_function("document.documentElement.dataset.ready === 'true'")


def describe(value: Any) -> Any:
    """``value`` as the tagged tree the page's describe() makes of its JavaScript twin.

    Numbers compare by their float64 bits (so -0.0 and 0.0 differ); integers beyond
    2**53 - 1 must arrive as BigInt; map keys become strings as in JSON.
    """
    if value is None:
        return ["nil"]
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int) and abs(value) > 2**53 - 1:
        return ["big", str(value)]
    if isinstance(value, int | float):
        if math.isnan(value):
            return ["num", "nan"]
        return ["num", struct.pack(">d", float(value)).hex()]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, bytes):
        return ["bin", value.hex()]
    if isinstance(value, list | tuple):
        return ["arr", [describe(item) for item in value]]
    if isinstance(value, dict):
        keys = {
            ("null" if k is None else str(k).lower() if isinstance(k, bool) else str(k)): v
            for k, v in value.items()
        }
        return ["map", [[key, describe(keys[key])] for key in sorted(keys)]]
    raise TypeError(f"no description for {value!r}")


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def decode_in_page(page: Page, data: bytes) -> Any:
    """What the page's decoder makes of ``data``, described (as JSON text: Playwright's
    own serialisation stops at a few hundred levels of nesting)."""
    described = page.evaluate(
        "hex => JSON.stringify(harness.describe(harness.msgpack.decode(harness.bytesOf(hex))))",
        data.hex(),
    )
    return json.loads(described)


@pytest.fixture(scope="module")
def codec_page(browser: Browser) -> Iterator[BrowserPage]:
    """The module loaded in a page with no server behind it."""
    recorded = open_page(browser, NO_SERVER)
    recorded.page.route(f"{NO_SERVER}/static/jobupdates/*", serve_static)
    recorded.page.route(f"{NO_SERVER}{PAGE_PATH}**", serve_page)
    recorded.page.goto(PAGE_PATH)
    wait_ready(recorded.page)
    yield recorded
    recorded.assert_no_console_errors()
    recorded.page.context.close()


# Python -> JavaScript: (id, value, packb options, the first byte the case must produce).
DECODE_CASES: list[tuple[str, Any, dict[str, Any], int]] = [
    ("nil", None, {}, 0xC0),
    ("false", False, {}, 0xC2),
    ("true", True, {}, 0xC3),
    ("positive fixint 0", 0, {}, 0x00),
    ("positive fixint 127", 127, {}, 0x7F),
    ("uint8 128", 128, {}, 0xCC),
    ("uint8 255", 255, {}, 0xCC),
    ("uint16 256", 256, {}, 0xCD),
    ("uint16 65535", 65535, {}, 0xCD),
    ("uint32 65536", 65536, {}, 0xCE),
    ("uint32 max", 2**32 - 1, {}, 0xCE),
    ("uint64 2**32", 2**32, {}, 0xCF),
    ("uint64 max safe", 2**53 - 1, {}, 0xCF),
    ("uint64 unsafe", 2**53, {}, 0xCF),
    ("uint64 max", 2**64 - 1, {}, 0xCF),
    ("negative fixint -1", -1, {}, 0xFF),
    ("negative fixint -32", -32, {}, 0xE0),
    ("int8 -33", -33, {}, 0xD0),
    ("int8 min", -128, {}, 0xD0),
    ("int16 -129", -129, {}, 0xD1),
    ("int16 min", -32768, {}, 0xD1),
    ("int32 -32769", -32769, {}, 0xD2),
    ("int32 min", -(2**31), {}, 0xD2),
    ("int64 -2**31-1", -(2**31) - 1, {}, 0xD3),
    ("int64 min safe", -(2**53 - 1), {}, 0xD3),
    ("int64 unsafe", -(2**53), {}, 0xD3),
    ("int64 min", -(2**63), {}, 0xD3),
    ("float64 0.5", 0.5, {}, 0xCB),
    ("float64 -0.0", -0.0, {}, 0xCB),
    ("float64 1e300", 1e300, {}, 0xCB),
    ("float64 smallest subnormal", 5e-324, {}, 0xCB),
    ("float64 inf", math.inf, {}, 0xCB),
    ("float64 -inf", -math.inf, {}, 0xCB),
    ("float64 nan", math.nan, {}, 0xCB),
    ("float32 0.1", 0.1, {"use_single_float": True}, 0xCA),
    ("float32 -2.5", -2.5, {"use_single_float": True}, 0xCA),
    ("float32 inf", math.inf, {"use_single_float": True}, 0xCA),
    ("fixstr empty", "", {}, 0xA0),
    ("fixstr 31", "a" * 31, {}, 0xBF),
    ("fixstr unicode", "é日本😀", {}, 0xAC),
    ("str8 32", "a" * 32, {}, 0xD9),
    ("str8 255", "a" * 255, {}, 0xD9),
    ("str16 256", "a" * 256, {}, 0xDA),
    ("str16 65535", "é" * 32767 + "a", {}, 0xDA),
    ("str32 65536", "a" * 65536, {}, 0xDB),
    ("bin8 empty", b"", {}, 0xC4),
    ("bin8", b"\x00\xff", {}, 0xC4),
    ("bin16", bytes(range(256)), {}, 0xC5),
    ("bin32", bytes(range(256)) * 256, {}, 0xC6),
    ("fixarray empty", [], {}, 0x90),
    ("fixarray 15", list(range(15)), {}, 0x9F),
    ("array16", list(range(16)), {}, 0xDC),
    ("array32", [0] * 65536, {}, 0xDD),
    ("fixmap empty", {}, {}, 0x80),
    ("fixmap 15", {f"k{i}": i for i in range(15)}, {}, 0x8F),
    ("map16", {f"k{i}": i for i in range(16)}, {}, 0xDE),
    ("map32", {f"k{i}": i for i in range(65536)}, {}, 0xDF),
    ("map with number keys", {1: "a", -2: "b", 2**60: "c"}, {}, 0x83),
    ("map with nil and bool keys", {None: 1, True: 2, False: 3}, {}, 0x83),
    ("nested 300 deep", json.loads("[" * 300 + "]" * 300), {}, 0x91),
    (
        "a job update",
        {
            "type": "job_update",
            "job_id": "j-1",
            "status": "completed",
            "data": {"rows": [1, 2.5, None, True, "x", {"deep": [[[]]]}], "blob": b"\x01"},
            "position": "1732570000000-0",
        },
        {},
        0x85,
    ),
]

# Encodings msgpack-python never produces, but a decoder must read: (id, hex).
DECODE_RAW = [
    ("uint8 of a small value", "cc05"),
    ("int8 of a positive value", "d005"),
    ("int16 -2", "d1fffe"),
    ("uint64 of 1", "cf0000000000000001"),
    ("int64 of -1", "d3ffffffffffffffff"),
    ("str8 of 1 byte", "d90161"),
    ("array16 of 1", "dc0001c3"),
    ("map16 of 1", "de0001a161c2"),
    ("duplicate key, last wins", "82a16101a16102"),
]


@pytest.mark.parametrize(
    ("value", "options", "first"), [c[1:] for c in DECODE_CASES], ids=[c[0] for c in DECODE_CASES]
)
def test_the_decoder_reads_what_python_packs(
    codec_page: BrowserPage, value: Any, options: dict[str, Any], first: int
):
    packed = msgpack.packb(value, **options)
    assert packed[0] == first, f"expected the case to start with {first:#x}, got {packed[0]:#x}"
    assert decode_in_page(codec_page.page, packed) == describe(unpack(packed))


@pytest.mark.parametrize("raw", [c[1] for c in DECODE_RAW], ids=[c[0] for c in DECODE_RAW])
def test_the_decoder_reads_every_width(codec_page: BrowserPage, raw: str):
    data = bytes.fromhex(raw)
    assert decode_in_page(codec_page.page, data) == describe(unpack(data))


def test_the_decoder_accepts_views_and_keeps_no_prototype_key(codec_page: BrowserPage):
    packed = msgpack.packb({"__proto__": {"polluted": True}, "x": b"\x07"})
    result = codec_page.page.evaluate(
        """hex => {
          const { msgpack, bytesOf } = harness;
          const padded = new Uint8Array(hex.length / 2 + 2);
          padded.set(bytesOf(hex), 1);
          const value = msgpack.decode(new DataView(padded.buffer, 1, padded.length - 2));
          const fromBuffer = msgpack.decode(bytesOf(hex).buffer);
          return {
            plainPrototype: Object.getPrototypeOf(value) === Object.prototype,
            ownKey: Object.keys(value).includes("__proto__"),
            polluted: value.polluted === undefined && ({}).polluted === undefined,
            inner: value["__proto__"].polluted,
            binIsCopy: value.x.buffer !== padded.buffer && value.x[0] === 7,
            same: JSON.stringify(harness.describe(fromBuffer)) ===
              JSON.stringify(harness.describe(value)),
          };
        }""",
        packed.hex(),
    )
    assert result == {
        "plainPrototype": True,
        "ownKey": True,
        "polluted": True,
        "inner": True,
        "binIsCopy": True,
        "same": True,
    }


def test_the_decoder_reads_1000_levels_of_nesting(codec_page: BrowserPage):
    depth = codec_page.page.evaluate(
        """hex => {
          let value = harness.msgpack.decode(harness.bytesOf(hex));
          let depth = 0;
          while (Array.isArray(value)) [value, depth] = [value[0], depth + 1];
          return [depth, value];
        }""",
        (b"\x91" * 1000 + b"\xc3").hex(),
    )
    assert depth == [1000, True]


DECODE_ERRORS = [
    ("fixext", msgpack.packb(msgpack.ExtType(1, b"x")), "ext"),
    ("ext8", msgpack.packb(msgpack.ExtType(5, b"x" * 20)), "ext"),
    ("timestamp", msgpack.packb(msgpack.Timestamp(0)), "ext"),
    ("reserved 0xc1", b"\xc1", "reserved"),
    ("empty", b"", "truncated"),
    ("truncated str", msgpack.packb("hello")[:-1], "truncated"),
    ("truncated float", msgpack.packb(0.5)[:-1], "truncated"),
    ("array count beyond the input", b"\xdd\xff\xff\xff\xff", "truncated"),
    ("two values", msgpack.packb(1) + msgpack.packb(2), "left over"),
    ("invalid UTF-8", b"\xa2\xff\xfe", "UTF-8"),
    ("array as a map key", b"\x81\x90\x01", "map key"),
    ("nested over 1000", b"\x91" * 1001 + b"\xc0", "nested"),
]


@pytest.mark.parametrize(
    ("data", "fragment"), [c[1:] for c in DECODE_ERRORS], ids=[c[0] for c in DECODE_ERRORS]
)
def test_the_decoder_refuses(codec_page: BrowserPage, data: bytes, fragment: str):
    error = codec_page.page.evaluate(
        """hex => {
          try {
            return { value: harness.describe(harness.msgpack.decode(harness.bytesOf(hex))) };
          } catch (error) {
            return { name: error.name, message: error.message,
                     isMsgpackError: error instanceof harness.msgpack.MsgpackError };
          }
        }""",
        data.hex(),
    )
    assert error.get("name") == "MsgpackError", error
    assert error["isMsgpackError"]
    assert fragment in error["message"]


# JavaScript -> Python: (id, JavaScript expression, the Python value it must unpack to).
ENCODE_CASES: list[tuple[str, str, Any]] = [
    ("null", "null", None),
    ("undefined", "undefined", None),
    ("false", "false", False),
    ("true", "true", True),
    ("fixint 0", "0", 0),
    ("fixint 127", "127", 127),
    ("uint8", "128", 128),
    ("uint8 max", "255", 255),
    ("uint16", "256", 256),
    ("uint16 max", "65535", 65535),
    ("uint32", "65536", 65536),
    ("uint32 max", "2 ** 32 - 1", 2**32 - 1),
    ("uint64 from a number", "2 ** 32", 2**32),
    ("max safe integer", "Number.MAX_SAFE_INTEGER", 2**53 - 1),
    ("negative fixint -1", "-1", -1),
    ("negative fixint -32", "-32", -32),
    ("int8", "-33", -33),
    ("int8 min", "-128", -128),
    ("int16", "-129", -129),
    ("int16 min", "-32768", -32768),
    ("int32", "-32769", -32769),
    ("int32 min", "-(2 ** 31)", -(2**31)),
    ("int64 from a number", "-(2 ** 31) - 1", -(2**31) - 1),
    ("min safe integer", "Number.MIN_SAFE_INTEGER", -(2**53 - 1)),
    ("small bigint", "5n", 5),
    ("negative small bigint", "-5n", -5),
    ("uint64 bigint", "2n ** 53n", 2**53),
    ("uint64 max bigint", "2n ** 64n - 1n", 2**64 - 1),
    ("int64 bigint", "-(2n ** 53n)", -(2**53)),
    ("int64 min bigint", "-(2n ** 63n)", -(2**63)),
    ("float64", "0.5", 0.5),
    ("float64 -0", "-0", -0.0),
    ("float64 1e300", "1e300", 1e300),
    ("float64 subnormal", "5e-324", 5e-324),
    ("float64 unsafe integer", "2 ** 53", float(2**53)),
    ("float64 inf", "Infinity", math.inf),
    ("float64 -inf", "-Infinity", -math.inf),
    ("float64 nan", "NaN", math.nan),
    ("fixstr empty", "''", ""),
    ("fixstr 31", "'a'.repeat(31)", "a" * 31),
    ("str8 32", "'a'.repeat(32)", "a" * 32),
    ("str8 255", "'a'.repeat(255)", "a" * 255),
    ("str16 256", "'a'.repeat(256)", "a" * 256),
    ("str16 65535 bytes", "'é'.repeat(32767) + 'a'", "é" * 32767 + "a"),
    ("str32", "'a'.repeat(65536)", "a" * 65536),
    ("str unicode", "'é日本😀'", "é日本😀"),
    ("bin8 empty", "new Uint8Array([])", b""),
    ("bin8", "new Uint8Array([0, 255])", b"\x00\xff"),
    ("bin16", "new Uint8Array(256).map((_, i) => i)", bytes(range(256))),
    ("bin32", "new Uint8Array(65536).map((_, i) => i % 256)", bytes(range(256)) * 256),
    ("bin from an ArrayBuffer", "new Uint8Array([1, 2, 3]).buffer", b"\x01\x02\x03"),
    ("bin from a view", "new Uint8Array([9, 1, 2, 9]).subarray(1, 3)", b"\x01\x02"),
    ("bin from a Float32Array", "new Float32Array([1.5])", struct.pack("<f", 1.5)),
    ("fixarray empty", "[]", []),
    ("fixarray 15", "Array.from({ length: 15 }, (_, i) => i)", list(range(15))),
    ("array16", "Array.from({ length: 16 }, (_, i) => i)", list(range(16))),
    ("array32", "new Array(65536).fill(0)", [0] * 65536),
    ("array holes as nil", "[undefined, () => 1]", [None, None]),
    ("fixmap empty", "({})", {}),
    (
        "fixmap 15",
        "Object.fromEntries(Array.from({ length: 15 }, (_, i) => ['k' + i, i]))",
        {f"k{i}": i for i in range(15)},
    ),
    (
        "map16",
        "Object.fromEntries(Array.from({ length: 16 }, (_, i) => ['k' + i, i]))",
        {f"k{i}": i for i in range(16)},
    ),
    (
        "map32",
        "Object.fromEntries(Array.from({ length: 65536 }, (_, i) => ['k' + i, i]))",
        {f"k{i}": i for i in range(65536)},
    ),
    ("Map with number keys", "new Map([[1, 'a'], [-2, 'b']])", {1: "a", -2: "b"}),
    ("undefined properties left out", "({ a: undefined, b: 1, f() {} })", {"b": 1}),
    ("toJSON", "new Date(0)", "1970-01-01T00:00:00.000Z"),
    (
        "a subscribe frame",
        "({ type: 'subscribe', job_ids: ['j-1', 'j-2'] })",
        {"type": "subscribe", "job_ids": ["j-1", "j-2"]},
    ),
]


@pytest.mark.parametrize(
    ("expression", "expected"), [c[1:] for c in ENCODE_CASES], ids=[c[0] for c in ENCODE_CASES]
)
def test_the_encoder_writes_what_python_packs(
    codec_page: BrowserPage, expression: str, expected: Any
):
    encoded = codec_page.page.evaluate(
        "source => harness.hexOf(harness.msgpack.encode(new Function(`return (${source});`)()))",
        expression,
    )
    data = bytes.fromhex(encoded)
    assert describe(unpack(data)) == describe(expected)
    # The same bytes as msgpack-python: every value in its smallest format.
    assert data == msgpack.packb(expected)


ENCODE_ERRORS = [
    ("bigint over 64 bits", "2n ** 64n", "64-bit"),
    ("bigint under int64", "-(2n ** 63n) - 1n", "64-bit"),
    ("a cycle", "(() => { const a = {}; a.self = a; return a; })()", "nested"),
    ("a symbol", "Symbol('x')", "symbol"),
    ("a function", "() => 1", "function"),
]


@pytest.mark.parametrize(
    ("expression", "fragment"), [c[1:] for c in ENCODE_ERRORS], ids=[c[0] for c in ENCODE_ERRORS]
)
def test_the_encoder_refuses(codec_page: BrowserPage, expression: str, fragment: str):
    error = codec_page.page.evaluate(
        """source => {
          try {
            const value = new Function(`return (${source});`)();
            return { hex: harness.hexOf(harness.msgpack.encode(value)) };
          } catch (error) {
            return { name: error.name, message: error.message };
          }
        }""",
        expression,
    )
    assert error.get("name") == "MsgpackError", error
    assert fragment in error["message"]


# The client's handshake and frames, against a stand-in WebSocket.

CLIENT_SETUP = """
  const { JobUpdates, FakeSocket } = harness;
  FakeSocket.made.length = 0;
  const events = [];
  const make = (extra = {}) => {
    const made = new JobUpdates({
      url: "ws://client.test/ws", WebSocket: FakeSocket, heartbeatInterval: 0,
      backoffInitial: 1, backoffMax: 1, ...options, ...extra,
    });
    for (const name of ["job_update", "job_state", "reset", "error", "open", "state"]) {
      made.on(name, (payload) => events.push([name, payload]));
    }
    return made;
  };
  let client = make();
"""


def run_client(page: Page, body: str, options: dict[str, Any], *args: Any) -> Any:
    """Run ``body`` in the page with ``client`` made from ``options`` and a FakeSocket
    (``make(extra)`` makes another, with more options); returns what ``body`` returns."""
    source = f"async ([options, args]) => {{ {CLIENT_SETUP} {body} }}"
    return page.evaluate(source, [options, list(args)])


def test_json_by_default_offers_no_subprotocol_and_sends_text(codec_page: BrowserPage):
    result = run_client(
        codec_page.page,
        """
        client.connect();
        const socket = FakeSocket.made[0];
        socket.open("");
        client.subscribe("j-1");
        socket.receive('{"type":"job_update","job_id":"j-1","status":"queued","data":null,"position":"1-0"}');
        return { args: socket.args, protocols: socket.protocols, sent: socket.sent,
                 encoding: client.encoding, position: client.position,
                 open: events.find(([name]) => name === "open")[1] };
        """,
        {},
    )
    assert result == {
        "args": 1,
        "protocols": None,
        "sent": ['{"type":"subscribe","job_ids":["j-1"]}'],
        "encoding": "json",
        "position": "1-0",
        "open": {"protocol": "", "encoding": "json", "extensions": ""},
    }


UPDATE = {
    "type": "job_update",
    "job_id": "j-1",
    "status": "completed",
    "data": {"rows": 3, "ratio": 0.25, "raw": b"\x00\x01", "big": 2**60, "tags": ["a", "é"]},
    "position": "1732570000000-7",
}


def test_msgpack_offers_its_subprotocol_and_speaks_binary_frames(codec_page: BrowserPage):
    result = run_client(
        codec_page.page,
        """
        client.connect();
        const socket = FakeSocket.made[0];
        const binaryType = socket.binaryType;
        socket.open("jobupdates.v1.msgpack");
        client.subscribe(["j-1", "j-2"]);
        client.send({ type: "ping" });
        const packed = harness.bytesOf(args[0]);
        socket.receive(packed.buffer);
        const update = events.find(([name]) => name === "job_update")[1];
        return { protocols: socket.protocols, binaryType, encoding: client.encoding,
                 sentAreBytes: socket.sent.every((data) => data instanceof Uint8Array),
                 sent: socket.sent.map(harness.hexOf), update: harness.describe(update),
                 position: client.position, state: client.state };
        """,
        {"encoding": "msgpack"},
        msgpack.packb(UPDATE).hex(),
    )
    assert result["protocols"] == [MSGPACK, "jobupdates.v1"]
    assert result["binaryType"] == "arraybuffer"
    assert result["encoding"] == "msgpack"
    assert result["sentAreBytes"]
    assert [unpack(bytes.fromhex(h)) for h in result["sent"]] == [
        {"type": "subscribe", "job_ids": ["j-1", "j-2"]},
        {"type": "ping"},
    ]
    assert result["update"] == describe(UPDATE)
    assert result["position"] == UPDATE["position"]
    assert result["state"] == "open"


def test_msgpack_falls_back_to_json_when_the_server_selects_jobupdates_v1(
    codec_page: BrowserPage,
):
    result = run_client(
        codec_page.page,
        """
        client.connect();
        const socket = FakeSocket.made[0];
        socket.open("jobupdates.v1");
        client.subscribe("j-1");
        socket.receive('{"type":"job_update","job_id":"j-1","status":"queued","data":{"k":1}}');
        return { protocols: socket.protocols, encoding: client.encoding, sent: socket.sent,
                 update: events.find(([name]) => name === "job_update")[1] };
        """,
        {"encoding": "msgpack"},
    )
    assert result == {
        "protocols": [MSGPACK, "jobupdates.v1"],
        "encoding": "json",
        "sent": ['{"type":"subscribe","job_ids":["j-1"]}'],
        "update": {"type": "job_update", "job_id": "j-1", "status": "queued", "data": {"k": 1}},
    }


@pytest.mark.parametrize(
    ("encoding", "offered"),
    [("json", ["jobupdates.v1"]), ("msgpack", [MSGPACK, "jobupdates.v1"])],
)
def test_a_fresh_token_is_offered_after_the_subprotocols_on_every_attempt(
    codec_page: BrowserPage, encoding: str, offered: list[str]
):
    result = run_client(
        codec_page.page,
        """
        let calls = 0;
        client = make({ token: async () => `t${++calls}` });
        client.connect();
        await harness.until(() => FakeSocket.made.length === 1, "the first socket");
        const msgpack = options.encoding === "msgpack";
        FakeSocket.made[0].open(msgpack ? "jobupdates.v1.msgpack" : "jobupdates.v1");
        FakeSocket.made[0].drop(1006);
        await harness.until(() => FakeSocket.made.length === 2, "the second socket");
        return { calls, offered: FakeSocket.made.map((socket) => socket.protocols) };
        """,
        {"encoding": encoding},
    )
    assert result == {
        "calls": 2,
        "offered": [[*offered, "token.t1"], [*offered, "token.t2"]],
    }


def test_a_failed_token_call_is_a_failed_attempt(codec_page: BrowserPage):
    result = run_client(
        codec_page.page,
        """
        let calls = 0;
        client = make({
          token: () => {
            calls += 1;
            if (calls === 1) throw new Error("no session");
            return Promise.reject(new Error("still none"));
          },
        });
        client.connect();
        await harness.until(() => calls >= 2, "a retry after the failed token call");
        client.disconnect();
        const retries = events.filter(
          ([name, change]) => name === "state" && change.state === "reconnecting",
        );
        const reasons = retries.map(([, change]) => change.reason);
        return { made: FakeSocket.made.length, reasons };
        """,
        {},
    )
    assert result["made"] == 0
    assert result["reasons"][:2] == [
        "cannot get a token: no session",
        "cannot get a token: still none",
    ]


def test_a_token_that_is_not_a_function_is_refused(codec_page: BrowserPage):
    message = codec_page.page.evaluate(
        """() => { try { new harness.JobUpdates({ token: "abc" }); return null; }
                   catch (error) { return error.message; } }"""
    )
    assert message is not None
    assert "function" in message


def test_a_bad_binary_frame_is_an_error_event_and_the_connection_stays(codec_page: BrowserPage):
    result = run_client(
        codec_page.page,
        """
        client.connect();
        const socket = FakeSocket.made[0];
        socket.open("jobupdates.v1.msgpack");
        socket.receive(new Uint8Array([0xd4, 0x01, 0x78]).buffer);
        socket.receive(harness.bytesOf(args[0]).buffer);
        return { errors: events.filter(([name]) => name === "error").map(([, e]) => e.code),
                 updates: events.filter(([name]) => name === "job_update").length,
                 state: client.state, closed: socket.closed ?? null };
        """,
        {"encoding": "msgpack"},
        msgpack.packb(UPDATE).hex(),
    )
    assert result == {
        "errors": ["client_invalid_msgpack"],
        "updates": 1,
        "state": "open",
        "closed": None,
    }


def test_a_job_state_never_moves_the_position_back(codec_page: BrowserPage):
    """A job's latest state can be older than updates of other jobs already seen:
    resuming from it would replay those again."""
    positions = run_client(
        codec_page.page,
        """
        client.connect();
        const socket = FakeSocket.made[0];
        socket.open("");
        const seen = [];
        const frame = (type, position) =>
          JSON.stringify({ type, job_id: "j", status: "queued", data: null, position });
        socket.receive(frame("job_update", "1732570000000-10"));
        seen.push(client.position);
        socket.receive(frame("job_state", "1732570000000-9"));
        seen.push(client.position);
        socket.receive(frame("job_state", "999-0"));
        seen.push(client.position);
        socket.receive(frame("job_state", "1732570000001-0"));
        seen.push(client.position);
        socket.receive('{"type":"reset","reason":"position_too_old"}');
        seen.push(client.position);
        socket.receive(frame("job_state", "5-0"));
        seen.push(client.position);
        return seen;
        """,
        {},
    )
    assert positions == [
        "1732570000000-10",
        "1732570000000-10",
        "1732570000000-10",
        "1732570000001-0",
        None,
        "5-0",
    ]


def test_an_unasked_unsubscribed_drops_the_jobs_so_a_reconnect_does_not_ask_for_them(
    codec_page: BrowserPage,
):
    """The server narrowed the connection (permission_revoked): asking for the lost
    jobs again on the next connect would be refused with 4403."""
    result = run_client(
        codec_page.page,
        """
        client.connect();
        const socket = FakeSocket.made[0];
        socket.open("");
        socket.receive('{"type":"unsubscribed","job_ids":["b"]}');
        const asked = [...client.jobs].sort();
        socket.receive('{"type":"unsubscribed","job_ids":["a"],"reason":"permission_revoked"}');
        return { asked, after: [...client.jobs].sort() };
        """,
        {"jobs": ["a", "b", "c"]},
    )
    # an acknowledgement (no reason) changes nothing: the client forgets a job when it asks
    assert result == {"asked": ["a", "b", "c"], "after": ["b", "c"]}


# End to end: the module on the real stack.


def publish(stack: Stack, job_id: str, status: str, data: object = None) -> int:
    """PUBLISH on the updates channel, as a worker does."""
    client = redis.Redis.from_url(stack.redis.url)
    try:
        return int(client.publish(CHANNEL, job_update(job_id, status, data)))
    finally:
        client.close()


def open_module_page(recorded: BrowserPage, **query: str) -> Page:
    """Log in, then write the test page into the site's home page (same origin, no
    script of its own).

    Written with ``set_content`` rather than served by a route: Chromium's Local
    Network Access checks block a routed document's WebSocket to 127.0.0.1 (it has
    no address of its own), while a document the site served keeps its loopback one.
    """
    page = recorded.page
    log_in(recorded)
    page.goto("/" + (f"?{urllib.parse.urlencode(query)}" if query else ""))
    page.set_content(PAGE)
    wait_ready(page)
    return page


def wait_open(page: Page, name: str, count: int = 1) -> None:
    page.wait_for_function(
        "([name, count]) => harness.seen[name].opened.length >= count", arg=[name, count]
    )


def wait_updates(page: Page, name: str, count: int) -> list[dict[str, Any]]:
    page.wait_for_function(
        "([name, count]) => harness.seen[name].updates.length >= count", arg=[name, count]
    )
    updates: list[dict[str, Any]] = page.evaluate(
        "name => JSON.parse(JSON.stringify(harness.seen[name].updates))", name
    )
    return updates


def test_a_module_script_imports_the_client_and_receives_an_update(
    console_page: BrowserPage, live_site: Stack
):
    page = open_module_page(console_page, connect="json")
    exports = page.evaluate(
        """() => ({
          sameDefault: harness.DefaultJobUpdates === harness.JobUpdates,
          sameGlobal: globalThis.JobUpdates === harness.JobUpdates,
          states: Object.values(harness.State),
          codec: Object.keys(harness.msgpack).sort(),
          scripts: Array.from(document.scripts, (s) => s.type || "classic"),
        })"""
    )
    assert exports == {
        "sameDefault": True,
        "sameGlobal": True,
        "states": ["closed", "connecting", "open", "reconnecting"],
        "codec": ["MsgpackError", "decode", "encode"],
        "scripts": ["module"],
    }
    wait_open(page, "json")
    assert publish(live_site, "j-module", "completed", {"k": "v"}) == 1
    [update] = wait_updates(page, "json", 1)
    assert update["type"] == "job_update"
    assert update["job_id"] == "j-module"
    assert update["status"] == "completed"
    assert update["data"] == {"k": "v"}
    assert update["position"] == page.evaluate("harness.clients.json.position")
    assert page.evaluate("harness.seen.json.opened[0].encoding") == "json"
    console_page.assert_no_console_errors()
    failed = [r for r in console_page.failed_requests if "/static/jobupdates/jobupdates" in r]
    assert not failed, failed


PUBLISHED = [
    ("j-mp-1", "queued", None),
    ("j-mp-2", "processing", {"rows": 3, "ratio": 0.25, "ok": True, "none": None}),
    ("j-mp-1", "completed", {"tags": ["a", "é", "日本", "😀"], "nested": {"list": [1, [2, [3]]]}}),
    ("j-mp-3", "failed", {"error": "x" * 300, "negative": -40000, "large": 2**40, "float": 1.0}),
]


def test_a_msgpack_client_receives_the_same_updates_as_a_json_one_in_binary_frames(
    console_page: BrowserPage, live_site: Stack
):
    frames: dict[str, list[tuple[str, str | bytes]]] = {}

    def record(socket: WebSocket) -> None:
        log = frames.setdefault(urllib.parse.urlsplit(socket.url).path, [])
        socket.on("framereceived", lambda payload: log.append(("received", payload)))
        socket.on("framesent", lambda payload: log.append(("sent", payload)))

    console_page.page.on("websocket", record)
    page = open_module_page(console_page, connect="json,msgpack")
    wait_open(page, "json")
    wait_open(page, "msgpack")
    assert page.evaluate("harness.seen.msgpack.opened[0]") == {
        "protocol": MSGPACK,
        "encoding": "msgpack",
        "extensions": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    }, "expected the server to select jobupdates.v1.msgpack (and Chromium's deflate offer)"

    for job_id, status, data in PUBLISHED:
        assert publish(live_site, job_id, status, data) == 1  # the bridge
    as_json = wait_updates(page, "json", len(PUBLISHED))
    as_msgpack = wait_updates(page, "msgpack", len(PUBLISHED))
    assert [(u["job_id"], u["status"], u["data"]) for u in as_json] == PUBLISHED
    assert as_msgpack == as_json

    # The client's own messages go as MessagePack too, and the server understands them.
    page.evaluate("harness.clients.msgpack.send({ type: 'ping' })")
    page.wait_for_function("harness.seen.msgpack.types.includes('pong')")
    page.evaluate("harness.clients.msgpack.subscribe('j-mp-only')")
    page.wait_for_function("harness.seen.msgpack.types.includes('subscribed')")
    publish(live_site, "j-mp-other", "queued")
    publish(live_site, "j-mp-only", "queued")
    narrowed = wait_updates(page, "msgpack", len(PUBLISHED) + 1)
    assert [u["job_id"] for u in narrowed[len(PUBLISHED) :]] == ["j-mp-only"]
    wait_updates(page, "json", len(PUBLISHED) + 2)

    binary, text = frames["/ws/"], frames["/ws"]
    assert binary
    assert all(isinstance(payload, bytes) for _, payload in binary), binary[:3]
    assert text
    assert all(isinstance(payload, str) for _, payload in text), text[:3]
    sent = [unpack(payload) for kind, payload in binary if kind == "sent"]
    assert sent == [{"type": "ping"}, {"type": "subscribe", "job_ids": ["j-mp-only"]}]
    received = [unpack(payload) for kind, payload in binary if kind == "received"]
    assert received[0]["type"] == "welcome"
    assert [m for m in received if m["type"] == "job_update"][: len(PUBLISHED)] == as_json
    assert page.evaluate("harness.seen.msgpack.errors") == []
    console_page.assert_no_console_errors()


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_a_token_function_authenticates_every_attempt_without_a_session(
    console_page: BrowserPage, live_site: Stack, encoding: str
):
    """Two tokens minted by POST /ws/token, then the session dropped: only the
    tokens can authenticate the first connection and the reconnection."""
    page = open_module_page(console_page)
    tokens = page.evaluate(
        """async () => {
          const csrf = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/)[1];
          const mint = async () => {
            const headers = { "X-CSRFToken": csrf };
            const answer = await fetch("/ws/token", { method: "POST", headers });
            return (await answer.json()).token;
          };
          return [await mint(), await mint()];
        }"""
    )
    assert len(set(tokens)) == 2
    page.context.clear_cookies()
    page.evaluate(
        """([encoding, tokens]) => {
          window.tokenCalls = 0;
          const client = new harness.JobUpdates({
            encoding, backoffInitial: 1, backoffMax: 1,
            token: async () => tokens[window.tokenCalls++],
          });
          harness.track("token", client).connect();
        }""",
        [encoding, tokens],
    )
    wait_open(page, "token")
    page.evaluate("harness.clients.token.disconnect(); harness.clients.token.connect()")
    wait_open(page, "token", 2)
    opened = page.evaluate("harness.seen.token.opened")
    expected = MSGPACK if encoding == "msgpack" else "jobupdates.v1"
    assert [o["protocol"] for o in opened] == [expected, expected]
    assert page.evaluate("window.tokenCalls") == 2
    assert publish(live_site, "j-token", "completed") == 1
    [update] = wait_updates(page, "token", 1)
    assert update["job_id"] == "j-token"
    console_page.assert_no_console_errors()
