/**
 * jobupdates.js: a small, dependency-free client for the botrix job-updates
 * WebSocket (docs/protocol.md). No build step: load it with a plain
 * `<script src=".../jobupdates/jobupdates.js"></script>` and use the global
 * `JobUpdates`, `import { JobUpdates } from ".../jobupdates/jobupdates.mjs"`
 * (an ES module that imports this file and re-exports the global), or
 * `require()` it where `module.exports` exists.
 *
 * This file is both a classic script and a valid ES module body: no
 * top-level declaration, no top-level `this`, strict mode throughout. Keep it
 * that way: jobupdates.mjs runs it as a module.
 *
 * What it does for you:
 * - connects to `/ws` on the page's host (same origin, so the session cookie
 *   authenticates it);
 * - reconnects by itself with capped exponential backoff and full jitter,
 *   except after a close that says "do not come back" (4000, 4401, 4403) or
 *   a call to `disconnect()`; after 1012 (the server is restarting: a deploy)
 *   it comes back soon, after a random 0.5-3 s, so the clients of a stopping
 *   server spread over the others;
 * - resumes: it remembers the `position` of the last update it saw and
 *   reconnects with `?since=<position>`, so the server replays what it missed;
 *   when the server answers `reset` (position too old, or a gap the server
 *   recorded), it emits `reset`: throw away your job table and rebuild it
 *   from what follows;
 * - sends an application-level `ping` every `heartbeatInterval` ms and treats
 *   a connection on which nothing arrives within `heartbeatTimeout` ms of a
 *   ping as dead, so a half-open connection is replaced within
 *   `heartbeatInterval + heartbeatTimeout` ms; a connection attempt that does
 *   not open within `connectTimeout` ms is abandoned the same way;
 * - keeps a set of subscribed jobs (`?job=` on connect, `subscribe` and
 *   `unsubscribe` frames once open); with none it receives the all-jobs feed;
 * - speaks JSON text frames, or MessagePack binary frames with
 *   `encoding: "msgpack"` (subprotocol `jobupdates.v1.msgpack`; a server that
 *   selects plain `jobupdates.v1` gets JSON); `JobUpdates.msgpack` is the
 *   codec, `{encode, decode}`;
 * - authenticates with a single-use token (`token.<token>` subprotocol) when
 *   given a `token` function, called before every connection attempt.
 *
 * @example
 * const updates = new JobUpdates({ heartbeatInterval: 15000 });
 * updates.on("job_update", (frame) => console.log(frame.job_id, frame.status));
 * updates.on("state", ({ state, code }) => console.log("connection", state, code));
 * updates.on("reset", () => jobs.clear());
 * updates.connect();
 *
 * @license MIT
 */
