// The admin page's script: served from the page's own origin, never
// inline, so its Content-Security-Policy needs no 'unsafe-inline'. The page
// holds no data of its own: it signs in, keeps the token in memory (never
// in storage), and reads and changes everything through the admin routes.
// Server text is always inserted as text (textContent), never as HTML.
import { WsgateClient, fetchToken } from "/wsgate-client.js";

const $ = (selector) => document.querySelector(selector);
let token = null;
let feed = null;
let socketsTimer = null;
let signedIn = null;

function status(text) { $("#status").textContent = text; }

function result(selector, text, failed) {
  const line = $(selector);
  line.textContent = text;
  line.classList.toggle("error", Boolean(failed));
}

function time(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "—";
}

function button(label, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  element.addEventListener("click", onClick);
  return element;
}

function cell(row, text, className) {
  const element = row.insertCell();
  element.textContent = text;
  if (className) element.className = className;
  return element;
}

// One call to an admin route with the admin's token. A 401 means the token
// expired or was revoked: back to the login form.
async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { authorization: "Bearer " + token, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (response.status === 401) signedOut("signed out: log in again");
  if (!response.ok) {
    const detail = answer.detail ? " (" + answer.detail + ")" : "";
    throw new Error((answer.error || "HTTP " + response.status) + detail);
  }
  return answer;
}

async function loadUsers() {
  const { users } = await call("GET", "/admin/users");
  const body = $("#users tbody");
  body.replaceChildren();
  for (const user of users) {
    const row = body.insertRow();
    row.dataset.username = user.username;
    cell(row, user.username);
    cell(row, user.roles.join(", "));
    cell(row, user.disabled ? "disabled" : "active", user.disabled ? "disabled" : "");
    const actions = cell(row, "", "actions");
    const change = user.disabled ? "enable" : "disable";
    actions.append(button(user.disabled ? "Enable" : "Disable", () => act(
      "#users-result",
      () => call("POST", "/admin/users/" + encodeURIComponent(user.username) + "/" + change),
      (answer) => user.username + " " + change + "d" + (answer.closed !== undefined ? ", sockets closed: " + answer.closed : ""),
    )));
  }
}

async function loadSockets() {
  const { sockets } = await call("GET", "/admin/sockets");
  const body = $("#sockets tbody");
  body.replaceChildren();
  for (const socket of sockets) {
    const row = body.insertRow();
    row.dataset.sub = socket.sub;
    cell(row, String(socket.id));
    cell(row, socket.sub);
    cell(row, socket.transport || "—");
    cell(row, time(socket.opened_at));
    cell(row, time(socket.expires_at));
    const actions = cell(row, "", "actions");
    actions.append(
      button("Revoke", () => act("#sockets-result", () => call("POST", "/admin/revoke", { sub: socket.sub }),
        (answer) => "revoked " + socket.sub + "'s tokens, sockets closed: " + answer.closed)),
      button("Kick", () => act("#sockets-result", () => call("POST", "/admin/kick", { sub: socket.sub }),
        (answer) => "kicked " + socket.sub + ", sockets closed: " + answer.closed)),
    );
  }
}

// Runs an admin action, says how it went, and shows the lists as they are now.
async function act(where, action, describe) {
  try {
    result(where, describe(await action()));
  } catch (error) {
    result(where, "refused: " + error.message, true);
  }
  await Promise.all([loadUsers(), loadSockets()]).catch(() => {});
}

// Events that open or close sockets make the list stale: read it again,
// once for a burst. A Bearer handshake may be an HTTP call (this page's
// own included) rather than a socket, so those wait for the next poll:
// reacting to them would make every read of the list trigger the next.
const POLL_MS = 2000;
function socketsChanged() {
  clearTimeout(socketsTimer);
  socketsTimer = setTimeout(() => loadSockets().catch(() => {}), 150);
}

const EVENT_CLASSES = new Set(["handshake", "close", "revoke", "refresh", "message", "deny"]);
const EVENT_FIELDS = ["sub", "reason", "code", "transport", "conn", "closed", "token", "action", "peer"];

