// The admin console: sign in, list keys, create a key, verify it with the emailed code while
// its two clocks run (verify.js), reveal an institutional key's credentials once; an admin's
// API tokens (tokens.js).
//
// Screens are <section data-screen> elements in console.html; the URL fragment says which one
// (#/keys, #/new, #/keys/<id>). The admin token lives in this tab's sessionStorage only: never
// in localStorage, a cookie or a URL.

import { showCredentials } from "./credentials.js";
import { $, announce, clearErrors, h, setBusy, setFieldError, showScreen } from "./dom.js";
import { deliveryText, formatDateTime, formatDuration } from "./format.js";
import { ApiError, graphql } from "./graphql.js";
import { CREATE_KEY, EXPIRING_KEYS, KEY, KEYS, ME, REVEAL_KEY, REVOKE_KEY } from "./operations.js";
import { showTokens } from "./tokens.js";
import { showVerify } from "./verify.js";

const TOKEN_STORAGE = "keyrelease.adminToken";
const PAGE_SIZE = 10;
// "Expiring soon": active keys expiring within the first expiry notice's threshold
// (KEYRELEASE_EXPIRY_NOTICES, read at sign-in), or 30 days when none is configured, as the
// server's clock counts it.
const EXPIRING_WITHIN = "30d";

const STATUS_LABEL = {
  PENDING_VERIFICATION: "Pending verification",
  ACTIVE: "Active",
  LOCKED: "Locked",
  REVOKED: "Revoked",
  EXPIRED: "Expired",
  COMPROMISED: "Compromised",
};
const KIND_LABEL = { INSTITUTIONAL: "Institutional", PARTNER: "Partner" };

// The session, handed explicitly to the screens of other modules (verify.js): the admin token,
// the admin it belongs to, and the screen's ticket. Each screen change takes a new ticket; an
// answer that arrives for an older ticket is dropped.
const session = {
  token: sessionStorage.getItem(TOKEN_STORAGE),
  me: null,
  // The "Expiring soon" horizon (a duration such as "30d"), set at sign-in.
  expiringWithin: EXPIRING_WITHIN,
  ticket: 0,
  // A request with the admin token. A token the server no longer accepts ends the session.
  async api(query, variables) {
    try {
      return await graphql(query, variables, { token: session.token });
    } catch (error) {
      if (error instanceof ApiError && error.code === "UNAUTHENTICATED") {
        signOut("Your admin token is no longer accepted. Sign in again.");
      }
      throw error;
    }
  },
};
// The screens' own state: what undoes the current screen (timers, credentials on screen), what
// "Create a new key" on the lock screen fills in, the key on the details screen.
const screen = { leave: () => {}, createPrefill: null, key: null };
const list = { status: "", cursors: [null], page: 0 };
// How the verification screen (verify.js) shows another screen.
const screens = { present, showMessage };

// -- formatting --------------------------------------------------------------------------

function badge(status) {
  return h("span", { class: `badge badge-${status.toLowerCase().replace("_", "-")}` }, STATUS_LABEL[status] ?? status);
}

// -- routing -----------------------------------------------------------------------------

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// Undo what the current screen started.
function leaveScreen() {
  const leave = screen.leave;
  screen.leave = () => {};
  leave();
}

function route() {
  const hash = location.hash;
  if (hash && !hash.startsWith("#/")) return;
  leaveScreen();
  session.ticket += 1;
  if (!session.token || !session.me) {
    showSignIn();
    return;
  }
  const [, section, id] = hash.split("/");
  if (section === "tokens") screen.leave = showTokens(session);
  else if (section === "new") showCreate();
  else if (section === "keys" && id) showKey(decodeURIComponent(id));
  else showKeys();
}

// -- sign in -----------------------------------------------------------------------------

function showSignIn(message = "") {
  const input = $("#token");
  input.value = "";
  clearErrors($("#sign-in-form"));
  if (message) setFieldError(input, message);
  showScreen("sign-in");
}