(function (root, factory) {
  "use strict";
  const JobUpdates = factory();
  if (typeof module === "object" && module && module.exports) {
    module.exports = JobUpdates;
  }
  root.JobUpdates = JobUpdates;
})(globalThis, function () {
  "use strict";

  /** Close codes after which the client does not reconnect by itself. */
  const FINAL_CLOSE_CODES = Object.freeze({
    4000: "disconnected by staff",
    4401: "not logged in",
    4403: "forbidden",
  });

  /** Close code the client uses when it drops a connection it judged dead. */
  const DEAD_CONNECTION_CODE = 4999;

  /** Close code of a server that drains for a deploy (Service Restart). */
  const SERVICE_RESTART_CODE = 1012;

  /** Reconnect delay after a 1012, in ms: drawn uniformly from [min, max]. */
  const RESTART_DELAY = Object.freeze({ min: 500, max: 3000 });

  /** Subprotocol of JSON text frames (docs/protocol.md). */
  const JSON_SUBPROTOCOL = "jobupdates.v1";

  /** Subprotocol of MessagePack binary frames, offered with `encoding: "msgpack"`. */
  const MSGPACK_SUBPROTOCOL = "jobupdates.v1.msgpack";

  /** Prefix of the subprotocol that carries a token. */
  const TOKEN_PREFIX = "token.";

  // MessagePack (https://github.com/msgpack/msgpack/blob/master/spec.md): the
  // subset a JSON value needs, plus bin. Each frame is one value.

  /** Deepest nesting of arrays and maps the codec handles, either way (the
   *  server's msgpack-python packs at most 511 levels, and unpacks 1024). */
  const MAX_DEPTH = 1000;

  /** An input the MessagePack codec cannot decode, or a value it cannot encode. */
  class MsgpackError extends Error {
    /** @param {string} message */
    constructor(message) {
      super(message);
      this.name = "MsgpackError";
    }
  }

  const utf8Encoder = new TextEncoder();
  const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
  const UINT64_MAX = (1n << 64n) - 1n;
  const INT64_MIN = -(1n << 63n);

  /** DataView setters by size in bytes: [unsigned, signed]. */
  const SETTERS = Object.freeze({
    1: ["setUint8", "setInt8"],
    2: ["setUint16", "setInt16"],
    4: ["setUint32", "setInt32"],
    8: ["setBigUint64", "setBigInt64"],
  });

  /** Type codes of each kind of header: [fix code, fix limit, 8-bit, 16-bit, 32-bit]. */
  const HEADERS = Object.freeze({
    str: [0xa0, 32, 0xd9, 0xda, 0xdb],
    bin: [null, 0, 0xc4, 0xc5, 0xc6],
    array: [0x90, 16, null, 0xdc, 0xdd],
    map: [0x80, 16, null, 0xde, 0xdf],
  });

  /** A growing byte buffer for the encoder. */
  class Writer {
    constructor() {
      this.bytes = new Uint8Array(256);
      this.view = new DataView(this.bytes.buffer);
      this.length = 0;
    }

    /** Make room for `size` more bytes; returns the offset to write them at. It
     *  may replace `bytes` and `view`: read them only after calling it. */
    reserve(size) {
      const offset = this.length;
      if (offset + size > this.bytes.length) {
        let capacity = this.bytes.length * 2;
        while (capacity < offset + size) capacity *= 2;
        const bytes = new Uint8Array(capacity);
        bytes.set(this.bytes.subarray(0, offset));
        this.bytes = bytes;
        this.view = new DataView(bytes.buffer);
      }
      this.length = offset + size;
      return offset;
    }

    u8(value) {
      const at = this.reserve(1);
      this.bytes[at] = value;
    }

    /** A one-byte type code, then `value` in `size` bytes (1, 2, 4, 8), big-endian. */
    typed(code, size, value, signed = false) {
      this.u8(code);
      const at = this.reserve(size);
      const setter = SETTERS[size][signed ? 1 : 0];
      this.view[setter](at, size === 8 ? BigInt(value) : value);
    }

    raw(bytes) {
      const at = this.reserve(bytes.length);
      this.bytes.set(bytes, at);
    }
  }

  /** The header of a str, bin, array or map of `length` items or bytes. */
  function writeHeader(writer, kind, length) {
    const codes = HEADERS[kind];
    if (length < codes[1]) writer.u8(codes[0] | length);
    else if (length < 0x100 && codes[2] !== null) writer.typed(codes[2], 1, length);
    else if (length < 0x10000) writer.typed(codes[3], 2, length);
    else if (length <= 0xffffffff) writer.typed(codes[4], 4, length);
    else throw new MsgpackError(`cannot encode a ${kind} of ${length} items`);
  }

  /** An integer in the smallest format that holds it (as msgpack-python does). */
  function writeInteger(writer, value) {
    if (value >= 0) {
      if (value < 0x80) writer.u8(value);
      else if (value < 0x100) writer.typed(0xcc, 1, value);
      else if (value < 0x10000) writer.typed(0xcd, 2, value);
      else if (value < 0x100000000) writer.typed(0xce, 4, value);
      else writer.typed(0xcf, 8, value);
    } else if (value >= -32) writer.u8(value & 0xff);
    else if (value >= -0x80) writer.typed(0xd0, 1, value, true);
    else if (value >= -0x8000) writer.typed(0xd1, 2, value, true);
    else if (value >= -0x80000000) writer.typed(0xd2, 4, value, true);
    else writer.typed(0xd3, 8, value, true);
  }

  /** Whether an object property or array item of this value is left out (as JSON does). */
  function omitted(value) {
    return value === undefined || typeof value === "function" || typeof value === "symbol";
  }

  function writeValue(writer, value, depth) {
    if (depth > MAX_DEPTH) {
      throw new MsgpackError(`cannot encode values nested over ${MAX_DEPTH} deep (a cycle?)`);
    }
    if (value === null || value === undefined) {
      writer.u8(0xc0);
    } else if (typeof value === "boolean") {
      writer.u8(value ? 0xc3 : 0xc2);
    } else if (typeof value === "number") {
      if (Number.isSafeInteger(value) && !Object.is(value, -0)) {
        writeInteger(writer, value);
      } else {
        writer.u8(0xcb);
        const at = writer.reserve(8);
        writer.view.setFloat64(at, value);
      }
    } else if (typeof value === "bigint") {
      if (value > UINT64_MAX || value < INT64_MIN) {
        throw new MsgpackError(`cannot encode ${value}: outside the 64-bit integers`);
      }
      if (value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)) {
        writeInteger(writer, Number(value));
      } else if (value > 0n) {
        writer.typed(0xcf, 8, value);
      } else {
        writer.typed(0xd3, 8, value, true);
      }
    } else if (typeof value === "string") {
      const bytes = utf8Encoder.encode(value);
      writeHeader(writer, "str", bytes.length);
      writer.raw(bytes);
    } else if (typeof value !== "object") {
      throw new MsgpackError(`cannot encode a ${typeof value}`);
    } else if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
      const bytes = ArrayBuffer.isView(value)
        ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
        : new Uint8Array(value);
      writeHeader(writer, "bin", bytes.length);
      writer.raw(bytes);
    } else if (Array.isArray(value)) {
      writeHeader(writer, "array", value.length);
      for (const item of value) writeValue(writer, omitted(item) ? null : item, depth + 1);
    } else if (value instanceof Map) {
      writeHeader(writer, "map", value.size);
      value.forEach((item, key) => {
        writeValue(writer, key, depth + 1);
        writeValue(writer, item, depth + 1);
      });
    } else if (typeof value.toJSON === "function") {
      writeValue(writer, value.toJSON(), depth + 1);
    } else {
      const keys = Object.keys(value).filter((key) => !omitted(value[key]));
      writeHeader(writer, "map", keys.length);
      for (const key of keys) {
        writeValue(writer, key, depth + 1);
        writeValue(writer, value[key], depth + 1);
      }
    }
  }

  /**
   * Encode one value as MessagePack: objects and `Map`s as maps, arrays,
   * strings, `Uint8Array`/`ArrayBuffer` (and other views) as bin, `null` and
   * `undefined` as nil, booleans, integers in their smallest format (`BigInt`
   * up to 64 bits), other numbers as float64. As with JSON, object properties
   * whose value is `undefined`, a function or a symbol are left out, and
   * objects with a `toJSON()` method are encoded as what it returns.
   * @param {unknown} value
   * @returns {Uint8Array}
   * @throws {MsgpackError} For a value it cannot encode.
   */
  function encode(value) {
    const writer = new Writer();
    writeValue(writer, value, 0);
    return writer.bytes.slice(0, writer.length);
  }

  /** Reads one value from bytes; `at` is the offset of the next byte. */
  class Reader {
    /** @param {Uint8Array} bytes */
    constructor(bytes) {
      this.bytes = bytes;
      this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      this.at = 0;
    }

    /** Claim `size` bytes; returns their offset. */
    take(size) {
      const offset = this.at;
      if (offset + size > this.bytes.length) {
        throw new MsgpackError(`truncated: expected ${size} more bytes at offset ${offset}`);
      }
      this.at = offset + size;
      return offset;
    }

    /** An unsigned integer of `size` bytes, as a Number (sizes 1, 2, 4). */
    length(size) {
      const at = this.take(size);
      if (size === 1) return this.view.getUint8(at);
      return size === 2 ? this.view.getUint16(at) : this.view.getUint32(at);
    }

    /** `size` bytes, as a view (not a copy). */
    slice(size) {
      const at = this.take(size);
      return this.bytes.subarray(at, at + size);
    }
  }

  /** A 64-bit integer: a Number when it is safe, else a BigInt. */
  function safe(big) {
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(big)
      : big;
  }

  function readString(reader, size) {
    try {
      return utf8Decoder.decode(reader.slice(size));
    } catch (error) {
      if (error instanceof MsgpackError) throw error;
      throw new MsgpackError(`a str that is not valid UTF-8 at offset ${reader.at - size}`);
    }
  }

  function readArray(reader, count, depth) {
    const left = reader.bytes.length - reader.at;
    if (count > left) {
      throw new MsgpackError(`truncated: an array of ${count} items in ${left} bytes`);
    }
    const items = new Array(count);
    for (let i = 0; i < count; i += 1) items[i] = readValue(reader, depth + 1);
    return items;
  }

  function readMap(reader, count, depth) {
    const left = reader.bytes.length - reader.at;
    if (count * 2 > left) {
      throw new MsgpackError(`truncated: a map of ${count} entries in ${left} bytes`);
    }
    const map = {};
    for (let i = 0; i < count; i += 1) {
      const offset = reader.at;
      const key = readValue(reader, depth + 1);
      if (key !== null && typeof key === "object") {
        throw new MsgpackError(`a map key that is not a string or a number at offset ${offset}`);
      }
      // Keys become strings, as in JSON (Python's json turns None into "null").
      const name = key === null ? "null" : String(key);
      const value = readValue(reader, depth + 1);
      if (name === "__proto__") {
        // An own property, as JSON.parse makes it; assigning would set the prototype.
        Object.defineProperty(map, name, {
          value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else {
        map[name] = value;
      }
    }
    return map;
  }

  function readValue(reader, depth) {
    if (depth > MAX_DEPTH) throw new MsgpackError(`nested over ${MAX_DEPTH} deep`);
    const offset = reader.take(1);
    const code = reader.bytes[offset];
    const view = reader.view;
    if (code < 0x80) return code;
    if (code < 0x90) return readMap(reader, code & 0x0f, depth);
    if (code < 0xa0) return readArray(reader, code & 0x0f, depth);
    if (code < 0xc0) return readString(reader, code & 0x1f);
    if (code >= 0xe0) return code - 0x100;
    switch (code) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
      case 0xc5:
      case 0xc6:
        return reader.slice(reader.length(1 << (code - 0xc4))).slice();
      case 0xca:
        return view.getFloat32(reader.take(4));
      case 0xcb:
        return view.getFloat64(reader.take(8));
      case 0xcc:
        return view.getUint8(reader.take(1));
      case 0xcd:
        return view.getUint16(reader.take(2));
      case 0xce:
        return view.getUint32(reader.take(4));
      case 0xcf:
        return safe(view.getBigUint64(reader.take(8)));
      case 0xd0:
        return view.getInt8(reader.take(1));
      case 0xd1:
        return view.getInt16(reader.take(2));
      case 0xd2:
        return view.getInt32(reader.take(4));
      case 0xd3:
        return safe(view.getBigInt64(reader.take(8)));
      case 0xd9:
      case 0xda:
      case 0xdb:
        return readString(reader, reader.length(1 << (code - 0xd9)));
      case 0xdc:
      case 0xdd:
        return readArray(reader, reader.length(code === 0xdc ? 2 : 4), depth);
      case 0xde:
      case 0xdf:
        return readMap(reader, reader.length(code === 0xde ? 2 : 4), depth);
      case 0xc7:
      case 0xc8:
      case 0xc9:
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        throw new MsgpackError(
          `an ext value (type code 0x${code.toString(16)}) at offset ${offset}: not supported`,
        );
      default: // 0xc1, never used
        throw new MsgpackError(`the reserved type code 0x${code.toString(16)} at offset ${offset}`);
    }
  }

  /**
   * Decode exactly one MessagePack value: maps as plain objects (keys as
   * strings), arrays, str as strings, bin as `Uint8Array`, nil as `null`,
   * booleans, float32/float64 and integers as Numbers, except 64-bit integers
   * beyond `Number.MAX_SAFE_INTEGER` (either sign), which become `BigInt`s.
   * @param {ArrayBuffer|ArrayBufferView} input
   * @returns {unknown}
   * @throws {MsgpackError} For an ext value, the reserved code 0xc1, invalid
   *   UTF-8, a map key that is a map, array or bin, truncated input, or bytes
   *   left over after the value.
   */
  function decode(input) {
    let bytes;
    if (input instanceof ArrayBuffer) bytes = new Uint8Array(input);
    else if (ArrayBuffer.isView(input)) {
      bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    } else {
      const kind = Object.prototype.toString.call(input);
      throw new MsgpackError(`expected an ArrayBuffer or a view of one, got ${kind}`);
    }
    const reader = new Reader(bytes);
    const value = readValue(reader, 0);
    if (reader.at !== bytes.length) {
      throw new MsgpackError(`${bytes.length - reader.at} bytes left over after the value`);
    }
    return value;
  }

  /**
   * The MessagePack codec the client uses for `jobupdates.v1.msgpack`.
   * @type {Readonly<{
   *   encode: typeof encode, decode: typeof decode, MsgpackError: typeof MsgpackError
   * }>}
   */
  const msgpack = Object.freeze({ encode, decode, MsgpackError });

  const POSITION = /^(\d+)-(\d+)$/;

  /**
   * Whether `position` comes after `current` (positions compare as pairs of
   * integers, docs/protocol.md); true when either is not a position.
   * @param {string} position
   * @param {string|null} current
   */
  function isAfter(position, current) {
    const a = POSITION.exec(position);
    const b = current === null ? null : POSITION.exec(current);
    if (!a || !b) return true;
    const [ams, aseq, bms, bseq] = [a[1], a[2], b[1], b[2]].map(BigInt);
    return ams > bms || (ams === bms && aseq > bseq);
  }

  /**
   * Connection states, in the order a connection goes through them.
   * @readonly
   * @enum {string}
   */
  const State = Object.freeze({
    /** Not connected and not trying: before `connect()`, after `disconnect()`
     *  or after a final close code. */
    CLOSED: "closed",
    /** Opening a WebSocket. */
    CONNECTING: "connecting",
    /** Open: frames flow. */
    OPEN: "open",
    /** Lost the connection; waiting `delay` ms before the next attempt. */
    RECONNECTING: "reconnecting",
  });

  /**
   * @typedef {Object} JobUpdatesOptions
   * @property {string} [url] WebSocket URL. Default: `ws(s)://<page host>/ws`.
   * @property {Iterable<string>} [jobs] Jobs to subscribe to from the start
   *   (`?job=`). Default: none, i.e. the all-jobs feed.
   * @property {string|null} [since] Position to resume from on the first
   *   connection. Default: none (live updates only).
   * @property {boolean} [reconnect=true] Reconnect after a lost connection.
   * @property {number} [backoffInitial=500] Ceiling of the first reconnect
   *   delay, in ms; each failed attempt doubles it.
   * @property {number} [backoffMax=30000] Largest delay ceiling, in ms. Each
   *   delay is drawn uniformly from [0, ceiling] ("full jitter").
   * @property {number} [stableAfter=5000] A connection open this long (ms)
   *   resets the backoff.
   * @property {number} [heartbeatInterval=15000] Send `{"type":"ping"}` this
   *   often (ms) while open; 0 turns the heartbeat off.
   * @property {number} [heartbeatTimeout=10000] Drop the connection if no
   *   frame at all arrives within this many ms of a ping.
   * @property {number} [connectTimeout=10000] Abandon an attempt that has not
   *   opened within this many ms (counting the `token` call).
   * @property {"json"|"msgpack"} [encoding="json"] `"msgpack"` offers the
   *   subprotocols `jobupdates.v1.msgpack, jobupdates.v1`: a server that selects
   *   the first sends every message as a binary MessagePack frame and gets the
   *   client's the same way; one that selects plain `jobupdates.v1` speaks JSON.
   * @property {() => (string|Promise<string>)} [token] Called before every
   *   connection attempt for a fresh single-use token (from `POST /ws/token`),
   *   offered as the subprotocol `token.<token>` after the protocol's own
   *   (`jobupdates.v1, token.<token>`). Tokens are single-use, hence a function.
   *   An attempt whose call throws or rejects counts as a failed attempt.
   * @property {typeof WebSocket} [WebSocket] WebSocket constructor (for tests
   *   or non-browser runtimes). Default: the global one.
   */

  /**
   * The payload of a `state` event.
   * @typedef {Object} StateChange
   * @property {State} state The new state.
   * @property {State} previous The state before.
   * @property {number} [code] Close code of the connection that ended, if any.
   * @property {string} [reason] Why: the close reason, or the client's own
   *   explanation ("heartbeat timeout", "connect timeout", ...).
   * @property {number} [delay] In `reconnecting`: ms until the next attempt.
   * @property {number} [attempt] In `reconnecting`: 1 for the first retry.
   */

  /**
   * A job-updates WebSocket client.
   *
   * Events (subscribe with {@link JobUpdates#on}); each listener gets the
   * parsed frame unless noted:
   * - `welcome`: `{type, client_id}`, once per connection;
   * - `job_update`: `{type, job_id, status, data, position?}`; with MessagePack,
   *   bin values in `data` are `Uint8Array`s and 64-bit integers beyond
   *   `Number.MAX_SAFE_INTEGER` are `BigInt`s;
   * - `job_state`: `{type, job_id, status, data, position?}`, a job's latest
   *   state, sent when you subscribe to it;
   * - `reset`: `{type, reason, message, position?}`: updates were missed (the
   *   position was unknown, or the server recorded a gap: `updates_lost`);
   *   clear your state and rebuild it from what follows;
   * - `subscribed` / `unsubscribed`: `{type, job_ids}`, acknowledgements; an
 *   `unsubscribed` with a `reason` (`permission_revoked`) is the server's own:
 *   the user lost those jobs, and the client forgets them (`client.jobs`);
   * - `pong`: `{type}`;
   * - `error`: `{type, code, message}`, an error frame from the server, or the
   *   client's own `client_invalid_json` / `client_invalid_msgpack` for a frame
   *   it could not decode;
   * - `message`: every frame, before its own event;
   * - `send`: every frame the client sends (an object), after sending it;
   * - `state`: a {@link StateChange}, on every change of connection state;
   * - `open`: `{protocol, encoding, extensions}`, the subprotocol the server
   *   selected ("" for none), the encoding in use, and the extensions negotiated
   *   (`"permessage-deflate; ..."` when updates come compressed, else "");
   * - `close`: `{code, reason}`.
   */
  class JobUpdates {
    /** @param {JobUpdatesOptions} [options] */
    constructor(options = {}) {
      const encoding = options.encoding ?? "json";
      if (encoding !== "json" && encoding !== "msgpack") {
        throw new TypeError(
          `expected encoding "json" or "msgpack", got ${JSON.stringify(encoding)}`,
        );
      }
      if (options.token != null && typeof options.token !== "function") {
        throw new TypeError(
          "expected token to be a function returning a fresh token (tokens are single-use)",
        );
      }
      /** @type {Required<Omit<JobUpdatesOptions, "jobs"|"since"|"url"|"token"|"WebSocket">>} */
      this.options = {
        encoding,
        reconnect: options.reconnect !== false,
        backoffInitial: options.backoffInitial ?? 500,
        backoffMax: options.backoffMax ?? 30000,
        stableAfter: options.stableAfter ?? 5000,
        heartbeatInterval: options.heartbeatInterval ?? 15000,
        heartbeatTimeout: options.heartbeatTimeout ?? 10000,
        connectTimeout: options.connectTimeout ?? 10000,
      };
      /** @type {string} WebSocket URL, without the query. */
      this.url = options.url || JobUpdates.defaultUrl();
      /** @type {State} */
      this.state = State.CLOSED;
      /** @type {string|null} Position of the last update seen; sent as `since`. */
      this.position = options.since ?? null;
      /** @type {string|null} The server's id for the current connection. */
      this.clientId = null;
      /** @type {Set<string>} Jobs subscribed to; empty means the all-jobs feed. */
      this.jobs = new Set(options.jobs ? Array.from(options.jobs, String) : []);
      /** @type {number|null} `Date.now()` when the current connection opened. */
      this.openedAt = null;
      /** @type {"json"|"msgpack"|null} The current connection's encoding, once open. */
      this.encoding = null;
      /** @type {string|null} The current connection's negotiated extensions, once open. */
      this.extensions = null;
      this._token = options.token || null;
      this._WebSocket = options.WebSocket || globalThis.WebSocket;
      this._generation = 0;
      this._listeners = new Map();
      this._ws = null;
      this._attempt = 0;
      this._timers = {};
      this._wanted = false;
      this._onOnline = () => {
        if (this.state === State.RECONNECTING) this._open();
      };
    }

    /** @returns {string} `ws://` or `wss://` plus the page's host and `/ws`. */
    static defaultUrl() {
      const { protocol, host } = globalThis.location;
      return `${protocol === "https:" ? "wss:" : "ws:"}//${host}/ws`;
    }

    /**
     * Add a listener.
     * @param {string} event An event name (see the class description).
     * @param {(payload: any) => void} listener
     * @returns {() => void} A function that removes the listener.
     */
    on(event, listener) {
      if (!this._listeners.has(event)) this._listeners.set(event, new Set());
      this._listeners.get(event).add(listener);
      return () => this.off(event, listener);
    }

    /**
     * Remove a listener added with {@link JobUpdates#on}.
     * @param {string} event
     * @param {(payload: any) => void} listener
     */
    off(event, listener) {
      this._listeners.get(event)?.delete(listener);
    }

    /** Start connecting, and keep reconnecting until `disconnect()`. */
    connect() {
      this._wanted = true;
      this._attempt = 0;
      globalThis.addEventListener?.("online", this._onOnline);
      if (this.state === State.CLOSED || this.state === State.RECONNECTING) this._open();
    }

    /**
     * Close the connection and stop reconnecting. The position is kept, so
     * a later `connect()` resumes where this one stopped.
     * @param {number} [code=1000]
     * @param {string} [reason="client disconnect"]
     */
    disconnect(code = 1000, reason = "client disconnect") {
      this._wanted = false;
      globalThis.removeEventListener?.("online", this._onOnline);
      this._clearTimers();
      const ws = this._detach();
      if (ws) ws.close(code, reason);
      this._setState(State.CLOSED, { code, reason });
    }

    /**
     * Subscribe to jobs. While open, sends `{"type":"subscribe","job_ids":[...]}`
     * (the server answers `subscribed`, then a `job_state` per job); the jobs are
     * also remembered and requested with `?job=` on every reconnect.
     * @param {string|Iterable<string>} jobIds
     */
    subscribe(jobIds) {
      const ids = JobUpdates._ids(jobIds);
      ids.forEach((id) => this.jobs.add(id));
      if (ids.length) this.send({ type: "subscribe", job_ids: ids });
    }

    /**
     * Unsubscribe from jobs; once none is left, reconnects receive the
     * all-jobs feed.
     * @param {string|Iterable<string>} jobIds
     */
    unsubscribe(jobIds) {
      const ids = JobUpdates._ids(jobIds);
      ids.forEach((id) => this.jobs.delete(id));
      if (ids.length) this.send({ type: "unsubscribe", job_ids: ids });
    }

    /**
     * Send a frame if the connection is open: JSON text, or a binary
     * MessagePack frame when the server selected `jobupdates.v1.msgpack`.
     * @param {Object} frame A JSON-serialisable object with a `type`.
     * @returns {boolean} Whether it was sent.
     */
    send(frame) {
      if (this.state !== State.OPEN || !this._ws) return false;
      this._ws.send(this.encoding === "msgpack" ? encode(frame) : JSON.stringify(frame));
      this._emit("send", frame);
      return true;
    }

    /** @returns {string} The URL of the next attempt, with `since` and `job`. */
    connectUrl() {
      const query = new URLSearchParams();
      if (this.position) query.set("since", this.position);
      this.jobs.forEach((id) => query.append("job", id));
      const text = query.toString();
      return text ? `${this.url}?${text}` : this.url;
    }

    /**
     * @param {string|null} token A token for this attempt, or none.
     * @returns {string[]} The subprotocols to offer, in the order docs/protocol.md gives.
     */
    subprotocols(token = null) {
      const offered = [];
      if (this.options.encoding === "msgpack") offered.push(MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL);
      else if (token !== null) offered.push(JSON_SUBPROTOCOL);
      if (token !== null) offered.push(TOKEN_PREFIX + token);
      return offered;
    }

    // Internals.

    static _ids(jobIds) {
      const list = typeof jobIds === "string" ? [jobIds] : Array.from(jobIds || [], String);
      return list.filter((id) => id !== "");
    }

    _emit(event, payload) {
      for (const listener of Array.from(this._listeners.get(event) || [])) {
        try {
          listener(payload);
        } catch (error) {
          // A broken listener must not break the connection; report it async.
          setTimeout(() => {
            throw error;
          });
        }
      }
    }

    _setState(state, details = {}) {
      const previous = this.state;
      if (previous === state && state !== State.RECONNECTING) return;
      this.state = state;
      this._emit("state", { state, previous, ...details });
    }

    _clearTimers() {
      Object.keys(this._timers).forEach((name) => this._cancel(name));
    }

    _timer(name, ms, callback) {
      clearTimeout(this._timers[name]);
      this._timers[name] = setTimeout(() => {
        delete this._timers[name];
        callback();
      }, ms);
    }

    /** Forget the current socket: its late events are ignored from now on. */
    _detach() {
      const ws = this._ws;
      this._ws = null;
      this.openedAt = null;
      this.clientId = null;
      this.encoding = null;
      if (ws) {
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      }
      return ws;
    }

    _open() {
      this._clearTimers();
      this._detach();
      this._setState(State.CONNECTING);
      this._timer("connect", this.options.connectTimeout, () => this._dead("connect timeout"));
      const generation = ++this._generation;
      if (!this._token) {
        this._socket(null);
        return;
      }
      // A fresh token per attempt; its answer is dropped if the attempt was
      // abandoned meanwhile (connect timeout, disconnect(), a newer attempt).
      const current = () => generation === this._generation && this.state === State.CONNECTING;
      new Promise((resolve) => resolve(this._token())).then(
        (token) => {
          if (current()) this._socket(String(token));
        },
        (error) => {
          if (current()) this._lost(1006, `cannot get a token: ${error?.message ?? error}`);
        },
      );
    }

    /** Open the WebSocket of this attempt. */
    _socket(token) {
      const protocols = this.subprotocols(token);
      let ws;
      try {
        ws = protocols.length
          ? new this._WebSocket(this.connectUrl(), protocols)
          : new this._WebSocket(this.connectUrl());
      } catch (error) {
        this._lost(1006, `cannot connect: ${error.message}`);
        return;
      }
      this._ws = ws;
      ws.binaryType = "arraybuffer";
      ws.onopen = () => this._opened();
      ws.onmessage = (event) => this._received(event.data);
      ws.onclose = (event) => {
        this._emit("close", { code: event.code, reason: event.reason });
        this._detach();
        this._lost(event.code, event.reason);
      };
    }

    _cancel(name) {
      clearTimeout(this._timers[name]);
      delete this._timers[name];
    }

    _opened() {
      this._cancel("connect");
      this.openedAt = Date.now();
      const protocol = this._ws.protocol || "";
      this.encoding = protocol === MSGPACK_SUBPROTOCOL ? "msgpack" : "json";
      this.extensions = this._ws.extensions || "";
      this._setState(State.OPEN);
      this._emit("open", { protocol, encoding: this.encoding, extensions: this.extensions });
      this._timer("stable", this.options.stableAfter, () => {
        this._attempt = 0;
      });
      this._scheduleHeartbeat();
    }

    _scheduleHeartbeat() {
      if (this.options.heartbeatInterval > 0) {
        this._timer("heartbeat", this.options.heartbeatInterval, () => this._ping());
      }
    }

    _ping() {
      if (this.send({ type: "ping" })) {
        this._timer("deadline", this.options.heartbeatTimeout, () =>
          this._dead("heartbeat timeout"),
        );
      }
    }

    /** Drop a connection judged dead without waiting for its closing handshake. */
    _dead(reason) {
      const ws = this._detach();
      if (ws) ws.close(DEAD_CONNECTION_CODE, reason);
      this._emit("close", { code: DEAD_CONNECTION_CODE, reason });
      this._lost(DEAD_CONNECTION_CODE, reason);
    }

    _lost(code, reason) {
      this._clearTimers();
      if (!this._wanted) {
        this._setState(State.CLOSED, { code, reason });
        return;
      }
      if (!this.options.reconnect || code in FINAL_CLOSE_CODES) {
        this._wanted = false;
        this._setState(State.CLOSED, { code, reason: reason || FINAL_CLOSE_CODES[code] });
        return;
      }
      let delay;
      if (code === SERVICE_RESTART_CODE) {
        // A deploy: the connection was fine and other servers are up. Come
        // back soon, with jitter; a failed attempt then backs off as usual.
        this._attempt = 0;
        const { min, max } = RESTART_DELAY;
        delay = Math.round(min + Math.random() * (max - min));
      } else {
        const ceiling = Math.min(
          this.options.backoffMax,
          this.options.backoffInitial * 2 ** Math.min(this._attempt, 30),
        );
        delay = Math.round(Math.random() * ceiling);
      }
      this._attempt += 1;
      this._setState(State.RECONNECTING, { code, reason, delay, attempt: this._attempt });
      this._timer("reconnect", delay, () => this._open());
    }

    _received(data) {
      // Any frame proves the connection is alive.
      this._cancel("deadline");
      this._scheduleHeartbeat();
      // Decoded by what the frame is: text is JSON, binary is MessagePack.
      const text = typeof data === "string";
      let frame;
      try {
        frame = text ? JSON.parse(data) : decode(data);
      } catch (error) {
        const code = text ? "client_invalid_json" : "client_invalid_msgpack";
        this._emit("error", { type: "error", code, message: String(error) });
        return;
      }
      if (frame === null || typeof frame !== "object") return;
      switch (frame.type) {
        case "welcome":
          this.clientId = frame.client_id ?? null;
          break;
        case "job_update":
          if (typeof frame.position === "string" && frame.position) {
            this.position = frame.position;
          }
          break;
        case "job_state":
          // A job's latest state can be older than updates of other jobs
          // already seen: never move the position back.
          if (
            typeof frame.position === "string" &&
            frame.position &&
            isAfter(frame.position, this.position)
          ) {
            this.position = frame.position;
          }
          break;
        case "reset":
          this.position = typeof frame.position === "string" ? frame.position : null;
          break;
        case "unsubscribed":
          // Unasked (with a reason): the user may no longer receive these jobs.
          // Forget them, so a reconnect does not ask for them (job_forbidden, 4403).
          if (frame.reason && Array.isArray(frame.job_ids)) {
            frame.job_ids.forEach((id) => this.jobs.delete(String(id)));
          }
          break;
        default:
          break;
      }
      this._emit("message", frame);
      if (typeof frame.type === "string") this._emit(frame.type, frame);
    }
  }

  JobUpdates.State = State;
  JobUpdates.FINAL_CLOSE_CODES = FINAL_CLOSE_CODES;
  JobUpdates.DEAD_CONNECTION_CODE = DEAD_CONNECTION_CODE;
  JobUpdates.SERVICE_RESTART_CODE = SERVICE_RESTART_CODE;
  JobUpdates.RESTART_DELAY = RESTART_DELAY;
  JobUpdates.JSON_SUBPROTOCOL = JSON_SUBPROTOCOL;
  JobUpdates.MSGPACK_SUBPROTOCOL = MSGPACK_SUBPROTOCOL;
  JobUpdates.msgpack = msgpack;
  JobUpdates.version = "1.1.0";
  return JobUpdates;
});
