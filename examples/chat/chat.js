// The demo page's script: served from the page's own origin, never inline,
// so its Content-Security-Policy needs no 'unsafe-inline'. Client text is
// always inserted as text (textContent), never as HTML.
"use strict";
const $ = (selector) => document.querySelector(selector);
let socket = null;

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
  return body.access_token;
}

function connect(token) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  // Browsers cannot set Authorization on a WebSocket: the token travels as a
  // subprotocol entry, and the server selects "chat.v1", never the token.
  socket = new WebSocket(scheme + "//" + location.host + "/ws", ["chat.v1", "wsgate.bearer." + token]);
  socket.onopen = () => { status("connected (" + socket.protocol + ")"); $("#chat").hidden = false; };
  socket.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { show(event.data); return; }
    switch (message.type) {
      case "welcome":
        show("welcome, " + message.sub + " (roles: " + message.roles.join(", ") + ")", "system");
        break;
      case "message":
        show("[" + message.room + "] " + message.from + ": " + message.text);
        break;
      case "error":
        show("refused " + (message.ref || "message") + ": " + message.code, "error");
        break;
      default:
        show(event.data, "system");
    }
  };
  socket.onclose = (event) => {
    socket = null;
    if (event.code === 4401) {
      status("session expired: log in again");
      show("closed: " + event.code + " " + event.reason + " (log in again)", "error");
    } else if (event.code === 4403) {
      status("disconnected by the server");
      show("closed: " + event.code + " " + event.reason, "error");
    } else {
      status("disconnected");
      show("closed: " + event.code + (event.reason ? " " + event.reason : ""), "system");
    }
    $("#login").hidden = false;
  };
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    status("logging in…");
    const token = await login(form.get("username"), form.get("password"));
    $("#login").hidden = true;
    connect(token);
  } catch (error) {
    status("login failed: " + error.message);
  }
});

$("#join").addEventListener("submit", (event) => {
  event.preventDefault();
  const room = new FormData(event.target).get("room");
  send({ type: "join", room });
  show("joined " + room, "system");
});

$("#say").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  send({ type: "say", room: form.get("room"), text: form.get("text") });
  event.target.elements.text.value = "";
});
