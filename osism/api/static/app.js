// The events page: a live list of events from /v1/events/openstack and the
// service's own state from /v1/events/system. No framework, no build step.
"use strict";

(function () {
  const MAX_ROWS = 500; // rows kept in the DOM; older ones are removed
  const MAX_PENDING = 100000; // events held while paused
  const BACKOFF_MIN = 500;
  const BACKOFF_MAX = 10000;
  const TOKEN_KEY = "osism-events-token";
  const EVENTS_PATH = "/v1/events/openstack";
  const SYSTEM_PATH = "/v1/events/system";

  // Reconnect delays for both sockets: a step doubling from BACKOFF_MIN to
  // BACKOFF_MAX, each delay drawn below its step (full jitter), so that the
  // pages one server restart dropped do not all come back in the same instant.
  // The same back-off as the Python loops (osism/core/backoff.py).
  function backoff() {
    let step = BACKOFF_MIN;
    return {
      next() {
        const delay = step * Math.random();
        step = Math.min(step * 2, BACKOFF_MAX);
        return delay;
      },
      reset() {
        step = BACKOFF_MIN;
      },
    };
  }

  const $ = (id) => document.getElementById(id);
  const rows = $("rows");
  const state = {
    ws: null,
    lastId: null,
    paused: false,
    pending: [],
    pendingDropped: 0,
    incoming: [],
    frame: 0,
    total: 0,
    secondCount: 0,
    secondStart: performance.now(),
    backoff: backoff(),
    sentPriority: false,
    refused: false,
    resuming: null,
    clearOnReply: false,
    selected: null,
  };

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  // The token goes on the WebSocket's URL only (browsers cannot set headers
  // on a WebSocket); that URL is never shown, bookmarked or put in history.
  function socketUrl(path, extra) {
    const params = new URLSearchParams(extra || {});
    const t = token();
    if (t) params.set("token", t);
    const query = params.toString();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + path + (query ? "?" + query : "");
  }

  function list(id) {
    return $(id)
      .value.split(/[\s,]+/)
      .map((v) => v.trim())
      .filter((v) => v.length > 0);
  }

  function setConn(text, cls) {
    const el = $("conn-state");
    el.textContent = text;
    el.className = "state " + (cls || text);
  }

  // ---- the events connection -------------------------------------------

  function connect() {
    setConn(state.lastId ? "reconnecting" : "connecting");
    const ws = new WebSocket(socketUrl(EVENTS_PATH));
    state.ws = ws;
    ws.onopen = () => {
      state.backoff.reset();
      state.refused = false;
      setConn("connected");
      // Resume through set_filters, so the replay matches the filters.
      if (state.lastId || hasFilters()) sendFilters(state.lastId);
    };
    ws.onmessage = (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch (err) {
        showReply({ error: "the server sent something that is not JSON" }, true);
        return;
      }
      handle(data);
    };
    ws.onclose = (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      if (event.code === 1008) {
        state.refused = true;
        setConn("refused: " + (event.reason || "not allowed"), "refused");
        $("token-box").open = true;
        return; // a new token (or a reload) tries again
      }
      const delay = state.backoff.next();
      setConn("disconnected, retrying in " + (delay / 1000).toFixed(1) + " s", "closed");
      setTimeout(connect, delay);
    };
  }

  function hasFilters() {
    return ["f-event", "f-node", "f-service", "f-priority"].some((id) => list(id).length);
  }

  function sendFilters(resumeFrom) {
    const message = {
      action: "set_filters",
      event_filters: list("f-event"),
      node_filters: list("f-node"),
      service_filters: list("f-service"),
    };
    const priorities = list("f-priority");
    if (priorities.length || state.sentPriority) {
      message.priority_filters = priorities;
      state.sentPriority = priorities.length > 0;
    }
    if (resumeFrom) message.last_event_id = resumeFrom;
    state.resuming = resumeFrom || null;
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      showReply({ error: "not connected; the filters are sent once connected" }, true);
      return;
    }
    state.ws.send(JSON.stringify(message));
    const reply = $("filter-reply");
    reply.className = "reply";
    reply.textContent = "sent, waiting for the server…";
  }

  function handle(msg) {
    if (msg.type === "filter_update") {
      state.resuming = null;
      if (state.clearOnReply) {
        // The list shows what the new filters let through from now on.
        state.clearOnReply = false;
        rows.replaceChildren();
        state.incoming = [];
        state.pending = [];
        updateCounter();
      }
      showReply(msg, false);
      if (msg.recovered === false) {
        showMissing(msg);
      } else if (msg.recovered === true) {
        $("missing").hidden = true;
      }
      return;
    }
    if (msg.type === "error") {
      if (state.resuming && String(msg.error).includes("last_event_id")) {
        // A server without an event log: go on without resuming.
        state.resuming = null;
        showMissing({ replayed: 0 });
        sendFilters(null);
        return;
      }
      state.clearOnReply = false;
      showReply(msg, true);
      return;
    }
    if (msg.event_type === "heartbeat" && msg.source === "osism") return;
    if (!msg.id) return;
    state.lastId = msg.id;
    state.total += 1;
    state.secondCount += 1;
    if (state.paused) {
      state.pending.push(msg);
      if (state.pending.length > MAX_PENDING) {
        state.pending.shift();
        state.pendingDropped += 1;
      }
      scheduleCounter();
      return;
    }
    queueRender(msg);
  }

  function showReply(msg, isError) {
    const reply = $("filter-reply");
    if (isError) {
      reply.className = "reply error";
      reply.textContent = "server refused: " + (msg.error || JSON.stringify(msg));
      return;
    }
    const kinds = ["event_filters", "node_filters", "service_filters", "priority_filters"];
    const parts = kinds
      .filter((k) => Array.isArray(msg[k]))
      .map((k) => k.replace("_filters", "") + "=" + (msg[k].length ? msg[k].join(",") : "any"));
    let text = "server: " + (msg.status || "ok") + "; " + parts.join(" ");
    if (typeof msg.replayed === "number") text += "; replayed " + msg.replayed;
    reply.className = "reply ok";
    reply.textContent = text;
  }

  function showMissing(msg) {
    const el = $("missing");
    el.textContent =
      "Events may be missing: the server could not resume from the last event shown" +
      (msg.oldest_id ? " (the oldest it holds is " + msg.oldest_id + ")" : "") +
      "; " + (msg.replayed || 0) + " events replayed.";
    el.hidden = false;
  }

  // ---- rendering, batched per animation frame ---------------------------

  function queueRender(ev) {
    state.incoming.push(ev);
    // Only the newest MAX_ROWS can be shown; trim now and then, not per event.
    if (state.incoming.length >= 4 * MAX_ROWS) {
      state.incoming = state.incoming.slice(-MAX_ROWS);
    }
    if (!state.frame) state.frame = requestAnimationFrame(flush);
  }

  // Once per animation frame: the events of the frame become rows in one go.
  function flush() {
    state.frame = 0;
    const batch = state.incoming.length > MAX_ROWS
      ? state.incoming.slice(-MAX_ROWS) : state.incoming;
    state.incoming = [];
    const fragment = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) fragment.appendChild(row(batch[i]));
    if (batch.length >= MAX_ROWS) {
      state.selected = null; // its row is replaced
      rows.replaceChildren(fragment);
    } else {
      rows.insertBefore(fragment, rows.firstChild);
      let extra = rows.childElementCount - MAX_ROWS;
      while (extra-- > 0) rows.lastElementChild.remove();
    }
    updateCounter();
  }

  function cell(row, text) {
    const span = document.createElement("span");
    span.setAttribute("role", "cell");
    span.textContent = text == null ? "" : String(text);
    row.appendChild(span);
    return span;
  }

  // "2026-11-23T12:03:14.123456Z" -> "12:03:14.123" (UTC, as the server sends it)
  function clockTime(timestamp) {
    const match = /T(\d\d:\d\d:\d\d(\.\d{1,3})?)/.exec(String(timestamp));
    return match ? match[1] : String(timestamp);
  }

  // A row is a grid of spans, not a table row: rows out of view then cost no
  // layout or paint (content-visibility), which keeps a busy list cheap.
  function row(ev) {
    const div = document.createElement("div");
    const data = ev.data && typeof ev.data === "object" ? ev.data : {};
    const meta = data._osism && typeof data._osism === "object" ? data._osism : {};
    const priority = meta.priority || "";
    div.setAttribute("role", "row");
    div.dataset.id = ev.id;
    div.className = "row" + (priority ? " prio-" + String(priority).toLowerCase() : "");
    cell(div, clockTime(ev.timestamp)).title = String(ev.timestamp);
    cell(div, priority);
    cell(div, ev.event_type);
    cell(div, ev.node_name);
    cell(div, data.resource_id);
    div.osismEvent = ev;
    return div;
  }

  let counterScheduled = false;
  function scheduleCounter() {
    if (counterScheduled) return;
    counterScheduled = true;
    requestAnimationFrame(() => {
      counterScheduled = false;
      updateCounter();
    });
  }

  function updateCounter() {
    let text = state.total + " events, showing the newest " + rows.childElementCount;
    if (state.paused) {
      text += "; paused, " + state.pending.length + " waiting";
      if (state.pendingDropped) text += " (" + state.pendingDropped + " oldest discarded)";
    }
    $("counter").textContent = text;
  }

  rows.addEventListener("click", (e) => {
    const div = e.target.closest(".row");
    if (!div || !div.osismEvent) return;
    if (state.selected) state.selected.classList.remove("selected");
    div.classList.add("selected");
    state.selected = div;
    $("detail").textContent = JSON.stringify(div.osismEvent, null, 2);
  });

  $("pause").addEventListener("click", () => {
    state.paused = !state.paused;
    $("pause").textContent = state.paused ? "Resume" : "Pause";
    if (!state.paused) {
      const pending = state.pending;
      state.pending = [];
      state.pendingDropped = 0;
      pending.forEach(queueRender);
    }
    updateCounter();
  });

  $("clear").addEventListener("click", () => {
    rows.replaceChildren();
    state.incoming = [];
    updateCounter();
  });

  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    state.clearOnReply = true;
    sendFilters(null);
  });

  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = $("token").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    $("token-box").open = false;
    if (state.ws) state.ws.close();
    else connect();
    restartSystem();
  });

  setInterval(() => {
    const now = performance.now();
    const rate = (state.secondCount * 1000) / Math.max(1, now - state.secondStart);
    state.secondCount = 0;
    state.secondStart = now;
    $("rate").textContent = rate.toFixed(1) + " events/s";
  }, 1000);

  // ---- the system channel -----------------------------------------------

  const system = { ws: null, backoff: backoff(), timer: 0 };

  function connectSystem() {
    const ws = new WebSocket(socketUrl(SYSTEM_PATH));
    system.ws = ws;
    ws.onopen = () => {
      system.backoff.reset();
    };
    ws.onmessage = (message) => {
      try {
        showSystem(JSON.parse(message.data));
      } catch (err) {
        setBar("unknown", "system channel: unreadable message");
      }
    };
    ws.onclose = (event) => {
      if (system.ws !== ws) return;
      system.ws = null;
      if (event.code === 1008) {
        setBar("warn", "system channel refused: " + (event.reason || "not allowed"));
        return;
      }
      setBar("warn", "system channel disconnected; the service may be down");
      const delay = system.backoff.next();
      system.timer = setTimeout(connectSystem, delay);
    };
  }

  function restartSystem() {
    clearTimeout(system.timer);
    const ws = system.ws;
    system.ws = null;
    if (ws) ws.close();
    connectSystem();
  }

  function localTime(iso) {
    const date = new Date(iso);
    return isNaN(date) ? String(iso) : date.toLocaleTimeString();
  }

  function setBar(cls, text) {
    const bar = $("system-bar");
    bar.className = "bar " + cls;
    bar.textContent = text;
  }

  function showSystem(msg) {
    if (msg.type !== "system") return;
    const figures =
      msg.connections + " clients · in " + msg.events_in_per_second + "/s · out " +
      msg.events_out_per_second + "/s · " + msg.dropped_events + " dropped · " +
      msg.slow_clients_closed + " slow clients closed";
    const warnings = (msg.warnings || []).map((w) => {
      if (w.code === "redis_unreachable") {
        return "Redis unreachable since " + localTime(w.since) + ": events are delayed";
      }
      if (w.code === "subscription_down") {
        return "Not subscribed to Redis since " + localTime(w.since) + ": events are delayed";
      }
      return w.message;
    });
    if (warnings.length) {
      setBar("warn", warnings.join(" · ") + " — " + figures);
    } else if (msg.state === "embedded") {
      setBar("embedded", "Embedded mode: events stay in this process — " + figures);
    } else {
      const redis = msg.redis || {};
      setBar("ok", "Redis connected since " + localTime(redis.since) + " — " + figures);
    }
  }

  updateCounter();
  connect();
  connectSystem();
})();
