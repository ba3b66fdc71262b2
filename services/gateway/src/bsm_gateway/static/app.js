// The web message center: plain JavaScript modules over the gateway's JSON API. No inline
// script, no third-party code (the page runs under a strict Content-Security-Policy); message
// HTML arrives sanitized by the server and is the only thing ever inserted as HTML (the
// record's raw HTML is shown as source text, never rendered). Charts are SVG elements built
// here (no chart library, nothing from another host). Every word shown comes from the
// catalogs in /app/i18n/ (i18n.js).
import { pick, use, t, tOr, when, number } from "./i18n.js";
import { openCompose, loadCompose, wireCompose, loadTemplateOptions } from "./compose.js";
import { wireOperator, loadReportStats } from "./operator.js";
import { wireTemplates, loadTemplatesPage } from "./templates.js";
import { state, $, el, svg, enc, api, say, guarded, upload, duration } from "./common.js";

const PAGE_SIZE = 20;
const POLL_MS = 10000;

// -- sign-in, language and pages ------------------------------------------------------------
const pickLanguage = () => pick(localStorage.getItem("bsm-lang"), state.me?.locale,
                                navigator.languages, navigator.language);

async function signIn(token) {
  state.token = token;
  try {
    state.me = await api("GET", "/v1/me");
  } catch (e) { state.token = null; say(t("login.failed", { error: e.message })); return; }
  sessionStorage.setItem("bsm-token", token);
  await use(pickLanguage());
  applyRole();
  $("login").hidden = true; $("logout").hidden = false; $("pages").hidden = false;
  // Sellers start in *Response needed* (E1); the others see all their conversations.
  state.filter = state.me.role === "seller" ? "response_needed" : "all";
  // Operators read no conversations: their first page is the record.
  await showPage(state.me.role === "operator" ? "timeline" : "messages");
  setInterval(guarded(poll), POLL_MS);
}

/** Texts and visibility that depend on the role (again after a change of language). */
function applyRole() {
  const role = state.me.role;
  const seller = role === "seller", buyer = role === "buyer";
  const party = seller || buyer, record = role === "dispute" || role === "operator";
  $("title").textContent = t(`title.${role}`);
  document.title = t(`title.${role}`);
  $("who").textContent = t("app.who", { party: state.me.party_id, role: t(`role.${role}`) });
  const show = { "seller-only": seller, "buyer-only": buyer, "party-only": party,
                 "record-only": record, "reader-only": party || role === "dispute",
                 "operator-only": role === "operator" };
  for (const [cls, visible] of Object.entries(show))
    for (const node of document.querySelectorAll(`.${cls}`)) node.hidden = !visible;
  for (const b of document.querySelectorAll("#views button[data-filter]")) {
    b.hidden = !seller && b.dataset.filter !== "all";
    if (b.dataset.filter === "all") b.textContent = buyer ? t("view.buyer_all") : t("view.all");
  }
  $("list-heading").textContent = buyer ? t("inbox.heading_buyer") : t("inbox.heading");
}

async function showPage(page) {
  state.page = page;
  say("");
  for (const section of document.querySelectorAll(".page"))
    section.hidden = section.dataset.page !== page;
  for (const b of document.querySelectorAll("#pages button"))
    b.setAttribute("aria-pressed", String(b.dataset.page === page));
  if (page === "messages") {
    await refresh();
    if (state.me.role === "buyer") await loadNotifications();
  }
  if (page === "compose") await openCompose(null);
  if (page === "templates") await loadTemplatesPage();
  if (page === "metrics") await loadMetrics();
  if (page === "settings") await fillSettings();
  if (page === "timeline") $("timeline-order").focus();
  if (page === "reports") await loadReportStats();
}
state.showPage = showPage;

// -- the inbox --------------------------------------------------------------------------------
/** One page of the inbox: the gateway pages newest first with an opaque cursor
 * (`state.cursors[i]` starts page i) and searches order ids ignoring case and spaces. */
async function fetchPage(cursor) {
  const q = new URLSearchParams({ filter: state.order ? "all" : state.filter,
                                  limit: String(PAGE_SIZE) });
  if (state.order) q.set("order_id", state.order);
  if (cursor) q.set("cursor", cursor);
  return api("GET", `/v1/conversations?${q}`);
}

