// Writing a new message about an order. Sellers choose among the contact reasons the order
// allows now (the others are shown greyed, each with its rule and what would make it
// possible), see whether the buyer opted out and the chosen reason's text limit; buyers just
// write. While typing, the draft is checked by the gateway's lint (the same rule library the
// policy service decides with) and each violation's span is highlighted in the draft.
"use strict";
import { t, tOr, number } from "./i18n.js";
import { languageName } from "./templates.js";
import { state, $, el, enc, api, say, guarded, upload } from "./common.js";

const LINT_DELAY_MS = 400;
const compose = { order: null, options: null, lintSeq: 0, timer: null, templates: [] };

export async function loadTemplateOptions(select, orderId) {
  const q = orderId ? `?order_id=${enc(orderId)}` : "";
  const templates = await api("GET", `/v1/templates${q}`);
  // Platform templates have readable names in the catalogs; a seller's own keep theirs.
  const name = (tpl) => (tpl.kind === "platform" ? tOr(`template.${tpl.name}`, tpl.name)
    : tpl.name);
  select.replaceChildren(el("option", { value: "" }, t("compose.no_template")),
    ...templates.map((tpl) => el("option", {
      value: tpl.template_id, "data-locale": tpl.locale ?? "",
      "data-fell-back": String(!!tpl.fell_back) },
    // A text not in the buyer's language says so (never a silent fallback).
    tpl.fell_back
      ? t("templates.fell_back", { name: name(tpl), language: languageName(tpl.locale) })
      : `${name(tpl)}${tpl.locale ? ` (${languageName(tpl.locale)})` : ""}`)));
  return templates;
}

export async function openCompose(orderId) {
  $("compose").hidden = !compose.order;
  if (orderId) { $("compose-order-id").value = orderId; await loadCompose(orderId); }
  else if (!compose.order) $("compose-order-id").focus();
}

function resetDraft() {
  for (const id of ["compose-subject", "compose-text", "compose-files"]) $(id).value = "";
  $("lint-list").replaceChildren();
  $("lint-summary").textContent = "";
  $("draft-marks").replaceChildren();
  updateCount();
}

export async function loadCompose(orderId) {
  compose.order = null; compose.options = null;
  $("compose").hidden = true;
  $("compose-order-id").value = orderId;
  const seller = state.me.role === "seller";
  if (seller) {
    compose.options = await api("GET", `/v1/orders/${enc(orderId)}/contact-options`);
    renderReasons(compose.options);
    compose.templates = await loadTemplateOptions($("compose-template"), orderId);
  }
  compose.order = orderId;
  resetDraft();
  $("compose").hidden = false;
  $("compose").dataset.order = orderId;
  (document.querySelector('#reason-list input:not(:disabled)') ?? $("compose-subject")).focus();
}

function renderReasons(options) {
  const optout = $("compose-optout");
  const notes = [];
  if (options.buyer_opted_out) notes.push(t("compose.opted_out"));
  for (const b of options.blocked_by || []) notes.push(`${b.rule}: ${b.detail} ${b.remedy ?? ""}`);
  optout.textContent = notes.join(" ");
  optout.hidden = !notes.length;
  optout.dataset.optedOut = String(!!options.buyer_opted_out);
  $("reason-list").replaceChildren(...options.reasons.map((r) => {
    const id = `reason-${r.reason}`;
    const input = el("input", { type: "radio", name: "contact-reason", id, value: r.reason,
                                disabled: !r.available });
    const facts = [t(r.essential ? "compose.essential" : "compose.not_essential"),
                   t("compose.limit_short", { limit: number(r.text_limit) })];
    if (r.attachments_min) facts.push(t("compose.needs_files", { n: r.attachments_min }));
    if (options.buyer_opted_out && !r.delivered_despite_opt_out)
      facts.push(t("compose.blocked_by_optout"));
    const why = r.why_not.map((w) => el("li", { "data-rule": w.rule },
      el("strong", {}, w.rule), ` ${w.detail}`,
      w.remedy
        ? el("span", { class: "remedy" }, ` ${t("notices.remedy", { remedy: w.remedy })}`)
        : ""));
    const whyList = why.length ? el("ul", { class: "why-not", id: `${id}-why` }, ...why) : "";
    if (why.length) input.setAttribute("aria-describedby", `${id}-why`);
    input.addEventListener("change", () => chooseReason(r));
    return el("div", { class: `reason ${r.available ? "available" : "unavailable"}`,
                       "data-reason": r.reason },
      input, el("label", { htmlFor: id }, tOr(`reason.${r.reason}`, r.reason),
                el("span", { class: "meta" }, ` · ${facts.join(" · ")}`)),
      whyList);
  }));
  $("compose-limit").textContent = options.available.length ? t("compose.choose_reason")
    : t("compose.no_reason");
}

function chosenReason() {
  const id = document.querySelector('input[name="contact-reason"]:checked')?.value;
  return compose.options?.reasons.find((r) => r.reason === id) ?? null;
}

function chooseReason(r) {
  $("compose-limit").textContent = t("compose.limit", { limit: number(r.text_limit) })
    + (r.attachments_max ? ` ${t("compose.files_range", { min: r.attachments_min,
                                                         max: r.attachments_max })}`
      : ` ${t("compose.no_files")}`);
  // A reason that takes no attachment cannot be given one.
  $("compose-files").disabled = !r.attachments_max;
  if (!r.attachments_max) $("compose-files").value = "";
  updateCount();
  scheduleLint();
}

