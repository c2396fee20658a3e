/**
 * jobupdates.js: a small, dependency-free client for the botrix job-updates
 * WebSocket (docs/protocol.md). No build step: load it with a plain
 * `<script src=".../jobupdates/jobupdates.js"></script>` and use the global
 * `JobUpdates`, or `require()` it where `module.exports` exists.
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
 *   when the server answers `reset` (position too old), it emits `reset`:
 *   throw away your job table and rebuild it from what follows;
 * - sends an application-level `ping` every `heartbeatInterval` ms and treats
 *   a connection on which nothing arrives within `heartbeatTimeout` ms of a
 *   ping as dead, so a half-open connection is replaced within
 *   `heartbeatInterval + heartbeatTimeout` ms; a connection attempt that does
 *   not open within `connectTimeout` ms is abandoned the same way;
 * - keeps a set of subscribed jobs (`?job=` on connect, `subscribe` and
 *   `unsubscribe` frames once open); with none it receives the all-jobs feed.
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
  if (typeof module === "object" && module.exports) {
    module.exports = JobUpdates;
  }
  if (root) {
    root.JobUpdates = JobUpdates;
  }
})(typeof globalThis !== "undefined" ? globalThis : this, function () {
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
   *   opened within this many ms.
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
   * - `job_update`: `{type, job_id, status, data, position?}`;
   * - `job_state`: `{type, job_id, status, data, position?}`, a job's latest
   *   state, sent when you subscribe to it;
   * - `reset`: `{type, reason}`: the position was unknown; clear your state;
   * - `subscribed` / `unsubscribed`: `{type, job_ids}`, acknowledgements;
   * - `pong`: `{type}`;
   * - `error`: `{type, code, message}`, an error frame from the server;
   * - `message`: every frame, before its own event;
   * - `send`: every frame the client sends (an object), after sending it;
   * - `state`: a {@link StateChange}, on every change of connection state;
   * - `open`, `close`: `{code, reason}` for `close`, raw connection events.
   */
  class JobUpdates {
    /** @param {JobUpdatesOptions} [options] */
    constructor(options = {}) {
      /** @type {Required<Omit<JobUpdatesOptions, "jobs"|"since"|"url"|"WebSocket">>} */
      this.options = {
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
      this._WebSocket = options.WebSocket || globalThis.WebSocket;
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
     * Send a frame if the connection is open.
     * @param {Object} frame A JSON-serialisable object with a `type`.
     * @returns {boolean} Whether it was sent.
     */
    send(frame) {
      if (this.state !== State.OPEN || !this._ws) return false;
      this._ws.send(JSON.stringify(frame));
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
      if (ws) {
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      }
      return ws;
    }

    _open() {
      this._clearTimers();
      this._detach();
      this._setState(State.CONNECTING);
      let ws;
      try {
        ws = new this._WebSocket(this.connectUrl());
      } catch (error) {
        this._lost(1006, `cannot connect: ${error.message}`);
        return;
      }
      this._ws = ws;
      ws.onopen = () => this._opened();
      ws.onmessage = (event) => this._received(event.data);
      ws.onclose = (event) => {
        this._emit("close", { code: event.code, reason: event.reason });
        this._detach();
        this._lost(event.code, event.reason);
      };
      this._timer("connect", this.options.connectTimeout, () => this._dead("connect timeout"));
    }

    _cancel(name) {
      clearTimeout(this._timers[name]);
      delete this._timers[name];
    }

    _opened() {
      this._cancel("connect");
      this.openedAt = Date.now();
      this._setState(State.OPEN);
      this._emit("open", {});
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

    _received(text) {
      // Any frame proves the connection is alive.
      this._cancel("deadline");
      this._scheduleHeartbeat();
      let frame;
      try {
        frame = JSON.parse(text);
      } catch (error) {
        this._emit("error", { type: "error", code: "client_invalid_json", message: String(error) });
        return;
      }
      if (frame === null || typeof frame !== "object") return;
      switch (frame.type) {
        case "welcome":
          this.clientId = frame.client_id ?? null;
          break;
        case "job_update":
        case "job_state":
          if (typeof frame.position === "string" && frame.position) {
            this.position = frame.position;
          }
          break;
        case "reset":
          this.position = typeof frame.position === "string" ? frame.position : null;
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
  JobUpdates.version = "1.0.0";
  return JobUpdates;
});