async function refresh({ quiet = false } = {}) {
  for (const b of document.querySelectorAll("#views button[data-filter]"))
    b.setAttribute("aria-pressed", String(!state.order && b.dataset.filter === state.filter));
  if (!quiet) { state.pageIndex = 0; state.cursors = [null]; }
  const page = await fetchPage(state.cursors[state.pageIndex]);
  const list = page.conversations;
  state.next = page.next;
  const before = state.seen;
  state.seen = new Map(list.map((c) => [c.conversation_id, c.messages]));
  state.conversations = list;
  $("search-clear").hidden = !state.order;
  renderList();
  if (quiet && before) {
    const fresh = list.filter((c) => (before.get(c.conversation_id) ?? 0) < c.messages);
    if (fresh.length) say(t("inbox.new_messages", { n: fresh.length }));
    const open = state.conv && fresh.find((c) => c.conversation_id === state.conv.conversation_id);
    if (open) await openConversation(open.conversation_id, { focus: false });
  }
}

async function turnPage(step) {
  if (step > 0) state.cursors[state.pageIndex + 1] = state.next;
  state.pageIndex += step;
  state.seen = null;  // another page: nothing on it is "new"
  await refresh({ quiet: true });
}

function timeLeft(c) {
  // The 24-hour response clock (E1, F1): the gateway says when the answer is due — a day after
  // the oldest buyer message still unanswered — and nothing when no answer is owed.
  if (!c.response_due_at || state.me.role === "buyer") return null;
  const left = Date.parse(c.response_due_at) - Date.now();
  return left >= 0
    ? el("span", { class: "clock", "data-left-ms": String(left) },
         t("inbox.time_left", { time: duration(left) }))
    : el("span", { class: "clock late", "data-left-ms": String(left) },
         t("inbox.overdue", { time: duration(-left) }));
}

/** A party as the mail shows it: its display name, "erased" once its data is erased, else
 * its id (a name the message center has not learnt yet). */
function named(name, erased, id) {
  return erased ? t("inbox.erased") : name || id;
}

function counterpart(c) {
  const role = state.me.role;
  const buyer = named(c.buyer_name, c.buyer_erased, c.buyer_id);
  const seller = named(c.seller_name, c.seller_erased, c.seller_id);
  if (role === "seller") return t("inbox.buyer", { party: buyer });
  if (role === "buyer") return t("inbox.seller", { party: seller });
  return t("inbox.parties", { buyer, seller });
}

function renderList() {
  const shown = state.conversations;
  const focused = document.activeElement?.closest?.("#list li")?.dataset.conversation;
  const list = $("list");
  list.replaceChildren();
  if (!shown.length)
    list.append(el("li", { class: "empty" }, state.order
      ? t("inbox.no_results", { order: state.order }) : t("inbox.empty")));
  for (const c of shown) {
    const open = state.conv?.conversation_id === c.conversation_id;
    const button = el("button", { type: "button", class: "conv" },
      el("strong", { class: "subject" }, c.subject || t("thread.no_subject")),
      el("span", { class: "meta party" }, counterpart(c)),
      el("span", { class: "meta" }, t("inbox.line", {
        order: c.order_id ?? "—", n: c.messages, state: t(`state.${c.state}`) })),
      el("span", { class: "meta" }, t("inbox.last", { date: when(c.last_message_at) })),
      timeLeft(c) ?? "",
      c.unread ? el("span", { class: "badge" }, t("inbox.unread", { n: c.unread })) : "");
    if (open) button.setAttribute("aria-current", "true");
    button.addEventListener("click", guarded(() => openConversation(c.conversation_id)));
    const item = el("li", { class: c.unread ? "unread" : "",
                            "data-conversation": c.conversation_id }, button);
    list.append(item);
    if (focused === c.conversation_id) button.focus();
  }
  $("pager").hidden = state.pageIndex === 0 && !state.next;
  $("page-info").textContent = t("inbox.page", { page: state.pageIndex + 1 });
  $("page-prev").disabled = state.pageIndex === 0;
  $("page-next").disabled = !state.next;
}

// Polling keeps the inbox current while the page is in view (no reload needed).
async function poll() {
  if (!state.me || state.page !== "messages" || document.visibilityState !== "visible") return;
  if (document.querySelector("dialog[open]")) return;
  if (state.me.role === "operator") return;
  await refresh({ quiet: true });
}