async function signIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const input = $("#token");
  const button = form.querySelector("button[type=submit]");
  clearErrors(form);
  const candidate = input.value.trim();
  if (!candidate) {
    setFieldError(input, "Enter your admin token.");
    input.focus();
    return;
  }
  setBusy(button, true);
  try {
    const data = await graphql(ME, {}, { token: candidate });
    session.token = candidate;
    session.me = data.me;
    session.expiringWithin = data.policy.expiryNotices[0] ?? EXPIRING_WITHIN;
    sessionStorage.setItem(TOKEN_STORAGE, candidate);
  } catch (error) {
    const message =
      error instanceof ApiError && error.code === "UNAUTHENTICATED"
        ? "That admin token was not accepted. Check that you copied all of it, or ask an operator for a new one."
        : error.message;
    setFieldError(input, message);
    input.focus();
    return;
  } finally {
    setBusy(button, false);
  }
  input.value = "";
  renderAccount();
  announce(`Signed in as ${session.me.email}.`);
  navigate(location.hash.startsWith("#/") ? location.hash : "#/keys");
}

function signOut(message = "") {
  session.token = null;
  session.me = null;
  sessionStorage.removeItem(TOKEN_STORAGE);
  leaveScreen();
  session.ticket += 1;
  renderAccount();
  showSignIn(message);
}

function renderAccount() {
  const me = session.me;
  $("#account").hidden = !me;
  $("#who").textContent = me ? `${me.name || me.email} · ${me.institution.name}` : "";
}

// -- keys list ---------------------------------------------------------------------------

function showKeys() {
  showScreen("keys");
  loadKeys();
}

async function loadKeys() {
  const mine = session.ticket;
  const error = $("#keys-error");
  error.textContent = "";
  let data;
  let expiring;
  try {
    [data, expiring] = await Promise.all([
      session.api(KEYS, { first: PAGE_SIZE, after: list.cursors[list.page], status: list.status || null }),
      session.api(EXPIRING_KEYS, { within: session.expiringWithin }),
    ]);
  } catch (failure) {
    if (mine === session.ticket) error.textContent = failure.message;
    return;
  }
  if (mine !== session.ticket) return;
  const soon = renderExpiring(expiring.keys);
  const { edges, pageInfo } = data.keys;
  $("#keys-body").replaceChildren(...edges.map(({ node }) => keyRow(node, soon.has(node.id))));
  $("#keys-table").hidden = edges.length === 0;
  const empty = $("#keys-empty");
  empty.hidden = edges.length > 0;
  empty.textContent = list.status ? "No keys with this status." : "No keys yet. Create one to get started.";
  list.cursors[list.page + 1] = pageInfo.hasNextPage ? pageInfo.endCursor : undefined;
  const previous = $("#previous-page");
  const next = $("#next-page");
  previous.disabled = list.page === 0;
  next.disabled = !pageInfo.hasNextPage;
  for (const button of [previous, next]) {
    if (button.disabled && document.activeElement === button) $("#keys-heading").focus();
  }
  const single = list.page === 0 && !pageInfo.hasNextPage;
  $("#pager").hidden = single;
  $("#page-number").textContent = single ? "" : `Page ${list.page + 1}`;
}

// The "Expiring soon" list above the table, soonest first; the ids it shows.
function renderExpiring({ edges, pageInfo }) {
  const keys = edges.map(({ node }) => node).sort((a, b) => Date.parse(a.expiresAt) - Date.parse(b.expiresAt));
  $("#expiring").hidden = keys.length === 0;
  for (const element of document.querySelectorAll(".expiring-horizon")) {
    element.textContent = formatDuration(session.expiringWithin);
  }
  $("#expiring-list").replaceChildren(
    ...keys.map((key) =>
      h("li", {}, h("a", { href: `#/keys/${encodeURIComponent(key.id)}` }, key.name), ` expires ${formatDateTime(key.expiresAt)}`),
    ),
  );
  $("#expiring-more").hidden = !pageInfo.hasNextPage;
  return new Set(keys.map((key) => key.id));
}