// This page's own calls are Bearer handshakes of the signed-in admin: hidden
// unless asked for, so the log shows what others do.
function ownRequest(event) {
  return event.event === "handshake" && event.outcome === "allow" && event.transport === "bearer"
    && event.sub === signedIn && !$("#show-own").checked;
}

function showEvent(event) {
  if (ownRequest(event)) return;
  const line = document.createElement("li");
  const parts = [new Date(event.ts).toLocaleTimeString(), event.event, event.outcome];
  for (const field of EVENT_FIELDS) {
    if (event[field] !== undefined) parts.push(field + "=" + event[field]);
  }
  line.textContent = parts.join(" ");
  if (EVENT_CLASSES.has(event.event)) line.classList.add(event.event);
  if (event.outcome === "deny") line.classList.add("deny");
  const log = $("#event-log");
  log.prepend(line);
  while (log.children.length > 200) log.lastElementChild.remove();
  const opened = event.event === "handshake" && event.outcome === "allow" && event.transport !== "bearer";
  if (opened || event.event === "close" || event.event === "revoke") socketsChanged();
}

// The feed is a socket of wsgate's browser client: a token that expires
// (4401) is replaced from POST /token and the feed reopens at once; a
// network loss backs off and reopens; a revocation (4403) signs out.
function openFeed(first) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let unused = first;
  feed = new WsgateClient({
    url: scheme + "//" + location.host + "/admin/events",
    protocols: ["admin.v1"],
    getToken: async () => {
      if (unused) {
        const given = unused;
        unused = null;
        return given;
      }
      const fresh = await fetchToken({ url: "/token" });
      token = fresh.token; // the admin routes' calls use the fresh one too
      return fresh;
    },
  });
  const poll = setInterval(() => { if (token) loadSockets().catch(() => {}); }, POLL_MS);
  feed.on("state", ({ state }) => {
    if (state === "open") $("#feed").textContent = "(live)";
    if (state === "waiting" || state === "connecting") $("#feed").textContent = "(reconnecting)";
  });
  feed.on("message", ({ json: frame }) => {
    if (!frame || typeof frame !== "object") return;
    if (frame.type === "audit") showEvent(frame.event);
    else if (frame.type === "lagged") showEvent({ ts: Date.now(), event: "feed", outcome: "missed " + frame.missed });
  });
  feed.on("closed", ({ code, reason, retry }) => {
    $("#feed").textContent = "(closed: " + code + (reason ? " " + reason : "") + ")";
    if (retry.kind === "stop") {
      clearInterval(poll);
      signedOut("signed out by the server: " + reason);
    }
  });
  feed.on("error", ({ error }) => {
    if (error && error.status === 401) {
      clearInterval(poll);
      signedOut("signed out: the session ended");
    }
  });
  feed.connect();
}

function signedOut(text) {
  token = null;
  const open = feed;
  feed = null;
  if (open) open.close();
  status(text);
  $("#console").hidden = true;
  $("#login").hidden = false;
}

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  status("logging in…");
  const response = await fetch("/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: form.get("username"), password: form.get("password") }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) { status("login failed: " + (body.error || "HTTP " + response.status)); return; }
  token = body.access_token;
  const first = { token, serverTime: Date.parse(response.headers.get("Date") ?? "") || undefined };
  try {
    await Promise.all([loadUsers(), loadSockets()]);
  } catch (error) {
    token = null;
    status("not an admin: " + error.message);
    return;
  }
  signedIn = form.get("username");
  status("signed in as " + signedIn);
  $("#login").hidden = true;
  $("#console").hidden = false;
  openFeed(first);
});

$("#create").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const username = form.get("username");
  const roles = form.get("roles").split(",").map((role) => role.trim()).filter(Boolean);
  act("#users-result", async () => {
    const answer = await call("POST", "/admin/users", { username, password: form.get("password"), roles });
    event.target.elements.password.value = "";
    return answer;
  }, (answer) => "created " + answer.username + " (roles: " + answer.roles.join(", ") + ")");
});

$("#refresh-sockets").addEventListener("click", () => loadSockets().catch(() => {}));