// Platform notices are not seller messages: a buyer sees them apart, as notifications.
async function loadNotifications() {
  const notices = await api("GET", "/v1/notifications");
  const list = $("notice-list");
  list.replaceChildren();
  if (!notices.length) list.append(el("li", { class: "empty" }, t("notices.empty")));
  for (const n of notices) {
    list.append(el("li", { class: "notice", "data-message": n.message_id },
      el("strong", {}, t("notices.not_delivered", {
        subject: n.subject || t("thread.no_subject") })),
      el("div", { class: "meta" }, t("notices.meta", { order: n.order_id ?? "—", date: when(n.at) })
        + (n.rule ? ` · ${t("notices.rule", { rule: n.rule })}` : "")),
      el("p", {}, n.explanation),
      n.remedy ? el("p", { class: "remedy" }, t("notices.remedy", { remedy: n.remedy })) : ""));
  }
}

function senderLabel(m, mine) {
  if (mine) return t("thread.you");
  return t(`sender.${m.sender_role ?? "platform"}`);
}

function outcomeOf(m) {
  const b = m.outcome.bounce;
  if (m.outcome.status === "bounced")
    return el("p", { class: "bounced" }, t("thread.bounced", {
      explanation: b?.explanation ?? "", remedy: b?.remedy ?? "" }));
  if (b?.after_delivery)
    return el("p", { class: "bounced" }, t("thread.email_bounced", {
      explanation: b.explanation ?? "", remedy: b.remedy ?? "" }));
  return el("p", { class: "meta" }, t(`outcome.${m.outcome.status}`));
}

function messageItem(m) {
  const mine = m.sender_party_id === state.me.party_id;
  const body = el("div", { class: "body" });
  // The only HTML ever inserted: the message's, sanitized by the server (nh3).
  if (m.html) body.innerHTML = m.html; else body.textContent = m.text ?? "";
  const files = (m.attachments || []).length
    ? el("ul", { class: "attachments", "aria-label": t("thread.attachments") },
      ...m.attachments.map((a) => {
        const link = el("button", { type: "button", class: "link", "data-sha256": a.sha256 },
                        `📎 ${a.filename}`);
        link.addEventListener("click", guarded(() => download(m.message_id, a)));
        return el("li", {}, link, ` (${a.content_type}, ${number(Math.ceil(a.size / 1024))} KB)`);
      }))
    : "";
  const badges = el("div", { class: "badges" });
  if (m.contact_reason)
    badges.append(el("span", { class: "tag" },
                     tOr(`reason.${m.contact_reason}`, m.contact_reason)));
  if (m.reported) badges.append(el("span", { class: "tag reported" }, t("thread.reported")));
  if (m.response_not_needed)
    badges.append(el("span", { class: "tag" }, t("thread.no_response_needed")));
  const item = el("li", { class: `${mine ? "mine" : ""} from-${m.sender_role ?? "platform"}`,
                          "data-message": m.message_id },
    el("div", { class: "meta" }, `${senderLabel(m, mine)} · ${when(m.submitted_at)}`),
    badges,
    m.quoted ? el("blockquote", { class: "quote" }, m.quoted) : "", body, files, outcomeOf(m));
  const party = state.me.role === "seller" || state.me.role === "buyer";
  if (!mine && party && m.outcome.status === "delivered") {
    const actions = el("div", { class: "actions" });
    if (!m.response_not_needed && state.me.role === "seller") {
      const b = el("button", { type: "button", class: "mark" }, t("thread.mark"));
      b.addEventListener("click", guarded(() => act(m.message_id, "no-response-needed")));
      actions.append(b);
    }
    if (!m.reported) {
      const b = el("button", { type: "button", class: "report" }, t("thread.report"));
      b.addEventListener("click", guarded(() => openReport(m.message_id, b)));
      actions.append(b);
    }
    item.append(actions);
  }
  return item;
}

