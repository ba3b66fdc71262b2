// The web message center: plain JavaScript over the gateway's JSON API. No inline script,
// no third-party code (the page runs under a strict Content-Security-Policy); message HTML
// arrives sanitized by the server and is the only thing ever inserted as HTML. Charts are
// SVG elements built here (no chart library, nothing from another host).
"use strict";

const state = { token: null, me: null, filter: "response_needed", order: "", conv: null,
                templates: [], page: "messages", timeline: { order: null, times: [] } };
const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method, headers: { "Authorization": `Bearer ${state.token}`,
                       ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return answer(response);
}

async function answer(response) {
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new Error(data?.detail || `HTTP ${response.status}`);
  return data;
}

function say(text) { $("status").textContent = text; }

// A download needs the bearer token, so it is fetched and handed to the browser as a blob.
async function download(messageId, a) {
  const response = await fetch(`/v1/messages/${enc(messageId)}/attachments/${enc(a.sha256)}`,
                               { headers: { "Authorization": `Bearer ${state.token}` } });
  if (!response.ok) return answer(response);
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: a.filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  say(`Downloaded ${a.filename}.`);
}

// Every handler reports a failure in the status line instead of failing silently.
const guarded = (fn) => async (...args) => {
  try { await fn(...args); } catch (e) { say(e.message); }
};

// -- sign-in and pages ----------------------------------------------------------------------
async function signIn(token) {
  state.token = token;
  try {
    state.me = await api("GET", "/v1/me");
  } catch (e) { state.token = null; say(`Cannot sign in: ${e.message}`); return; }
  sessionStorage.setItem("bsm-token", token);
  const role = state.me.role;
  const seller = role === "seller", buyer = role === "buyer";
  const party = seller || buyer, record = role === "dispute" || role === "operator";
  $("title").textContent = seller ? "Message center" : buyer ? "Your messages"
    : role === "dispute" ? "Dispute desk" : "Operations";
  $("who").textContent = `${state.me.party_id} (${role})`;
  $("login").hidden = true; $("logout").hidden = false; $("pages").hidden = false;
  const show = { "seller-only": seller, "buyer-only": buyer, "party-only": party,
                 "record-only": record, "reader-only": party || role === "dispute" };
  for (const [cls, visible] of Object.entries(show))
    for (const node of document.querySelectorAll(`.${cls}`)) node.hidden = !visible;
  // Sellers start in *Response needed* (E1); buyers see all their messages.
  state.filter = seller ? "response_needed" : "all";
  for (const b of document.querySelectorAll("#views button[data-filter]")) {
    b.hidden = !seller && b.dataset.filter !== "all";
    if (!seller && b.dataset.filter === "all") b.textContent = buyer ? "Your messages" : "All";
  }
  // Operators read no conversations: their first page is the record.
  await showPage(role === "operator" ? "timeline" : "messages");
}

async function showPage(page) {
  state.page = page;
  say("");
  for (const section of document.querySelectorAll(".page")) section.hidden = section.dataset.page !== page;
  for (const b of document.querySelectorAll("#pages button"))
    b.setAttribute("aria-pressed", String(b.dataset.page === page));
  if (page === "messages") { await refresh(); if (state.me.role === "buyer") await loadNotifications(); }
  if (page === "metrics") await loadMetrics();
  if (page === "settings") await fillSettings();
  if (page === "timeline") $("timeline-order").focus();
}

// -- the inbox --------------------------------------------------------------------------------
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
    item.addEventListener("click", guarded(() => openConversation(c.conversation_id)));
    list.append(item);
  }
}

// Platform notices are not seller messages: a buyer sees them apart, as notifications.
async function loadNotifications() {
  const notices = await api("GET", "/v1/notifications");
  const list = $("notice-list");
  list.replaceChildren();
  if (!notices.length) list.append(el("li", { class: "empty" }, "No notifications."));
  for (const n of notices) {
    list.append(el("li", { class: "notice", "data-message": n.message_id },
      el("strong", {}, `Your message “${n.subject || "(no subject)"}” was not delivered`),
      el("div", { class: "meta" }, `Order ${n.order_id ?? "—"} · ${new Date(n.at).toLocaleString()}${n.rule ? ` · rule ${n.rule}` : ""}`),
      el("p", {}, n.explanation), n.remedy ? el("p", { class: "remedy" }, `What you can do: ${n.remedy}`) : ""));
  }
}

function senderLabel(m, mine) {
  if (mine) return "You";
  return m.sender_role === "seller" ? "Seller" : m.sender_role === "buyer" ? "Buyer" : "Platform";
}