function keyRow(key, expiringSoon = false) {
  const href = `#/keys/${encodeURIComponent(key.id)}`;
  const status = h("span", {}, badge(key.status));
  if (expiringSoon) status.append(" ", h("span", { class: "badge badge-expiring" }, "Expiring soon"));
  if (key.status === "PENDING_VERIFICATION") {
    status.append(" ", h("a", { href, class: "row-action", "aria-label": `Verify ${key.name}` }, "Verify"));
  }
  // Each cell holds one element; on a narrow screen the cell's data-label is shown beside it.
  const cell = (label, content) => h("td", { "data-label": label }, h("span", {}, content));
  return h(
    "tr",
    {},
    cell("Name", h("a", { href }, key.name)),
    cell("Kind", KIND_LABEL[key.kind] ?? key.kind),
    h("td", { "data-label": "Status" }, status),
    cell("Created", formatDateTime(key.createdAt)),
    cell("Deadline or expiry", deadlineOrExpiry(key)),
    cell("Last used", key.lastUsedAt ? formatDateTime(key.lastUsedAt) : "Never"),
  );
}

function deadlineOrExpiry(key) {
  switch (key.status) {
    case "PENDING_VERIFICATION":
      return `Verify by ${formatDateTime(key.verificationDeadline)}`;
    case "LOCKED":
      return `Locked since ${formatDateTime(key.verificationDeadline)}`;
    case "REVOKED":
      return `Revoked ${formatDateTime(key.revokedAt)}`;
    case "EXPIRED":
      return `Expired ${formatDateTime(key.expiresAt)}`;
    case "COMPROMISED":
      return `Leaked ${formatDateTime(key.compromisedAt)}`;
    default:
      return key.expiresAt ? `Expires ${formatDateTime(key.expiresAt)}` : "Does not expire";
  }
}

function changePage(step) {
  list.page = Math.max(0, list.page + step);
  loadKeys();
}

function changeFilter(event) {
  list.status = event.currentTarget.value;
  list.cursors = [null];
  list.page = 0;
  loadKeys();
}

// -- create ------------------------------------------------------------------------------

// The input beside which a ValidationError about each API field is shown; others go above
// the button.
const FIELD_INPUT = {
  name: "#name",
  expiresAt: "#expires",
  partnerName: "#partner-name",
  partnerEmail: "#partner-email",
};

function showCreate() {
  const form = $("#create-form");
  form.reset();
  clearErrors(form);
  const prefill = screen.createPrefill;
  if (prefill) {
    $("#name").value = prefill.name;
    $(prefill.kind === "PARTNER" ? "#kind-partner" : "#kind-institutional").checked = true;
    $("#partner-name").value = prefill.partnerName ?? "";
    $("#partner-email").value = prefill.partnerEmail ?? "";
    screen.createPrefill = null;
  }
  syncKind();
  showScreen("create");
}

function selectedKind() {
  return $("#kind-partner").checked ? "PARTNER" : "INSTITUTIONAL";
}

function syncKind() {
  const partner = selectedKind() === "PARTNER";
  const fields = $("#partner-fields");
  fields.hidden = !partner;
  fields.disabled = !partner;
}

async function createKey(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = $("#create-button");
  clearErrors(form);
  const input = { name: $("#name").value, kind: selectedKind() };
  const expires = $("#expires").value;
  if (expires) {
    const when = new Date(expires);
    if (Number.isNaN(when.getTime())) {
      setFieldError($("#expires"), "Enter a date and time, or leave the field empty.");
      $("#expires").focus();
      return;
    }
    input.expiresAt = when.toISOString();
  }
  if (input.kind === "PARTNER") {
    input.partnerName = $("#partner-name").value.trim() || null;
    input.partnerEmail = $("#partner-email").value.trim();
  }
  const mine = session.ticket;
  setBusy(button, true);
  let result;
  try {
    result = (await session.api(CREATE_KEY, { input })).createKey;
  } catch (error) {
    if (mine === session.ticket) $("#create-error").textContent = error.message;
    return;
  } finally {
    setBusy(button, false);
  }
  if (mine !== session.ticket) return;
  switch (result.__typename) {
    case "ApiKey":
      announce(`Key created. A verification code is on its way to ${session.me.email}.`);
      navigate(`#/keys/${encodeURIComponent(result.id)}`);
      break;
    case "ValidationError": {
      const selector = FIELD_INPUT[result.field];
      if (selector) {
        setFieldError($(selector), result.message);
        $(selector).focus();
      } else {
        $("#create-error").textContent = result.message;
      }
      break;
    }
    default:
      $("#create-error").textContent = result.message;
  }
}

