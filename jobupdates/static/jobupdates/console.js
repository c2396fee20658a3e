/*
 * The staff console (jobupdates/templates/jobupdates/console.html), built on
 * jobupdates.js. Tuning for tests and demos, from the page's query string,
 * in seconds: ?heartbeat=15&timeout=10&backoff_max=10&connect_timeout=10.
 */
(() => {
  "use strict";

  const LOG_LIMIT = 500;
  const $ = (selector) => document.querySelector(selector);
  const params = new URLSearchParams(window.location.search);
  const ms = (name, fallback) => {
    const value = Number(params.get(name));
    return Number.isFinite(value) && value > 0 ? value * 1000 : fallback;
  };

  const client = new window.JobUpdates({
    heartbeatInterval: ms("heartbeat", 15000),
    heartbeatTimeout: ms("timeout", 10000),
    backoffMax: ms("backoff_max", 10000),
    connectTimeout: ms("connect_timeout", 10000),
  });
  window.jobUpdatesConsole = { client }; // for debugging from the browser console

  const counters = { messages: 0, updates: 0, errors: 0 };
  const rows = new Map();
  const timeFormat = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  });
  const clock = (date) => `${timeFormat.format(date)}.${String(date.getMilliseconds()).padStart(3, "0")}`;

  // The message log.
  const log = $("#log");
  function addLog(kind, text) {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const entry = document.createElement("li");
    entry.className = `entry kind-${kind}`;
    const now = new Date();
    const time = document.createElement("time");
    time.dateTime = now.toISOString();
    time.textContent = clock(now);
    const label = document.createElement("span");
    label.className = "kind";
    label.textContent = kind;
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    entry.append(time, label, body);
    log.append(entry);
    while (log.childElementCount > LOG_LIMIT) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  }
  $("#clear-log").addEventListener("click", () => log.replaceChildren());

  // Counters and uptime.
  function count(name) {
    counters[name] += 1;
    $(`#count-${name}`).textContent = String(counters[name]);
  }
  function duration(totalSeconds) {
    const h = Math.floor(totalSeconds / 3600);
    const m = Math.floor((totalSeconds % 3600) / 60);
    const s = totalSeconds % 60;
    return [h, m, s].map((n) => String(n).padStart(2, "0")).join(":");
  }
  function showUptime() {
    const text = client.openedAt ? duration(Math.floor((Date.now() - client.openedAt) / 1000)) : "—";
    const uptime = $("#uptime");
    if (uptime.textContent !== text) uptime.textContent = text;
  }
  setInterval(showUptime, 1000);

  // The jobs table.
  const tbody = $("#jobs tbody");
  function showJob(frame) {
    let row = rows.get(frame.job_id);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.jobId = frame.job_id;
      const id = document.createElement("th");
      id.scope = "row";
      id.className = "job-id";
      id.textContent = frame.job_id;
      const status = document.createElement("td");
      status.className = "status";
      const time = document.createElement("td");
      time.className = "time";
      time.append(document.createElement("time"));
      const data = document.createElement("td");
      data.className = "data";
      row.append(id, status, time, data);
      rows.set(frame.job_id, row);
    }
    const now = new Date();
    const [, status, time, data] = row.children;
    status.textContent = frame.status;
    status.dataset.status = frame.status;
    time.firstChild.dateTime = now.toISOString();
    time.firstChild.textContent = clock(now);
    data.textContent = frame.data === null || frame.data === undefined ? "" : JSON.stringify(frame.data);
    row.dataset.status = frame.status;
    tbody.prepend(row);
    $("#jobs-empty").hidden = true;
  }
  function clearJobs() {
    rows.clear();
    tbody.replaceChildren();
    $("#jobs-empty").hidden = false;
  }

  // The connection indicator and controls.
  const LABELS = {
    connecting: "Connecting…",
    open: "Connected",
    reconnecting: "Reconnecting",
    closed: "Disconnected",
  };
  function showState(change) {
    const indicator = $("#connection");
    indicator.dataset.state = change.state;
    let text = LABELS[change.state] || change.state;
    if (change.state === "reconnecting") {
      text += ` in ${(change.delay / 1000).toFixed(1)} s (attempt ${change.attempt})`;
    } else if (change.state === "closed" && change.code && change.code !== 1000) {
      text += ` (${change.code}${change.reason ? `: ${change.reason}` : ""})`;
    }
    $("#connection-text").textContent = text;
    $("#connect").disabled = change.state !== "closed";
    $("#disconnect").disabled = change.state === "closed";
    if (change.state !== "open") $("#client-id").textContent = "—";
    showUptime();
  }
  $("#connect").addEventListener("click", () => client.connect());
  $("#disconnect").addEventListener("click", () => client.disconnect());

  client.on("state", (change) => {
    showState(change);
    const details = [];
    if (change.code !== undefined) details.push(`code ${change.code}`);
    if (change.reason) details.push(change.reason);
    if (change.delay !== undefined) details.push(`next attempt in ${change.delay} ms`);
    addLog("state", `${change.previous} → ${change.state}${details.length ? ` (${details.join(", ")})` : ""}`);
  });
  client.on("message", (frame) => {
    count("messages");
    if (client.position) $("#position").textContent = client.position;
  });
  client.on("welcome", (frame) => {
    $("#client-id").textContent = frame.client_id;
    addLog("welcome", `client ${frame.client_id}${client.position ? `, resuming after ${client.position}` : ""}`);
  });
  client.on("job_update", (frame) => {
    count("updates");
    showJob(frame);
    addLog("job_update", `${frame.job_id} → ${frame.status} ${JSON.stringify(frame.data ?? null)}`);
  });
  client.on("job_state", (frame) => {
    showJob(frame);
    addLog("job_state", `${frame.job_id} is ${frame.status} ${JSON.stringify(frame.data ?? null)}`);
  });
  client.on("reset", (frame) => {
    clearJobs();
    addLog("reset", `position unknown to the server (${frame.reason || "no reason"}): job table cleared`);
  });
  client.on("subscribed", (frame) => addLog("subscribed", frame.job_ids.join(", ")));
  client.on("unsubscribed", (frame) => addLog("unsubscribed", frame.job_ids.join(", ")));
  client.on("pong", () => addLog("pong", "heartbeat answered"));
  client.on("send", (frame) => addLog("sent", JSON.stringify(frame)));
  client.on("error", (frame) => {
    count("errors");
    addLog("error", `${frame.code}: ${frame.message}`);
  });

  // The simulate form.
  const form = $("#simulate");
  const result = $("#sim-result");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("#sim-submit");
    button.disabled = true;
    result.dataset.outcome = "pending";
    result.textContent = "Publishing…";
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      const type = response.headers.get("Content-Type") || "";
      const reply = type.includes("json") ? await response.json() : { message: `HTTP ${response.status}` };
      if (response.ok && reply.ok) {
        result.dataset.outcome = "ok";
        result.textContent = `Published to ${reply.receivers} subscriber(s).`;
        addLog("published", `${reply.payload} → ${reply.receivers} subscriber(s)`);
      } else {
        count("errors");
        result.dataset.outcome = "error";
        result.textContent = reply.message || `HTTP ${response.status}`;
        addLog("error", `simulate refused (HTTP ${response.status}): ${result.textContent}`);
      }
    } catch (error) {
      count("errors");
      result.dataset.outcome = "error";
      result.textContent = `Could not reach the server: ${error.message}`;
      addLog("error", result.textContent);
    } finally {
      button.disabled = false;
    }
  });

  showState({ state: client.state });
  client.connect();
})();