function messageItem(m) {
  const mine = m.sender_party_id === state.me.party_id;
  const b = m.outcome.bounce;
  const outcome = m.outcome.status === "bounced"
    ? el("p", { class: "bounced" }, `Bounced: ${b?.explanation ?? ""} ${b?.remedy ?? ""}`)
    : b?.after_delivery
      ? el("p", { class: "bounced" },
           `Delivered here; the email copy bounced: ${b.explanation ?? ""} ${b.remedy ?? ""}`)
      : el("p", { class: "meta" }, m.outcome.status);
  const body = el("div", { class: "body" });
  if (m.html) body.innerHTML = m.html; else body.textContent = m.text ?? "";  // html: sanitized by the server
  const files = (m.attachments || []).length
    ? el("ul", { class: "attachments" }, ...m.attachments.map((a) => {
        const link = el("button", { type: "button", class: "link", "data-sha256": a.sha256 },
                        `📎 ${a.filename}`);
        link.addEventListener("click", guarded(() => download(m.message_id, a)));
        return el("li", {}, link, ` (${a.content_type}, ${Math.ceil(a.size / 1024)} KB)`);
      }))
    : "";
  const item = el("li", { class: `${mine ? "mine" : ""} from-${m.sender_role ?? "platform"}`, "data-message": m.message_id },
    el("div", { class: "meta" }, `${senderLabel(m, mine)} · ${new Date(m.submitted_at).toLocaleString()}`),
    m.quoted ? el("div", { class: "quote" }, m.quoted) : "", body, files, outcome);
  if (!mine && m.outcome.status === "delivered" && state.me.role !== "dispute") {
    const actions = el("div", { class: "actions" });
    if (m.response_not_needed) actions.append(el("span", { class: "meta" }, "No response needed. "));
    else if (state.me.role === "seller") {
      const b = el("button", { type: "button", className: "mark" }, "No response needed");
      b.addEventListener("click", guarded(() => act(m.message_id, "no-response-needed")));
      actions.append(b);
    }
    if (m.reported) actions.append(el("span", { class: "meta" }, "Reported."));
    else {
      const b = el("button", { type: "button", className: "report" }, "Report");
      b.addEventListener("click", guarded(async () => {
        const reason = prompt("Why are you reporting this message?");
        if (reason) await act(m.message_id, "reports", { reason });
      }));
      actions.append(b);
    }
    item.append(actions);
  }
  return item;
}

async function openConversation(id) {
  const c = await api("GET", `/v1/conversations/${enc(id)}`);
  state.conv = c;
  $("thread").hidden = false;
  $("thread-subject").textContent = c.subject || "(no subject)";
  $("thread-meta").textContent = `Order ${c.order_id ?? "—"} · ${c.state}`;
  $("messages").replaceChildren(...c.message_list.map(messageItem));
  if (state.me.role === "seller") await loadTemplates(c.order_id);
}

async function loadTemplates(orderId) {
  const q = orderId ? `?order_id=${enc(orderId)}` : "";
  state.templates = await api("GET", `/v1/templates${q}`);
  $("template").replaceChildren(el("option", { value: "" }, "—"),
    ...state.templates.map((t) => el("option", { value: t.template_id }, `${t.name}${t.locale ? ` (${t.locale})` : ""}`)));
}

async function act(messageId, action, body) {
  await api("POST", `/v1/messages/${enc(messageId)}/${action}`, body ?? {});
  say(action === "reports" ? "Reported." : "Marked: no response needed.");
  setTimeout(guarded(async () => { await refresh(); if (state.conv) await openConversation(state.conv.conversation_id); }), 1500);
}

// Attachments go to the blob store first; the message then names them by hash.
async function upload(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  const response = await fetch("/v1/attachments", {
    method: "POST", headers: { "Authorization": `Bearer ${state.token}` }, body: form });
  try {
    return await answer(response);
  } catch (e) { throw new Error(`${file.name}: ${e.message}`); }
}

async function sendReply() {
  const msgs = state.conv.message_list;
  const last = msgs[msgs.length - 1];
  const files = [...$("reply-files").files];
  if (files.length) say(`Uploading ${files.length} attachment(s)…`);
  const stored = [];
  for (const f of files) stored.push(await upload(f));
  const r = await api("POST", "/v1/messages", { in_reply_to: last.message_id, text: $("reply-text").value,
    subject: `Re: ${state.conv.subject}`, channel: "web",
    attachments: stored.map((a) => ({ sha256: a.sha256, filename: a.filename })) });
  $("reply-text").value = ""; $("reply-files").value = "";
  say(`Sent (message ${r.message_id}${stored.length ? `, ${stored.length} attachment(s)` : ""}).`);
}

// -- response times (F1) ----------------------------------------------------------------------
const WINDOWS = ["7d", "30d", "90d"];

