// What every part of the message center shares: the session state, DOM helpers, the API
// client (errors keep the gateway's status, code and body) and uploads.
"use strict";
import { t } from "./i18n.js";

export const state = {
  token: null, me: null, filter: "response_needed", order: "", conv: null, templates: [],
  page: "messages", conversations: [], pageIndex: 0, cursors: [null], next: null, seen: null,
  timeline: { order: null, times: [], types: [] }, report: null, reportReasons: null,
  settingsSeller: null, showPage: null,
};
export const $ = (id) => document.getElementById(id);
export const enc = encodeURIComponent;
const SVG = "http://www.w3.org/2000/svg";

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role")
      node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

export function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`);
    this.status = status; this.code = body?.error; this.body = body;
  }
}

export async function answer(response) {
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export async function api(method, path, body) {
  const response = await fetch(path, {
    method, headers: { "Authorization": `Bearer ${state.token}`,
                       ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return answer(response);
}

export function say(text) { $("status").textContent = text; }

// Every handler reports a failure in the status line instead of failing silently.
export const guarded = (fn) => async (...args) => {
  try { await fn(...args); } catch (e) { say(e.message); }
};

// Attachments go to the blob store first; the message then names them by hash.
export async function upload(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  const response = await fetch("/v1/attachments", {
    method: "POST", headers: { "Authorization": `Bearer ${state.token}` }, body: form });
  try {
    return await answer(response);
  } catch (e) { throw new Error(`${file.name}: ${e.message}`); }
}

/** A duration in words: "3 h 20 min", "2 d 4 h", "12 min". */
export function duration(ms) {
  const minutes = Math.floor(ms / 60000), hours = Math.floor(minutes / 60);
  if (hours >= 48) return t("time.days_hours", { d: Math.floor(hours / 24), h: hours % 24 });
  if (hours) return t("time.hours_minutes", { h: hours, m: minutes % 60 });
  return t("time.minutes", { m: minutes });
}