const chars = (s) => Array.from(s).length;  // the rule library counts code points

function updateCount() {
  const n = chars($("compose-text").value);
  const limit = chosenReason()?.text_limit;
  const counter = $("compose-count");
  counter.textContent = limit ? t("compose.count_of", { n: number(n), limit: number(limit) })
    : t("compose.count", { n: number(n) });
  counter.classList.toggle("over", !!limit && n > limit);
  counter.dataset.count = String(n);
}

function draftBody() {
  const r = chosenReason();
  const subject = $("compose-subject").value;
  return { order_id: compose.order, channel: "web",
           ...(r ? { contact_reason: r.reason } : {}),
           ...(subject ? { subject } : {}), text: $("compose-text").value };
}

function scheduleLint() {
  clearTimeout(compose.timer);
  compose.timer = setTimeout(guarded(lint), LINT_DELAY_MS);
}

async function lint() {
  if (!compose.order || !$("compose-text").value) { showViolations([]); return; }
  const seq = ++compose.lintSeq;
  const answer = await api("POST", "/v1/messages:lint", draftBody());
  if (seq !== compose.lintSeq) return;  // an older answer arriving late
  showViolations(answer.violations);
}

/** The draft with the text's violations marked: a layer under the (transparent) textarea,
 * holding the same text with <mark>s where the rule library put its spans (code points). */
function highlight(violations) {
  const text = Array.from($("compose-text").value);
  const spans = violations.filter((v) => v.span?.field === "text" && v.span.start != null)
    .map((v) => ({ start: v.span.start, end: Math.max(v.span.end, v.span.start + 1), v }))
    .sort((a, b) => a.start - b.start);
  const nodes = [];
  let at = 0;
  for (const s of spans) {
    if (s.start < at) continue;  // overlapping spans: the first one is marked
    nodes.push(text.slice(at, s.start).join(""));
    nodes.push(el("mark", { "data-rule": s.v.rule ?? "", "data-code": s.v.code ?? "" },
                  text.slice(s.start, s.end).join("")));
    at = s.end;
  }
  nodes.push(`${text.slice(at).join("")}\n`);
  $("draft-marks").replaceChildren(...nodes.map((n) => (typeof n === "string"
    ? document.createTextNode(n) : n)));
  $("draft-marks").scrollTop = $("compose-text").scrollTop;
}

function showViolations(violations) {
  $("lint-summary").textContent = !$("compose-text").value ? ""
    : violations.length ? t("compose.lint_problems", { n: violations.length })
      : t("compose.lint_ok");
  $("lint").dataset.checked = String(compose.lintSeq);
  $("lint-list").replaceChildren(...violations.map((v) => el("li", {
    class: "violation", "data-rule": v.rule ?? "", "data-code": v.code ?? "" },
    el("strong", {}, v.rule ?? ""), ` ${v.detail ?? ""}`,
    v.span?.field && v.span.field !== "text" && v.span.field !== "message"
      ? el("span", { class: "meta" }, ` (${tOr(`field.${v.span.field}`, v.span.field)})`) : "",
    v.remedy ? el("div", { class: "remedy" }, t("notices.remedy", { remedy: v.remedy })) : "")));
  highlight(violations);
}

async function send() {
  const r = chosenReason();
  if (state.me.role === "seller" && !r) { say(t("compose.choose_reason")); return; }
  const files = [...$("compose-files").files];
  if (files.length) say(t("compose.uploading", { n: files.length }));
  const stored = [];
  for (const f of files) stored.push(await upload(f));
  const body = { ...draftBody(),
                 attachments: stored.map((a) => ({ sha256: a.sha256, filename: a.filename })) };
  let sent;
  try {
    // `validate=true`: where the gateway supports it, a draft that breaks a rule is refused
    // with its violations and nothing is sent; elsewhere the parameter is ignored.
    sent = await api("POST", "/v1/messages?validate=true", body);
  } catch (e) {
    if (Array.isArray(e.body?.violations)) showViolations(e.body.violations);
    throw e;
  }
  resetDraft();
  say(t("compose.sent", { id: sent.message_id, n: stored.length }));
}

export function wireCompose() {
  $("compose-order").addEventListener("submit", guarded((e) => {
    e.preventDefault();
    return loadCompose($("compose-order-id").value.trim());
  }));
  $("compose").addEventListener("submit", guarded((e) => { e.preventDefault(); return send(); }));
  $("compose-text").addEventListener("input", () => {
    updateCount(); highlight([]); scheduleLint();
  });
  $("compose-subject").addEventListener("input", scheduleLint);
  $("compose-text").addEventListener("scroll", () => {
    $("draft-marks").scrollTop = $("compose-text").scrollTop;
  });
  $("compose-template").addEventListener("change", () => {
    const tpl = compose.templates.find((x) => x.template_id === $("compose-template").value);
    if (!tpl) return;
    $("compose-subject").value = tpl.subject ?? "";
    $("compose-text").value = tpl.text;
    updateCount(); scheduleLint();
  });
}