function barChart(title, bars, { max, format, id, mark }) {
  const width = 460, rowH = 34, left = 48, right = 90, top = 28;
  const height = top + bars.length * rowH + 8;
  const chart = svg("svg", { id, class: "chart", viewBox: `0 0 ${width} ${height}`, width, height,
                             role: "img", "aria-label": title });
  chart.append(svg("title", {}, title), svg("text", { x: 0, y: 16, class: "chart-title" }, title));
  const span = width - left - right;
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    const w = b.value == null ? 0 : Math.max(1, Math.round(span * Math.min(b.value, max) / max));
    chart.append(svg("text", { x: 0, y: y + 18, class: "chart-label" }, b.label),
      svg("rect", { x: left, y: y + 4, width: span, height: 20, class: "chart-track" }),
      svg("rect", { x: left, y: y + 4, width: w, height: 20, class: `chart-bar ${b.cls ?? ""}`,
                    "data-window": b.label, "data-value": b.value ?? "" }),
      svg("text", { x: left + span + 6, y: y + 18, class: "chart-value" },
          b.value == null ? "no data" : format(b.value)));
  });
  if (mark) {  // a reference line, e.g. the 24-hour limit
    const x = left + Math.round(span * mark.value / max);
    chart.append(svg("line", { x1: x, x2: x, y1: top, y2: height - 4, class: "chart-mark" }),
      svg("text", { x: x + 3, y: top - 2, class: "chart-label" }, mark.label));
  }
  return chart;
}

function hours(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  return seconds < 3600 ? `${Math.round(seconds / 60)} min` : `${(seconds / 3600).toFixed(1)} h`;
}

async function loadMetrics() {
  const id = enc(state.me.party_id);
  const figures = await Promise.all(WINDOWS.map((w) =>
    api("GET", `/v1/sellers/${id}/response-times?window=${w}`)));
  const maxAvg = Math.max(24 * 3600, ...figures.map((f) => f.average_response_time_seconds ?? 0));
  $("charts").replaceChildren(
    barChart("Late response rate (answered after 24 h or not at all)", figures.map((f) => ({
      label: f.window, value: f.late_response_rate,
      cls: (f.late_response_rate ?? 0) > 0.1 ? "bad" : "good" })),
      { max: 1, format: (v) => `${(v * 100).toFixed(1)} %`, id: "chart-late" }),
    barChart("Average response time", figures.map((f) => ({
      label: f.window, value: f.average_response_time_seconds,
      cls: (f.average_response_time_seconds ?? 0) > 24 * 3600 ? "bad" : "good" })),
      { max: maxAvg, format: hours, id: "chart-average", mark: { value: 24 * 3600, label: "24 h" } }));
  $("metrics-table").tBodies[0].replaceChildren(...figures.map((f) => el("tr", { "data-window": f.window },
    ...[f.window, f.buyer_messages, f.counted, f.answered, f.answered_late, f.unanswered_late,
        f.excluded, f.unanswered_within_24h].map((v) => el("td", {}, String(v))))));
}

// -- settings ---------------------------------------------------------------------------------
async function fillSettings() {
  if (state.me.role === "buyer") $("set-optout").checked = !!state.me.unsolicited_opt_out;
  if (state.me.role !== "seller") return;
  delete $("seller-settings").dataset.loaded;  // set again once the form shows the real values
  const s = await api("GET", `/v1/sellers/${enc(state.me.party_id)}/settings`);
  $("set-messaging").checked = s.messaging_enabled;
  $("set-bounce-optout").checked = s.opt_out_bounce_notices;
  // A list the message center does not know is left empty and only sent if the seller
  // types it: sending it would replace the real one (saving must never erase a list unseen).
  for (const [id, list] of [["set-authorized", s.authorized_senders], ["set-blocked", s.blocked_senders]]) {
    $(id).value = (list ?? []).join("\n");
    $(id).placeholder = list === null ? "(not shown here: type the whole list to replace it)" : "";
    $(id).dataset.edited = "";
  }
  $("set-service").value = s.customer_service_email ?? "";
  $("seller-settings").dataset.loaded = "yes";
}

const lines = (id) => $(id).value.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);

async function saveSellerSettings() {
  // A list is sent (whole: it replaces the old one) only when the seller edited it.
  const body = { messaging_enabled: $("set-messaging").checked,
                 opt_out_bounce_notices: $("set-bounce-optout").checked };
  if ($("set-authorized").dataset.edited) body.authorized_senders = lines("set-authorized");
  if ($("set-blocked").dataset.edited) body.blocked_senders = lines("set-blocked");
  const service = $("set-service").value.trim();
  if (service) body.customer_service_email = service;
  await api("PUT", `/v1/sellers/${enc(state.me.party_id)}/settings`, body);
  say("Settings saved; they apply within seconds.");
}

