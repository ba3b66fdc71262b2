// A seller's own templates (E5): one text per marketplace language, created and edited here.
// The gateway keeps a template's texts by language and gives a buyer the one in their
// language (else English, else the template's own); there is no update call, so an edit
// saves the new version and then deletes the old one.
"use strict";
import { LANGUAGES, t, current } from "./i18n.js";
import { state, $, el, enc, api, say, guarded } from "./common.js";

const editing = { id: null };

/** A language's own name in the UI's language (the browser's Intl, no catalog needed). */
export function languageName(code) {
  try {
    return new Intl.DisplayNames([current()], { type: "language" }).of(code) ?? code;
  } catch { return code; }
}

function languageFields() {
  $("tpl-main").replaceChildren(...LANGUAGES.map((code) =>
    el("option", { value: code }, languageName(code))));
  $("tpl-texts").replaceChildren(...LANGUAGES.map((code) => el("fieldset", {
    class: "tpl-lang", "data-lang": code },
    el("legend", {}, languageName(code)),
    el("label", { htmlFor: `tpl-subject-${code}` }, t("compose.subject")),
    el("input", { id: `tpl-subject-${code}`, maxLength: 998 }),
    el("label", { htmlFor: `tpl-text-${code}` }, t("compose.text")),
    el("textarea", { id: `tpl-text-${code}`, rows: 3, maxLength: 20000 }))));
}

function resetForm() {
  editing.id = null;
  $("tpl-name").value = "";
  $("tpl-main").value = LANGUAGES.includes(current()) ? current() : "en";
  for (const code of LANGUAGES) {
    $(`tpl-subject-${code}`).value = "";
    $(`tpl-text-${code}`).value = "";
  }
  $("tpl-form-heading").textContent = t("templates.new");
  $("tpl-cancel").hidden = true;
}

export async function loadTemplatesPage() {
  languageFields();
  resetForm();
  const own = (await api("GET", "/v1/templates")).filter((x) => x.kind === "own");
  const list = $("tpl-list");
  list.replaceChildren();
  if (!own.length) list.append(el("li", { class: "empty" }, t("templates.none")));
  for (const tpl of own) {
    const edit = el("button", { type: "button", class: "tpl-edit" }, t("templates.edit"));
    edit.setAttribute("aria-label", t("templates.edit_named", { name: tpl.name }));
    edit.addEventListener("click", guarded(() => startEdit(tpl)));
    const remove = el("button", { type: "button", class: "tpl-delete" }, t("templates.delete"));
    remove.setAttribute("aria-label", t("templates.delete_named", { name: tpl.name }));
    remove.addEventListener("click", guarded(async () => {
      await api("DELETE", `/v1/templates/${enc(tpl.template_id)}`);
      say(t("templates.deleted", { name: tpl.name }));
      await loadTemplatesPage();
    }));
    list.append(el("li", { "data-template": tpl.template_id },
      el("strong", {}, tpl.name), " ",
      el("span", { class: "meta" }, t("templates.languages", {
        languages: (tpl.languages || [tpl.locale]).map(languageName).join(", ") })),
      el("div", { class: "row" }, edit, remove)));
  }
}

async function startEdit(tpl) {
  resetForm();
  editing.id = tpl.template_id;
  $("tpl-name").value = tpl.name;
  $("tpl-main").value = tpl.locale ?? "en";
  // Each language's text, asked for by locale; a fallback answer is not that language's.
  for (const code of tpl.languages || []) {
    const found = (await api("GET", `/v1/templates?locale=${enc(code)}`))
      .find((x) => x.template_id === tpl.template_id);
    if (!found || found.fell_back || found.locale !== code) continue;
    $(`tpl-subject-${code}`).value = found.subject ?? "";
    $(`tpl-text-${code}`).value = found.text;
  }
  $("tpl-form-heading").textContent = t("templates.editing", { name: tpl.name });
  $("tpl-cancel").hidden = false;
  $("tpl-name").focus();
}

async function save() {
  const main = $("tpl-main").value;
  const text = (code) => ({ subject: $(`tpl-subject-${code}`).value.trim(),
                            text: $(`tpl-text-${code}`).value });
  if (!text(main).text.trim()) {
    say(t("templates.need_main", { language: languageName(main) }));
    $(`tpl-text-${main}`).focus();
    return;
  }
  const translations = Object.fromEntries(LANGUAGES.filter((c) => c !== main
    && text(c).text.trim()).map((c) => [c, text(c)]));
  const name = $("tpl-name").value.trim();
  const body = { name, language: main, ...text(main), translations };
  // An edit replaces the template in one step (its id stays); a new one is created.
  if (editing.id) await api("PUT", `/v1/templates/${enc(editing.id)}`, body);
  else await api("POST", "/v1/templates", body);
  say(t("templates.saved", { name }));
  await loadTemplatesPage();
}

export function wireTemplates() {
  $("tpl-form").addEventListener("submit", guarded((e) => { e.preventDefault(); return save(); }));
  $("tpl-cancel").addEventListener("click", resetForm);
  state.loadTemplatesPage = loadTemplatesPage;
}