async function openConversation(id, { focus = true } = {}) {
  const c = await api("GET", `/v1/conversations/${enc(id)}`);
  state.conv = c;
  $("thread").hidden = false;
  $("thread-subject").textContent = c.subject || t("thread.no_subject");
  $("thread-meta").textContent = `${counterpart(c)} · ${t("inbox.line", {
    order: c.order_id ?? "—", n: c.messages, state: t(`state.${c.state}`) })}`;
  $("contact-from-thread").hidden = state.me.role !== "seller" || !c.order_id;
  $("messages").replaceChildren(...c.message_list.map(messageItem));
  for (const b of document.querySelectorAll("#list button.conv"))
    b.toggleAttribute("aria-current", b.closest("li").dataset.conversation === id);
  if (state.me.role === "seller") await loadTemplates(c.order_id);
  if (focus) $("thread").focus();
}

async function loadTemplates(orderId) {
  state.templates = await loadTemplateOptions($("template"), orderId);
}

async function act(messageId, action, body) {
  await api("POST", `/v1/messages/${enc(messageId)}/${action}`, body ?? {});
  say(action === "reports" ? t("thread.reported_done") : t("thread.marked_done"));
  setTimeout(guarded(async () => {
    await refresh({ quiet: true });
    if (state.conv) await openConversation(state.conv.conversation_id, { focus: false });
  }), 1500);
}

// -- reporting: a dialog with the fixed reasons (E4), never window.prompt -------------------
const REPORT_REASONS = ["spam", "inappropriate", "essential_misuse", "other"];

async function reportReasons() {
  // The gateway's list where it publishes one; else the contract's fixed list.
  if (!state.reportReasons) {
    try {
      const listed = await api("GET", "/v1/report-reasons");
      state.reportReasons = (Array.isArray(listed) ? listed : listed.reasons ?? [])
        .map((r) => (typeof r === "string" ? r : r.reason ?? r.code)).filter(Boolean);
    } catch { state.reportReasons = []; }
    if (!state.reportReasons.length) state.reportReasons = REPORT_REASONS;
  }
  return state.reportReasons;
}

async function openReport(messageId, opener) {
  const reasons = await reportReasons();
  state.report = { messageId, opener };
  $("report-reasons").replaceChildren(...reasons.map((r) => el("div", { class: "choice" },
    el("input", { type: "radio", name: "report-reason", id: `report-${r}`, value: r,
                  required: true }),
    el("label", { htmlFor: `report-${r}` }, tOr(`report_reason.${r}`, r)))));
  $("report-text").value = "";
  $("report-error").textContent = "";
  $("report-dialog").showModal();
}

async function submitReport() {
  const chosen = document.querySelector('input[name="report-reason"]:checked')?.value;
  const text = $("report-text").value.trim();
  if (!chosen) { $("report-error").textContent = t("report.choose"); return; }
  if (chosen === "other" && !text) {
    $("report-error").textContent = t("report.need_text");
    return;
  }
  try {
    await act(state.report.messageId, "reports", { reason: chosen, ...(text ? { text } : {}) });
  } catch (e) { $("report-error").textContent = e.message; return; }
  $("report-dialog").close();
  say(t("thread.reported_done"));
}

// A download needs the bearer token, so it is fetched and handed to the browser as a blob.
async function download(messageId, a) {
  const response = await fetch(`/v1/messages/${enc(messageId)}/attachments/${enc(a.sha256)}`,
                               { headers: { "Authorization": `Bearer ${state.token}` } });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: a.filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  say(t("thread.downloaded", { file: a.filename }));
}

async function sendReply() {
  const msgs = state.conv.message_list;
  const last = msgs[msgs.length - 1];
  const files = [...$("reply-files").files];
  if (files.length) say(t("compose.uploading", { n: files.length }));
  const stored = [];
  for (const f of files) stored.push(await upload(f));
  const r = await api("POST", "/v1/messages", { in_reply_to: last.message_id,
    text: $("reply-text").value, subject: `Re: ${state.conv.subject}`, channel: "web",
    attachments: stored.map((a) => ({ sha256: a.sha256, filename: a.filename })) });
  $("reply-text").value = ""; $("reply-files").value = "";
  say(t("compose.sent", { id: r.message_id, n: stored.length }));
}

// -- response times (F1) and today's quota (F2) ---------------------------------------------
const WINDOWS = ["7d", "30d", "90d"];