async function saveBuyerSettings() {
  await api("PUT", `/v1/buyers/${enc(state.me.party_id)}/preferences`,
            { unsolicited_opt_out: $("set-optout").checked });
  say("Preferences saved; they apply within seconds.");
}

// -- the dispute timeline (G1) ----------------------------------------------------------------
const MARKS = {
  verified: ["✔ verified", "The signature of a trusted key verifies this event as recorded."],
  not_verified: ["✘ NOT VERIFIED", "Forged or tampered with: do not rely on this event."],
  unsigned: ["unsigned", "An outside system's event: there is no signature to check."],
};

function timelineItem(e) {
  const [label, why] = MARKS[e.verification];
  const detail = e.flag ? ` (${e.flag.replace("forged:", "forged: ")})` : "";
  return el("li", { class: `tl-event ${e.verification.replace("_", "-")}`, "data-event": e.event_id,
                    "data-verification": e.verification },
    el("time", { dateTime: e.occurred_at, title: e.occurred_at }, new Date(e.occurred_at).toLocaleString()),
    el("strong", { class: "tl-type" }, e.type),
    el("span", { class: "tl-producer" }, `by ${e.producer}`),
    el("span", { class: "mark", title: why }, label + detail),
    e.message_id ? el("div", { class: "meta" }, `message ${e.message_id}`) : "",
    (e.erased_parties || []).length
      ? el("div", { class: "meta erased" }, `erased: ${e.erased_parties.join(", ")}`) : "");
}

function renderTimeline(t) {
  const bad = t.events.filter((e) => e.verification === "not_verified").length;
  $("timeline-summary").textContent = `${t.events.length} event(s)`
    + (t.as_of ? ` as it stood at ${new Date(t.as_of).toLocaleString()}` : " (now)")
    + (bad ? ` · ${bad} NOT VERIFIED` : " · all verified or unsigned")
    + ((t.erased_parties || []).length
      ? ` · personal data erased for ${t.erased_parties.join(", ")}` : "");
  $("timeline").replaceChildren(...t.events.map(timelineItem));
}

async function loadTimeline(orderId) {
  const t = await api("GET", `/v1/orders/${enc(orderId)}/timeline`);
  // The slider's stops are the distinct instants at which the order changed.
  const times = [...new Set(t.events.map((e) => e.occurred_at))]
    .sort((a, b) => Date.parse(a) - Date.parse(b));
  state.timeline = { order: orderId, times };
  const slider = $("as-of");
  slider.max = String(times.length - 1); slider.value = slider.max;
  $("as-of-label").textContent = new Date(times[times.length - 1]).toLocaleString();
  $("timeline-slider").hidden = false;
  renderTimeline(t);
  say("");
}

async function timelineAt(index) {
  const { order, times } = state.timeline;
  const asOf = times[index];
  const t = await api("GET", `/v1/orders/${enc(order)}/timeline?as_of=${enc(asOf)}`);
  if (state.timeline.order === order && $("as-of").value === String(index)) renderTimeline(t);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value.trim()); });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem("bsm-token"); location.reload(); });
  for (const b of document.querySelectorAll("#pages button"))
    b.addEventListener("click", guarded(() => showPage(b.dataset.page)));
  for (const b of document.querySelectorAll("#views button[data-filter]"))
    b.addEventListener("click", guarded(() => { state.filter = b.dataset.filter; return refresh(); }));
  $("search").addEventListener("submit", guarded((e) => { e.preventDefault(); state.order = $("order-search").value.trim(); return refresh(); }));
  $("template").addEventListener("change", () => {
    const t = state.templates.find((x) => x.template_id === $("template").value);
    if (t) $("reply-text").value = t.text;
  });
  $("reply").addEventListener("submit", guarded((e) => { e.preventDefault(); return sendReply(); }));
  for (const id of ["set-authorized", "set-blocked"])
    $(id).addEventListener("input", () => { $(id).dataset.edited = "yes"; });
  $("seller-settings").addEventListener("submit", guarded((e) => { e.preventDefault(); return saveSellerSettings(); }));
  $("buyer-settings").addEventListener("submit", guarded((e) => { e.preventDefault(); return saveBuyerSettings(); }));
  $("timeline-form").addEventListener("submit", guarded((e) => { e.preventDefault(); return loadTimeline($("timeline-order").value.trim()); }));
  $("as-of").addEventListener("input", () => {
    const t = state.timeline.times[Number($("as-of").value)];
    if (t) $("as-of-label").textContent = new Date(t).toLocaleString();
  });
  $("as-of").addEventListener("change", guarded(() => timelineAt(Number($("as-of").value))));
  // A token in the fragment (never sent to the server) or from this tab's session.
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) history.replaceState(null, "", location.pathname);
  const saved = fromHash || sessionStorage.getItem("bsm-token");
  if (saved) signIn(saved);
});
