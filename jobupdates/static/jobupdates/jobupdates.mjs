/**
 * jobupdates.mjs: the job-updates client (jobupdates.js) as an ES module, for
 * `<script type="module">` and bundlers, with no build step:
 *
 *   import { JobUpdates } from "/static/jobupdates/jobupdates.mjs";
 *
 * The code lives once, in jobupdates.js, which is written to run both as a
 * classic script and as a module body: imported here, it defines the global
 * `JobUpdates` (as the classic `<script>` does), and this module exports it.
 * The import must keep its side effect: a bundler must not treat
 * jobupdates.js as side-effect free.
 *
 * Exports: `JobUpdates` (also the default export), `State` (the connection
 * states), `msgpack` (the MessagePack codec: `{encode, decode, MsgpackError}`).
 *
 * @license MIT
 */
import "./jobupdates.js";

/** @type {typeof globalThis.JobUpdates} */
const JobUpdates = globalThis.JobUpdates;
if (typeof JobUpdates !== "function") {
  throw new Error("jobupdates.mjs: ./jobupdates.js did not define globalThis.JobUpdates");
}

/** The connection states: `closed`, `connecting`, `open`, `reconnecting`. */
const State = JobUpdates.State;

/** The MessagePack codec the client uses: `{encode, decode, MsgpackError}`. */
const msgpack = JobUpdates.msgpack;

export { JobUpdates, State, msgpack };
export default JobUpdates;