function barChart(title, bars, { max, format, id, mark }) {
  const width = 460, rowH = 34, left = 70, right = 90, top = 28;
  const height = top + bars.length * rowH + 8;
  const chart = svg("svg", { id, class: "chart", viewBox: `0 0 ${width} ${height}`,
                             role: "img", "aria-label": title });
  chart.append(svg("title", {}, title), svg("text", { x: 0, y: 16, class: "chart-title" }, title));
  const span = width - left - right;
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    const w = b.value == null ? 0 : Math.max(1, Math.round(span * Math.min(b.value, max) / max));
    chart.append(svg("text", { x: 0, y: y + 18, class: "chart-label" }, t(`window.${b.window}`)),
      svg("rect", { x: left, y: y + 4, width: span, height: 20, class: "chart-track" }),
      svg("rect", { x: left, y: y + 4, width: w, height: 20, class: `chart-bar ${b.cls ?? ""}`,
                    "data-window": b.window, "data-value": b.value ?? "" }),
      svg("text", { x: left + span + 6, y: y + 18, class: "chart-value" },
          b.value == null ? t("metrics.no_data") : format(b.value)));
  });
  if (mark) {  // a reference line, e.g. the 24-hour limit
    const x = left + Math.round(span * mark.value / max);
    chart.append(svg("line", { x1: x, x2: x, y1: top, y2: height - 4, class: "chart-mark" }),
      svg("text", { x: x + 3, y: top - 2, class: "chart-label" }, mark.label));
  }
  return chart;
}

export function hours(seconds) {
  if (seconds < 60) return t("time.seconds", { n: number(Math.round(seconds)) });
  return seconds < 3600 ? t("time.minutes", { m: number(Math.round(seconds / 60)) })
    : t("time.hours", { h: number(seconds / 3600, { maximumFractionDigits: 1 }) });
}

export const percent = (v) => number(v, { style: "percent", minimumFractionDigits: 1,
                                          maximumFractionDigits: 1 });

async function loadMetrics() {
  const id = enc(state.me.party_id);
  loadQuota(state.me.party_id);
  const figures = await Promise.all(WINDOWS.map((w) =>
    api("GET", `/v1/sellers/${id}/response-times?window=${w}`)));
  const maxAvg = Math.max(24 * 3600, ...figures.map((f) => f.average_response_time_seconds ?? 0));
  $("charts").replaceChildren(
    barChart(t("metrics.late_chart"), figures.map((f) => ({
      window: f.window, value: f.late_response_rate,
      cls: (f.late_response_rate ?? 0) > 0.1 ? "bad" : "good" })),
      { max: 1, format: percent, id: "chart-late" }),
    barChart(t("metrics.average"), figures.map((f) => ({
      window: f.window, value: f.average_response_time_seconds,
      cls: (f.average_response_time_seconds ?? 0) > 24 * 3600 ? "bad" : "good" })),
      { max: maxAvg, format: hours, id: "chart-average",
        mark: { value: 24 * 3600, label: t("time.hours", { h: 24 }) } }));
  $("metrics-table").tBodies[0].replaceChildren(...figures.map((f) =>
    el("tr", { "data-window": f.window },
      el("th", { scope: "row" }, t(`window.${f.window}`)),
      ...[f.buyer_messages, f.counted, f.answered, f.answered_late, f.unanswered_late,
          f.excluded, f.unanswered_within_24h].map((v) => el("td", {}, number(v))))));
}

async function loadQuota(sellerId) {
  try {
    const q = await api("GET", `/v1/sellers/${enc(sellerId)}/quota`);
    $("quota-text").textContent = t("quota.used", { used: number(q.used), limit: number(q.limit),
                                                    day: q.day });
    $("quota-meter").max = Math.max(1, q.limit); $("quota-meter").value = q.used;
    $("quota-meter").hidden = false;
    $("quota").dataset.used = String(q.used); $("quota").dataset.limit = String(q.limit);
  } catch (e) {
    // Older gateways do not pass F2 through: say so instead of a figure.
    $("quota-text").textContent = e.status === 404 ? t("quota.unavailable") : e.message;
    $("quota-meter").hidden = true;
  }
}

