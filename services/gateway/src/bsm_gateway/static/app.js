// The web message center: plain JavaScript over the gateway's JSON API. No inline script,
// no third-party code (the page runs under a strict Content-Security-Policy); message HTML
// arrives sanitized by the server and is the only thing ever inserted as HTML.
"use strict";

const state = { token: null, me: null, filter: "response_needed", order: "", conv: null,
                templates: [] };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method, headers: { "Authorization": `Bearer ${state.token}`,
                       ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(data?.detail || `HTTP ${response.status}`);
  return data;
}

function say(text) { $("status").textContent = text; }

async function signIn(token) {
  state.token = token;
  try {
    state.me = await api("GET", "/v1/me");
  } catch (e) { state.token = null; say(`Cannot sign in: ${e.message}`); return; }
  sessionStorage.setItem("bsm-token", token);
  const seller = state.me.role === "seller";
  $("title").textContent = seller ? "Message center" : "Your messages";
  $("who").textContent = `${state.me.party_id} (${state.me.role})`;
  $("login").hidden = true; $("center").hidden = false; $("logout").hidden = false;
  for (const node of document.querySelectorAll(".seller-only")) node.hidden = !seller;
  // Sellers start in *Response needed* (E1); buyers see all their messages.
  state.filter = seller ? "response_needed" : "all";
  $("views").hidden = false;
  for (const b of document.querySelectorAll("#views button[data-filter]")) {
    b.hidden = !seller && b.dataset.filter !== "all";
    if (!seller && b.dataset.filter === "all") b.textContent = "Your messages";
  }
  await refresh();
}

async function refresh() {
  for (const b of document.querySelectorAll("#views button[data-filter]"))
    b.setAttribute("aria-pressed", String(b.dataset.filter === state.filter));
  const q = new URLSearchParams({ filter: state.filter });
  if (state.order) q.set("order_id", state.order);
  const data = await api("GET", `/v1/conversations?${q}`);
  const list = $("list");
  list.replaceChildren();
  if (!data.conversations.length) list.append(el("li", { class: "empty" }, "No conversations."));
  for (const c of data.conversations) {
    const item = el("li", { class: c.unread ? "unread" : "", "data-conversation": c.conversation_id },
      el("strong", {}, c.subject || "(no subject)"),
      el("div", { class: "meta" }, `Order ${c.order_id ?? "—"} · ${c.messages} message(s) · ${c.state}`));
    item.addEventListener("click", () => openConversation(c.conversation_id));
    list.append(item);
  }
}

function messageItem(m) {
  const mine = m.sender_party_id === state.me.party_id;
  const outcome = m.outcome.status === "bounced"
    ? el("p", { class: "bounced" }, `Bounced: ${m.outcome.bounce?.explanation ?? ""} ${m.outcome.bounce?.remedy ?? ""}`)
    : el("p", { class: "meta" }, m.outcome.status);
  const body = el("div", { class: "body" });
  if (m.html) body.innerHTML = m.html; else body.textContent = m.text ?? "";  // html: sanitized by the server
  const item = el("li", { class: mine ? "mine" : "", "data-message": m.message_id },
    el("div", { class: "meta" }, `${mine ? "You" : m.sender_role} · ${new Date(m.submitted_at).toLocaleString()}`),
    m.quoted ? el("div", { class: "quote" }, m.quoted) : "", body, outcome);
  if (!mine && m.outcome.status === "delivered") {
    const actions = el("div", { class: "actions" });
    if (m.response_not_needed) actions.append(el("span", { class: "meta" }, "No response needed. "));
    else if (state.me.role === "seller") {
      const b = el("button", { type: "button", className: "mark" }, "No response needed");
      b.addEventListener("click", () => act(m.message_id, "no-response-needed"));
      actions.append(b);
    }
    if (m.reported) actions.append(el("span", { class: "meta" }, "Reported."));
    else {
      const b = el("button", { type: "button", className: "report" }, "Report");
      b.addEventListener("click", () => {
        const reason = prompt("Why are you reporting this message?");
        if (reason) act(m.message_id, "reports", { reason });
      });
      actions.append(b);
    }
    item.append(actions);
  }
  return item;
}

async function openConversation(id) {
  const c = await api("GET", `/v1/conversations/${encodeURIComponent(id)}`);
  state.conv = c;
  $("thread").hidden = false;
  $("thread-subject").textContent = c.subject || "(no subject)";
  $("thread-meta").textContent = `Order ${c.order_id ?? "—"} · ${c.state}`;
  $("messages").replaceChildren(...c.message_list.map(messageItem));
  if (state.me.role === "seller") await loadTemplates(c.order_id);
}

async function loadTemplates(orderId) {
  const q = orderId ? `?order_id=${encodeURIComponent(orderId)}` : "";
  state.templates = await api("GET", `/v1/templates${q}`);
  $("template").replaceChildren(el("option", { value: "" }, "—"),
    ...state.templates.map((t) => el("option", { value: t.template_id }, `${t.name}${t.locale ? ` (${t.locale})` : ""}`)));
}

async function act(messageId, action, body) {
  await api("POST", `/v1/messages/${encodeURIComponent(messageId)}/${action}`, body ?? {});
  say(action === "reports" ? "Reported." : "Marked: no response needed.");
  setTimeout(async () => { await refresh(); if (state.conv) await openConversation(state.conv.conversation_id); }, 1500);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value.trim()); });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem("bsm-token"); location.reload(); });
  for (const b of document.querySelectorAll("#views button[data-filter]"))
    b.addEventListener("click", () => { state.filter = b.dataset.filter; refresh(); });
  $("search").addEventListener("submit", (e) => { e.preventDefault(); state.order = $("order-search").value.trim(); refresh(); });
  $("template").addEventListener("change", () => {
    const t = state.templates.find((x) => x.template_id === $("template").value);
    if (t) $("reply-text").value = t.text;
  });
  $("reply").addEventListener("submit", async (e) => {
    e.preventDefault();
    const msgs = state.conv.message_list;
    const last = msgs[msgs.length - 1];
    const r = await api("POST", "/v1/messages", { in_reply_to: last.message_id, text: $("reply-text").value,
      subject: `Re: ${state.conv.subject}`, channel: "web" });
    $("reply-text").value = "";
    say(`Sent (message ${r.message_id}).`);
  });
  // A token in the fragment (never sent to the server) or from this tab's session.
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) history.replaceState(null, "", location.pathname);
  const saved = fromHash || sessionStorage.getItem("bsm-token");
  if (saved) signIn(saved);
});