// -- one key -----------------------------------------------------------------------------

async function showKey(id) {
  const mine = session.ticket;
  let key;
  try {
    key = (await session.api(KEY, { id })).key;
  } catch (error) {
    if (mine === session.ticket) showMessage("The key could not be loaded", error.message);
    return;
  }
  if (mine !== session.ticket) return;
  if (!key) showMessage("No such key", "No key with this ID is visible to you.");
  else present(key);
}

function present(key) {
  leaveScreen();
  if (key.status === "PENDING_VERIFICATION") screen.leave = showVerify(key, session, screens);
  else if (key.status === "LOCKED") showLocked(key);
  else showDetails(key);
}

function showMessage(heading, text) {
  $("#message-heading").textContent = heading;
  $("#message-text").textContent = text;
  showScreen("message");
}

// -- locked ------------------------------------------------------------------------------

function showLocked(key) {
  const reason = {
    ATTEMPTS: `“${key.name}” is locked: a wrong code was entered too many times.`,
    ADMIN_DISABLED: `“${key.name}” is locked: the admin who created it was disabled before it was verified.`,
  }[key.lockReason] ?? `“${key.name}” is locked: it was not verified in time. Its window closed at ${formatDateTime(key.verificationDeadline)}.`;
  $("#locked-reason").textContent = reason;
  $("#locked-new").onclick = () => {
    screen.createPrefill = { name: key.name, kind: key.kind, partnerName: key.partnerName, partnerEmail: key.partnerEmail };
  };
  showScreen("locked");
}

// -- an active, revoked or expired key ---------------------------------------------------

function showDetails(key) {
  const partner = key.kind === "PARTNER";
  const heading = {
    ACTIVE: `“${key.name}” is verified`,
    REVOKED: `“${key.name}” is revoked`,
    EXPIRED: `“${key.name}” has expired`,
    COMPROMISED: `“${key.name}” was found in public`,
  }[key.status] ?? `“${key.name}”`;
  $("#key-heading").textContent = heading;
  $("#key-message").textContent = detailsMessage(key);
  $("#key-error").textContent = "";

  const details = [
    ["Status", badge(key.status)],
    ["Kind", KIND_LABEL[key.kind] ?? key.kind],
    ["Client ID", h("code", {}, key.clientId)],
    ["Created", formatDateTime(key.createdAt)],
    ["Verified", key.verifiedAt ? formatDateTime(key.verifiedAt) : "Never"],
    ["Expires", key.expiresAt ? formatDateTime(key.expiresAt) : "Does not expire"],
    ["Last used", key.lastUsedAt ? formatDateTime(key.lastUsedAt) : "Never"],
  ];
  if (key.revokedAt) details.push(["Revoked", formatDateTime(key.revokedAt)]);
  if (key.compromisedAt) {
    details.push(["Leak reported", formatDateTime(key.compromisedAt)]);
    details.push(["Found at", key.compromiseUrl ? h("code", { class: "leak-url" }, key.compromiseUrl) : "Not given"]);
  }
  if (partner) {
    details.push(["Partner", key.partnerName ?? "—"], ["Partner email", key.partnerEmail ?? "—"]);
    if (key.lastDelivery) details.push(["Partner email delivery", deliveryText(key.lastDelivery)]);
  }
  $("#key-details").replaceChildren(
    ...details.map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value))),
  );

  const canReveal = key.status === "ACTIVE" && !partner && !key.revealed;
  $("#reveal-area").hidden = !canReveal;
  $("#stored-area").hidden = true;
  $("#credentials-area").replaceChildren();
  const revoke = $("#revoke-button");
  $("#revoke-area").hidden = key.status === "REVOKED" || key.status === "COMPROMISED";
  revoke.textContent = "Revoke key";
  revoke.dataset.confirming = "";
  $("#revoke-hint").textContent = "A revoked key stops working at once and can never be used again.";
  screen.key = key;
  showScreen("key");
}