// -- settings (a seller's own, or any seller's for an operator) ------------------------------
async function fillSettings() {
  const role = state.me.role;
  const seller = role === "seller" ? state.me.party_id : state.settingsSeller;
  $("buyer-settings").hidden = role !== "buyer";
  $("seller-settings").hidden = !seller;
  $("settings-of").hidden = role !== "operator";
  if (role === "operator")
    $("settings-of").textContent = t("settings.of_seller", { party: seller ?? "—" });
  if (role === "buyer") $("set-optout").checked = !!state.me.unsolicited_opt_out;
  if (!seller) return;
  delete $("seller-settings").dataset.loaded;  // set again once the form shows the real values
  const s = await api("GET", `/v1/sellers/${enc(seller)}/settings`);
  $("set-messaging").checked = s.messaging_enabled;
  $("set-bounce-optout").checked = s.opt_out_bounce_notices;
  // A list the message center does not know is left empty and only sent if the seller
  // types it: sending it would replace the real one (saving must never erase a list unseen).
  for (const [id, list] of [["set-authorized", s.authorized_senders],
                            ["set-blocked", s.blocked_senders]]) {
    $(id).value = (list ?? []).join("\n");
    $(id).placeholder = list === null ? t("settings.list_unknown") : "";
    $(id).dataset.edited = "";
  }
  $("set-service").value = s.customer_service_email ?? "";
  $("seller-settings").dataset.loaded = "yes";
  $("seller-settings").dataset.seller = seller;
}

const lines = (id) => $(id).value.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);

async function saveSellerSettings() {
  // A list is sent (whole: it replaces the old one) only when it was edited.
  const body = { messaging_enabled: $("set-messaging").checked,
                 opt_out_bounce_notices: $("set-bounce-optout").checked };
  if ($("set-authorized").dataset.edited) body.authorized_senders = lines("set-authorized");
  if ($("set-blocked").dataset.edited) body.blocked_senders = lines("set-blocked");
  const service = $("set-service").value.trim();
  if (service) body.customer_service_email = service;
  await api("PUT", `/v1/sellers/${enc($("seller-settings").dataset.seller)}/settings`, body);
  say(t("settings.saved"));
}

async function saveBuyerSettings() {
  await api("PUT", `/v1/buyers/${enc(state.me.party_id)}/preferences`,
            { unsolicited_opt_out: $("set-optout").checked });
  say(t("settings.saved_preferences"));
}

// -- the dispute timeline (G1) ----------------------------------------------------------------
const MARKS = { verified: "verified", not_verified: "not_verified", unsigned: "unsigned" };

function field(label, value, cls = "") {
  if (value === undefined || value === null || value === "") return "";
  return el("div", { class: `tl-field ${cls}` }, el("span", { class: "tl-key" }, label), " ",
            value instanceof Node ? value : String(value));
}

function violationList(violations) {
  if (!violations?.length) return "";
  return el("ul", { class: "tl-violations" }, ...violations.map((v) => {
    const where = v.span?.field && v.span.start != null
      ? ` ${t("timeline.span", { field: v.span.field, start: v.span.start,
                                 end: v.span.end })}` : "";
    return el("li", { "data-rule": v.rule ?? "", "data-code": v.code ?? "" },
      el("strong", {}, `${v.rule ?? ""} ${v.code ?? ""}`), `: ${v.detail ?? ""}${where}`,
      v.remedy ? el("div", { class: "remedy" }, t("notices.remedy", { remedy: v.remedy })) : "");
  }));
}

/** What happened, from the archived event itself: the message as sent (its HTML as source
 * text, never rendered: the record keeps it exactly as submitted, unsanitized), the policy's
 * violations, the bounce, the report, who marked it. */
