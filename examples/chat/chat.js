// The demo page's script: a module served from the page's own origin,
// never inline, so its Content-Security-Policy needs no 'unsafe-inline'.
// Client text is always inserted as text (textContent), never as HTML.
//
// The socket's life is wsgate's browser client's (/wsgate-client.js): it
// refreshes the token in-band before it expires (a fresh one from
// POST /token, which the HttpOnly refresh cookie authorizes), reconnects
// by close code, and follows the page's life. The page holds no
// long-lived secret: the access token lives in memory only.
import { WsgateClient, fetchToken } from "/wsgate-client.js";

const $ = (selector) => document.querySelector(selector);
let client = null;
const rooms = new Set();

function show(text, kind) {
  const line = document.createElement("div");
  line.textContent = text;
  if (kind) line.className = kind;
  $("#log").append(line);
  $("#log").scrollTop = $("#log").scrollHeight;
}

function status(text) { $("#status").textContent = text; }

async function login(username, password) {
  const response = await fetch("/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
  return { token: body.access_token, serverTime: Date.parse(response.headers.get("Date") ?? "") || undefined };
}

function start(first) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let unused = first;
  client = new WsgateClient({
    url: scheme + "//" + location.host + "/ws",
    protocols: ["chat.v1"],
    // The login's token first; every later one from the token route.
    getToken: async () => {
      if (unused) {
        const token = unused;
        unused = null;
        return token;
      }
      return fetchToken({ url: "/token" });
    },
  });
  client.on("state", ({ state }) => {
    if (state === "connecting") status("connecting…");
    if (state === "waiting") status("reconnecting…");
  });
  client.on("message", ({ data, json }) => {
    if (!json || typeof json !== "object") { show(data); return; }
    switch (json.type) {
      case "welcome":
        status("connected (chat.v1)");
        $("#chat").hidden = false;
        show("welcome, " + json.sub + " (roles: " + json.roles.join(", ") + ")", "system");
        // After a reconnect, back into the rooms this page was in.
        for (const room of rooms) client.send({ type: "join", room });
        break;
      case "auth.refreshed":
        break;
      case "message":
        show("[" + json.room + "] " + json.from + ": " + json.text);
        break;
      case "error":
        show("refused " + (json.ref || "message") + ": " + json.code, "error");
        break;
      default:
        show(data, "system");
    }
  });
  client.on("closed", ({ code, reason, retry, delayMs }) => {
    const phrase = "closed: " + code + (reason ? " " + reason : "");
    if (retry.kind === "stop") {
      status(code === 4403 ? "disconnected by the server" : "disconnected");
      show(phrase, "error");
      $("#login").hidden = false;
    } else {
      show(phrase + " (reconnecting" + (delayMs ? " in " + Math.ceil(delayMs / 1000) + " s" : "") + ")", "system");
    }
  });
  client.on("error", ({ error }) => {
    // The token route refused: the session is over.
    if (error && error.status === 401) {
      client.close();
      status("session expired: log in again");
      show("the session ended: log in again", "error");
      $("#login").hidden = false;
    }
  });
  client.connect();
}

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    status("logging in…");
    const first = await login(form.get("username"), form.get("password"));
    $("#login").hidden = true;
    client?.close();
    start(first);
  } catch (error) {
    status("login failed: " + error.message);
  }
});

$("#join").addEventListener("submit", (event) => {
  event.preventDefault();
  const room = new FormData(event.target).get("room");
  rooms.add(room);
  client?.send({ type: "join", room });
  show("joined " + room, "system");
});

$("#say").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  client?.send({ type: "say", room: form.get("room"), text: form.get("text") });
  event.target.elements.text.value = "";
});