function detailsMessage(key) {
  const partner = key.kind === "PARTNER";
  if (key.status === "REVOKED") return "It can never be used again.";
  if (key.status === "COMPROMISED") {
    return "Its secret was found in public and has been retired: it no longer works. Create a new key for whoever used it, and remove the secret from where it was found.";
  }
  if (key.status === "EXPIRED") return "It can no longer be used to get access tokens.";
  if (partner && key.revealed) return "The partner has retrieved the credentials.";
  if (partner) {
    const who = key.partnerName ? `${key.partnerName} (${key.partnerEmail})` : key.partnerEmail;
    return `The partner ${who} has been emailed the Key ID and a one-time password, and a link to retrieve the credentials once.`;
  }
  if (key.revealed) {
    return "Its credentials have been revealed and cannot be shown again. If the secret is lost, revoke this key and create a new one.";
  }
  return "Reveal the credentials when you are ready to store them. They are shown once.";
}

async function reveal() {
  const key = screen.key;
  const button = $("#reveal-button");
  $("#key-error").textContent = "";
  const result = await keyMutation(button, REVEAL_KEY, { input: { keyId: key.id } }, "revealKey");
  if (!result) return;
  if (result.__typename !== "KeyCredentials") {
    $("#key-error").textContent = result.message;
    return;
  }
  $("#reveal-area").hidden = true;
  $("#key-message").textContent = "Revealed. This is the only time the secret is shown.";
  const wipe = showCredentials($("#credentials-area"), result);
  $("#stored-area").hidden = false;
  // Leaving the screen, by any route, wipes the secret from the page.
  screen.leave = () => {
    wipe();
    $("#stored-area").hidden = true;
  };
}

/** Run one mutation about the key on screen, with its button busy meanwhile. Returns the
 * result, or null when the request failed (the error is shown) or the screen changed. */
async function keyMutation(button, document, variables, field) {
  const mine = session.ticket;
  setBusy(button, true);
  let result;
  try {
    result = (await session.api(document, variables))[field];
  } catch (error) {
    if (mine === session.ticket) $("#key-error").textContent = error.message;
    return null;
  } finally {
    setBusy(button, false);
  }
  return mine === session.ticket ? result : null;
}

async function revoke() {
  const key = screen.key;
  const button = $("#revoke-button");
  if (!button.dataset.confirming) {
    button.dataset.confirming = "yes";
    button.textContent = "Yes, revoke this key";
    $("#revoke-hint").textContent = "Press again to revoke. This cannot be undone.";
    return;
  }
  const result = await keyMutation(button, REVOKE_KEY, { input: { keyId: key.id } }, "revokeKey");
  if (!result) return;
  if (result.__typename !== "ApiKey") {
    $("#key-error").textContent = result.message;
    return;
  }
  announce("Key revoked.");
  present(result);
}

// -- start -------------------------------------------------------------------------------

async function start() {
  $("#sign-in-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => signOut());
  $("#status-filter").addEventListener("change", changeFilter);
  $("#filter-form").addEventListener("submit", (event) => event.preventDefault());
  $("#previous-page").addEventListener("click", () => changePage(-1));
  $("#next-page").addEventListener("click", () => changePage(1));
  $("#create-form").addEventListener("submit", createKey);
  for (const radio of document.querySelectorAll("input[name=kind]")) radio.addEventListener("change", syncKind);
  $("#reveal-button").addEventListener("click", reveal);
  $("#stored-button").addEventListener("click", () => navigate("#/keys"));
  $("#revoke-button").addEventListener("click", revoke);
  window.addEventListener("hashchange", route);
  // Leaving the page, even into the back-forward cache, takes a secret on screen with it.
  window.addEventListener("pagehide", leaveScreen);
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) route();
  });

  if (session.token) {
    try {
      session.me = (await graphql(ME, {}, { token: session.token })).me;
    } catch (error) {
      session.token = null;
      sessionStorage.removeItem(TOKEN_STORAGE);
      renderAccount();
      showSignIn(error.code === "UNAUTHENTICATED" ? "Your session has ended. Sign in again." : error.message);
      return;
    }
  }
  renderAccount();
  route();
}

start();