function eventDetails(e) {
  const d = e.event?.data;
  if (!d) return "";
  const out = el("div", { class: "tl-details" });
  switch (e.type) {
    case "MessageSubmitted":
      out.append(
        field(t("timeline.from"), d.sender?.party_id),
        field(t("timeline.to"), d.recipient?.party_id),
        field(t("timeline.channel"), d.channel),
        field(t("compose.reason"),
              d.contact_reason && tOr(`reason.${d.contact_reason}`, d.contact_reason)),
        field(t("compose.subject"), d.subject),
        d.text != null ? field(t("timeline.text"), el("pre", { class: "tl-text" }, d.text)) : "",
        d.html != null
          ? field(t("timeline.html_source"), el("pre", { class: "tl-html" }, d.html)) : "",
        field(t("thread.attachments"), (d.attachments || []).map((a) => a.filename).join(", ")));
      break;
    case "PolicyChecked":
      out.append(field(t("timeline.verdict"), tOr(`verdict.${d.verdict}`, d.verdict),
                       `verdict-${d.verdict}`),
                 violationList(d.violations));
      break;
    case "Delivered":
      out.append(field(t("timeline.channels"), (d.channels || []).join(", ")),
                 field(t("timeline.to"), d.recipient_party_id));
      break;
    case "Bounced":
      out.append(field(t("timeline.stage"), d.stage), field(t("timeline.rule"), d.rule),
                 field(t("timeline.reason_code"), d.reason_code),
                 field(t("timeline.explanation"), d.explanation),
                 field(t("timeline.remedy"), d.remedy), violationList(d.violations));
      break;
    case "Reported":
      out.append(field(t("timeline.reported_by"), d.reporter_party_id),
                 field(t("timeline.report_reason"), tOr(`report_reason.${d.reason}`, d.reason)),
                 field(t("timeline.report_text"), d.text));
      break;
    case "ResponseNotNeeded":
      out.append(field(t("timeline.marked_by"), d.party_id));
      break;
    case "OrderPlaced": case "OrderStatusChanged":
      out.append(field(t("timeline.order_status"), d.status));
      break;
    case "PartyErased":
      out.append(field(t("timeline.party"), d.party_id),
                 field(t("timeline.requested_by"), d.requested_by),
                 field(t("operator.reason"), d.reason));
      break;
    case "SellerMessagingRestricted": case "SellerMessagingRestrictionLifted":
      out.append(field(t("timeline.party"), d.seller_id), field(t("timeline.level"), d.level),
                 field(t("timeline.requested_by"), d.lifted_by),
                 field(t("operator.reason"), d.reason));
      break;
    case "BounceReportReceived":
      out.append(field(t("timeline.report_action"), d.action));
      break;
    default:
      return "";
  }
  return out.childNodes.length ? out : "";
}

function timelineItem(e) {
  const key = MARKS[e.verification];
  const detail = e.flag ? ` (${e.flag.replace("forged:", "forged: ")})` : "";
  return el("li", { class: `tl-event ${e.verification.replace("_", "-")}`, "data-event": e.event_id,
                    "data-verification": e.verification, "data-type": e.type },
    el("time", { dateTime: e.occurred_at, title: e.occurred_at }, when(e.occurred_at, true)),
    el("span", { class: "tl-head" },
      el("strong", { class: "tl-label" }, tOr(`event.${e.type}`, e.type)), " ",
      el("code", { class: "tl-type" }, e.type)),
    el("span", { class: "tl-producer" }, t("timeline.by", { producer: e.producer })),
    el("span", { class: "mark", title: t(`mark.${key}.why`) }, t(`mark.${key}`) + detail),
    e.message_id ? el("div", { class: "meta" }, t("timeline.message", { id: e.message_id })) : "",
    (e.erased_parties || []).length
      ? el("div", { class: "meta erased" },
           t("timeline.erased", { parties: e.erased_parties.join(", ") }))
      : "",
    eventDetails(e));
}

function renderTimeline(tl) {
  const bad = tl.events.filter((e) => e.verification === "not_verified").length;
  $("timeline-summary").textContent = [
    t("timeline.count", { n: tl.events.length }),
    tl.as_of ? t("timeline.summary_as_of", { date: when(tl.as_of, true) })
      : t("timeline.summary_now"),
    bad ? t("timeline.summary_bad", { n: bad }) : t("timeline.summary_good"),
    ...((tl.erased_parties || []).length
      ? [t("timeline.summary_erased", { parties: tl.erased_parties.join(", ") })] : []),
  ].join(" · ");
  $("timeline").replaceChildren(...tl.events.map(timelineItem));
}

/** The slider's label for a stop: the instant to the millisecond and what happened then. */
function stopLabel(index) {
  const { times, types } = state.timeline;
  const text = t("timeline.stop", { n: index + 1, total: times.length,
                                    date: when(times[index], true), events: types[index] });
  $("as-of-label").textContent = text;
  $("as-of").setAttribute("aria-valuetext", text);
}

