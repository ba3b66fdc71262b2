// The message center's languages: one JSON catalog per language under /app/i18n/, keyed by
// stable ids, served as static files (no build step, nothing compiled). English is the
// fallback; a key missing everywhere is logged as an error (the browser tests fail on it).
"use strict";

export const LANGUAGES = ["en", "es", "fr", "it", "pt", "de"];

const catalogs = {};
let lang = "en";

/** "es-ES", "pt_BR", "fr" → a supported language, or null. */
export function supported(locale) {
  const base = String(locale || "").toLowerCase().split(/[-_]/)[0];
  return LANGUAGES.includes(base) ? base : null;
}

/** The first supported language among the candidates (an explicit choice, the user's
 * locale from the gateway, the browser's languages), else English. */
export function pick(...candidates) {
  for (const c of candidates.flat()) {
    const found = supported(c);
    if (found) return found;
  }
  return "en";
}

async function load(code) {
  if (!catalogs[code]) {
    const response = await fetch(`/app/i18n/${code}.json`);
    if (!response.ok) throw new Error(`catalog ${code}: HTTP ${response.status}`);
    catalogs[code] = await response.json();
  }
  return catalogs[code];
}

export async function use(code) {
  await load("en");
  try { await load(code); lang = code; } catch (e) { console.error(e.message); lang = "en"; }
  document.documentElement.lang = lang;
  translatePage();
  return lang;
}

export function current() { return lang; }

/** The text of ``key`` with ``{name}`` placeholders filled from ``vars``. */
export function t(key, vars = {}) {
  let text = catalogs[lang]?.[key] ?? catalogs.en?.[key];
  if (text === undefined) { console.error(`untranslated: ${key}`); text = key; }
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

/** ``t`` for ids that come from the server (reason ids, event types): the id itself when
 * the catalog has no entry, so a new id shows up untranslated rather than breaking. */
export function tOr(key, fallback) {
  return (catalogs[lang]?.[key] ?? catalogs.en?.[key]) === undefined ? fallback : t(key);
}

/** Elements carry their key: data-i18n (text), data-i18n-aria-label, -placeholder, -title. */
export function translatePage(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const [attr, data] of [["aria-label", "i18nAriaLabel"], ["placeholder", "i18nPlaceholder"],
                              ["title", "i18nTitle"]])
    for (const node of root.querySelectorAll(`[data-${attr === "aria-label" ? "i18n-aria-label"
      : `i18n-${attr}`}]`)) node.setAttribute(attr, t(node.dataset[data]));
}

const formats = {};

/** A date and time in the UI's language; ``precise`` adds seconds and milliseconds (the
 * timeline's slider must tell apart events a few milliseconds apart). */
export function when(iso, precise = false) {
  const key = `${lang}:${precise}`;
  formats[key] ??= new Intl.DateTimeFormat(lang, precise
    ? { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
        second: "2-digit", fractionalSecondDigits: 3 }
    : { dateStyle: "medium", timeStyle: "short" });
  return formats[key].format(new Date(iso));
}

export function number(value, options = {}) {
  return new Intl.NumberFormat(lang, options).format(value);
}
