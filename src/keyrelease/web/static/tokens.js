// The "API tokens" screen (#/tokens): create a named token with an expiry, its value shown
// once with a copy button; the list of your own tokens with their last use; revoke one, after
// a confirmation. The value lives only in its read-only field while the screen shows it:
// leaving the screen, or "I have stored the token", wipes it, and the server never sends it again.

import { secretField } from "./credentials.js";
import { $, announce, clearErrors, h, setBusy, setFieldError, showScreen } from "./dom.js";
import { formatDateTime } from "./format.js";
import { serverNow } from "./graphql.js";
import { API_TOKENS, CREATE_API_TOKEN, REVOKE_API_TOKEN } from "./operations.js";

const DAY_MS = 24 * 60 * 60 * 1000;
const STATUS_LABEL = { ACTIVE: "Active", EXPIRED: "Expired", REVOKED: "Revoked" };
// The input each field of a ValidationError belongs to.
const FIELD_INPUT = { name: "#api-token-name", expiresAt: "#api-token-days" };

// The screen on show: the console's session and the ticket it was shown under. An answer that
// arrives after the screen changed is dropped.
let shown = null;
let bound = false;

/** Show the screen; returns what undoes it (the console calls it when the screen changes). */
export function showTokens(session) {
  shown = { session, ticket: session.ticket };
  if (!bound) {
    $("#api-token-form").addEventListener("submit", create);
    bound = true;
  }
  const form = $("#api-token-form");
  form.reset();
  clearErrors(form);
  wipe();
  showScreen("tokens");
  load();
  return function leave() {
    wipe();
    shown = null;
  };
}

function current(mine) {
  return mine !== null && shown === mine && mine.session.ticket === mine.ticket;
}

async function load() {
  const mine = shown;
  $("#api-tokens-error").textContent = "";
  let tokens;
  try {
    tokens = (await mine.session.api(API_TOKENS)).apiTokens;
  } catch (error) {
    if (current(mine)) $("#api-tokens-error").textContent = error.message;
    return;
  }
  if (!current(mine)) return;
  $("#api-tokens-body").replaceChildren(...tokens.map(row));
  $("#api-tokens-table").hidden = tokens.length === 0;
  $("#api-tokens-empty").hidden = tokens.length > 0;
}

function row(token) {
  // Each cell holds one element; on a narrow screen the cell's data-label is shown beside it.
  const cell = (label, content) => h("td", { "data-label": label }, h("span", {}, content));
  const status = h(
    "span",
    {},
    h("span", { class: `badge badge-${token.status.toLowerCase()}` }, STATUS_LABEL[token.status] ?? token.status),
  );
  if (token.inUse) status.append(" ", h("span", { class: "in-use" }, "(this console)"));
  return h(
    "tr",
    {},
    cell("Name", token.name),
    h("td", { "data-label": "Status" }, status),
    cell("Created", formatDateTime(token.createdAt)),
    cell("Expires", token.expiresAt ? formatDateTime(token.expiresAt) : "Never"),
    cell("Last used", token.lastUsedAt ? formatDateTime(token.lastUsedAt) : "Never"),
    h("td", { "data-label": "Revoke" }, token.status === "ACTIVE" ? revokeButton(token) : h("span", {}, "—")),
  );
}

function revokeButton(token) {
  const button = h("button", { type: "button", class: "danger", "aria-label": `Revoke ${token.name}` }, "Revoke");
  button.addEventListener("click", () => revoke(token, button));
  return button;
}

async function revoke(token, button) {
  if (!button.dataset.confirming) {
    button.dataset.confirming = "yes";
    button.textContent = "Yes, revoke";
    button.setAttribute("aria-label", `Yes, revoke ${token.name}`);
    const signedOut = token.inUse ? " The console signed in with it: you will be signed out." : "";
    announce(`Press again to revoke ${token.name}. It stops working at once and cannot be restored.${signedOut}`);
    return;
  }
  const mine = shown;
  setBusy(button, true);
  let result;
  try {
    result = (await mine.session.api(REVOKE_API_TOKEN, { input: { id: token.id } })).revokeApiToken;
  } catch (error) {
    if (current(mine)) $("#api-tokens-error").textContent = error.message;
    return;
  } finally {
    setBusy(button, false);
  }
  if (!current(mine)) return;
  if (result.__typename !== "ApiToken") {
    $("#api-tokens-error").textContent = result.message;
    return;
  }
  announce(`Token ${result.name} revoked.`);
  load(); // with the token in use revoked, this request ends the session
}

async function create(event) {
  event.preventDefault();
  const mine = shown;
  if (!mine) return;
  const form = event.currentTarget;
  const nameInput = $("#api-token-name");
  const daysInput = $("#api-token-days");
  clearErrors(form);
  const name = nameInput.value.trim();
  const days = Number(daysInput.value);
  if (!name) {
    setFieldError(nameInput, "Enter a name for the token.");
    nameInput.focus();
    return;
  }
  if (!Number.isInteger(days) || days < 1) {
    setFieldError(daysInput, "Enter a whole number of days, 1 or more.");
    daysInput.focus();
    return;
  }
  // Counted from the server's clock, which decides.
  const expiresAt = new Date(serverNow() + days * DAY_MS).toISOString();
  const button = $("#api-token-create");
  setBusy(button, true);
  let result;
  try {
    result = (await mine.session.api(CREATE_API_TOKEN, { input: { name, expiresAt } })).createApiToken;
  } catch (error) {
    if (current(mine)) $("#api-token-form-error").textContent = error.message;
    return;
  } finally {
    setBusy(button, false);
  }
  if (!current(mine)) return;
  if (result.__typename === "ValidationError") {
    const input = $(FIELD_INPUT[result.field] ?? "#api-token-name");
    setFieldError(input, result.message);
    input.focus();
    return;
  }
  if (result.__typename !== "CreatedApiToken") {
    $("#api-token-form-error").textContent = result.message;
    return;
  }
  form.reset();
  showValue(result);
  load();
}

function showValue({ token, value }) {
  const heading = h("h2", { id: "api-token-value-heading", tabindex: "-1" }, `Token “${token.name}” created`);
  const done = h("button", { type: "button", class: "secondary" }, "I have stored the token");
  done.addEventListener("click", () => {
    wipe();
    $("#api-token-name").focus();
  });
  const block = h(
    "div",
    { class: "credentials", role: "group", "aria-labelledby": "api-token-value-heading" },
    heading,
    h(
      "p",
      { class: "notice warning" },
      h("strong", {}, "Copy the token now. "),
      "It will not be shown again: once you leave this page it is gone. Send it in the header ",
      h("code", {}, "Authorization: Bearer <token>"),
      ".",
    ),
    secretField("api-token-value-field", "Token", value),
    h("p", {}, done),
  );
  $("#api-token-value").replaceChildren(block);
  heading.focus();
}

function wipe() {
  const area = $("#api-token-value");
  for (const input of area.querySelectorAll("input")) input.value = "";
  area.replaceChildren();
}