function clearTimeline() {
  state.timeline = { order: null, times: [], types: [] };
  $("timeline").replaceChildren();
  $("timeline-summary").textContent = "";
  $("timeline-slider").hidden = true;
}

async function loadTimeline(orderId) {
  clearTimeline();  // an error must not leave the previous order on screen
  const tl = await api("GET", `/v1/orders/${enc(orderId)}/timeline`);
  // The slider's stops are the distinct instants at which the order changed.
  const times = [...new Set(tl.events.map((e) => e.occurred_at))]
    .sort((a, b) => Date.parse(a) - Date.parse(b));
  const types = times.map((at) => tl.events.filter((e) => e.occurred_at === at)
    .map((e) => tOr(`event.${e.type}`, e.type)).join(", "));
  state.timeline = { order: orderId, times, types };
  const slider = $("as-of");
  slider.max = String(Math.max(0, times.length - 1)); slider.value = slider.max;
  if (times.length) { stopLabel(times.length - 1); $("timeline-slider").hidden = false; }
  renderTimeline(tl);
  say("");
}

async function timelineAt(index) {
  const { order, times } = state.timeline;
  const asOf = times[index];
  const tl = await api("GET", `/v1/orders/${enc(order)}/timeline?as_of=${enc(asOf)}`);
  if (state.timeline.order === order && $("as-of").value === String(index)) renderTimeline(tl);
}

// -- wiring -----------------------------------------------------------------------------------
function submit(id, fn) {
  $(id).addEventListener("submit", guarded((e) => { e.preventDefault(); return fn(e); }));
}

document.addEventListener("DOMContentLoaded", guarded(async () => {
  await use(pickLanguage());
  $("language").value = localStorage.getItem("bsm-lang") ?? "";
  $("language").addEventListener("change", guarded(async () => {
    const chosen = $("language").value;
    if (chosen) localStorage.setItem("bsm-lang", chosen); else localStorage.removeItem("bsm-lang");
    await use(pickLanguage());
    if (state.me) { applyRole(); await showPage(state.page); }
  }));
  submit("login-form", () => signIn($("token").value.trim()));
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem("bsm-token"); location.reload();
  });
  for (const b of document.querySelectorAll("#pages button"))
    b.addEventListener("click", guarded(() => showPage(b.dataset.page)));
  for (const b of document.querySelectorAll("#views button[data-filter]"))
    b.addEventListener("click", guarded(() => {
      state.filter = b.dataset.filter; state.order = ""; $("order-search").value = "";
      return refresh();
    }));
  submit("search", () => { state.order = $("order-search").value.trim(); return refresh(); });
  $("search-clear").addEventListener("click", guarded(() => {
    state.order = ""; $("order-search").value = ""; return refresh();
  }));
  $("page-prev").addEventListener("click", guarded(() => turnPage(-1)));
  $("page-next").addEventListener("click", guarded(() => turnPage(1)));
  $("template").addEventListener("change", () => {
    const tpl = state.templates.find((x) => x.template_id === $("template").value);
    if (tpl) $("reply-text").value = tpl.text;
  });
  submit("reply", sendReply);
  $("contact-from-thread").addEventListener("click", guarded(async () => {
    await showPage("compose");
    await loadCompose(state.conv.order_id);
  }));
  submit("report-form", submitReport);
  $("report-cancel").addEventListener("click", () => $("report-dialog").close());
  $("report-dialog").addEventListener("close", () => state.report?.opener?.focus());
  for (const id of ["set-authorized", "set-blocked"])
    $(id).addEventListener("input", () => { $(id).dataset.edited = "yes"; });
  submit("seller-settings", saveSellerSettings);
  submit("buyer-settings", saveBuyerSettings);
  submit("timeline-form", () => loadTimeline($("timeline-order").value.trim()));
  $("as-of").addEventListener("input", () => stopLabel(Number($("as-of").value)));
  $("as-of").addEventListener("change", guarded(() => timelineAt(Number($("as-of").value))));
  wireCompose();
  wireTemplates();
  wireOperator({ percent, hours });
  // A token in the fragment (never sent to the server) or from this tab's session.
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) history.replaceState(null, "", location.pathname);
  const saved = fromHash || sessionStorage.getItem("bsm-token");
  if (saved) await signIn(saved);
}));

