// Operators' pages for what the operator API does: a seller's settings and response times,
// lifting a restriction, a buyer's opt-out, erasure (confirmed by typing the party's id), and
// the report statistics (F3, also for the dispute team).
"use strict";
import { t, tOr, number, when } from "./i18n.js";
import { state, $, el, enc, api, say, guarded } from "./common.js";

const WINDOWS = ["7d", "30d", "90d"];

async function sellerTimes(sellerId, { percent, hours }) {
  const figures = await Promise.all(WINDOWS.map((w) =>
    api("GET", `/v1/sellers/${enc(sellerId)}/response-times?window=${w}`)));
  $("op-times-heading").textContent = t("operator.times_of", { party: sellerId });
  $("op-times-table").tBodies[0].replaceChildren(...figures.map((f) =>
    el("tr", { "data-window": f.window },
      el("th", { scope: "row" }, t(`window.${f.window}`)),
      el("td", {}, f.late_response_rate == null ? t("metrics.no_data")
        : percent(f.late_response_rate)),
      el("td", {}, f.average_response_time_seconds == null ? t("metrics.no_data")
        : hours(f.average_response_time_seconds)),
      el("td", {}, number(f.buyer_messages)), el("td", {}, number(f.answered)),
      el("td", {}, number(f.unanswered_late)))));
  $("op-times").hidden = false;
}

async function sellerQuota(sellerId) {
  try {
    const q = await api("GET", `/v1/sellers/${enc(sellerId)}/quota`);
    $("op-quota").textContent = t("quota.used", { used: number(q.used), limit: number(q.limit),
                                                  day: q.day });
  } catch (e) {
    $("op-quota").textContent = e.status === 404 ? t("quota.unavailable") : e.message;
  }
}

function table(caption, head, rows, id) {
  return el("div", { class: "table-wrap" }, el("table", { id },
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows.map(([name, value, key]) =>
      el("tr", { "data-key": key ?? name }, el("th", { scope: "row" }, name),
         el("td", {}, number(value)))))));
}

export async function loadReportStats() {
  const out = $("op-reports-out");
  out.replaceChildren();
  const window = $("op-reports-window").value;
  let s;
  try {
    s = await api("GET", `/v1/reports/stats?window=${enc(window)}`);
  } catch (e) {
    out.append(el("p", {}, e.status === 404 ? t("reports.unavailable") : e.message));
    return;
  }
  const byReason = Object.entries(s.by_reason || {}).sort((a, b) => b[1] - a[1]);
  const bySender = Object.entries(s.by_sender || {}).sort((a, b) => b[1] - a[1]).slice(0, 20);
  out.append(
    el("p", { id: "reports-total" }, t("reports.total", {
      n: number(s.total), since: when(s.since), until: when(s.until) })),
    table(t("reports.by_reason"), [t("reports.reason"), t("reports.count")],
          byReason.map(([r, n]) => [tOr(`report_reason.${r}`, r), n, r]), "reports-by-reason"),
    table(t("reports.by_sender"), [t("reports.sender"), t("reports.count")],
          bySender.map(([p, n]) => [p, n]), "reports-by-sender"),
    el("h4", {}, t("reports.flagged")),
    (s.flagged_senders || []).length
      ? el("ul", { id: "reports-flagged" }, ...s.flagged_senders.map((f) => el("li", {},
          t("reports.flagged_line", { party: f.sender_party_id, n: f.distinct_reporters,
                                      reports: f.reports }))))
      : el("p", { class: "meta" }, t("reports.none_flagged")));
}

function openErase() {
  const party = $("op-erase-party").value.trim();
  if (!party) return;
  state.erase = party;
  $("erase-text").textContent = t("erase.text", { party });
  $("erase-confirm-label").textContent = t("erase.type", { party });
  $("erase-confirm").value = "";
  $("erase-go").disabled = true;
  $("erase-dialog").showModal();
  $("erase-confirm").focus();
}

async function erase() {
  const party = state.erase;
  if ($("erase-confirm").value.trim() !== party) return;
  const reason = $("op-erase-reason").value.trim();
  const r = await api("POST", `/v1/parties/${enc(party)}/erasure`, { reason });
  $("erase-dialog").close();
  say(t(r.status === "already_erased" ? "erase.already" : "erase.done", { party }));
}

export function wireOperator({ percent, hours }) {
  const submit = (id, fn) => $(id).addEventListener("submit", guarded((e) => {
    e.preventDefault(); return fn();
  }));
  submit("op-seller", async () => {
    state.settingsSeller = $("op-seller-id").value.trim();
    await state.showPage("settings");
  });
  $("op-seller-times").addEventListener("click", guarded(async () => {
    const seller = $("op-seller-id").value.trim();
    if (!seller) { $("op-seller-id").reportValidity(); return; }
    await sellerTimes(seller, { percent, hours });
    await sellerQuota(seller);
  }));
  submit("op-lift", async () => {
    const seller = $("op-lift-seller").value.trim();
    await api("POST", `/v1/sellers/${enc(seller)}/restriction/lift`,
              { reason: $("op-lift-reason").value.trim() });
    say(t("operator.lifted", { party: seller }));
  });
  submit("op-optout", async () => {
    const buyer = $("op-buyer-id").value.trim();
    const optedOut = $("op-buyer-optout").checked;
    await api("PUT", `/v1/buyers/${enc(buyer)}/preferences`, { unsolicited_opt_out: optedOut });
    say(t(optedOut ? "operator.opted_out" : "operator.opted_in", { party: buyer }));
  });
  submit("op-erase", openErase);
  $("erase-confirm").addEventListener("input", () => {
    $("erase-go").disabled = $("erase-confirm").value.trim() !== state.erase;
  });
  $("erase-form").addEventListener("submit", guarded(async (e) => {
    e.preventDefault(); await erase();
  }));
  $("erase-cancel").addEventListener("click", () => $("erase-dialog").close());
  submit("op-reports-form", loadReportStats);
}
