// The admin console: sign in, list keys, create a key, verify it with the emailed code while
// its two clocks run, reveal an institutional key's credentials once.
//
// Screens are <section data-screen> elements in console.html; the URL fragment says which one
// (#/keys, #/new, #/keys/<id>). The admin token lives in this tab's sessionStorage only: never
// in localStorage, a cookie or a URL.

import { showCredentials } from "./credentials.js";
import { $, announce, clearErrors, h, setBusy, setFieldError, showScreen } from "./dom.js";
import { ApiError, graphql, serverNow } from "./graphql.js";
import { CREATE_KEY, KEY, KEYS, ME, RESEND_CODE, REVEAL_KEY, REVOKE_KEY, VERIFY_KEY } from "./operations.js";

const TOKEN_STORAGE = "keyrelease.adminToken";
const PAGE_SIZE = 10;
const POLL_MS = 30_000;

const STATUS_LABEL = {
  PENDING_VERIFICATION: "Pending verification",
  ACTIVE: "Active",
  LOCKED: "Locked",
  REVOKED: "Revoked",
  EXPIRED: "Expired",
  COMPROMISED: "Compromised",
};
const KIND_LABEL = { INSTITUTIONAL: "Institutional", PARTNER: "Partner" };

let token = sessionStorage.getItem(TOKEN_STORAGE);
let me = null;
// Each screen change takes a new ticket; an answer that arrives for an older ticket is dropped.
let ticket = 0;
// Undoes what the current screen started: timers, credentials on screen.
let leaveScreen = () => {};
// What "Create a new key" on the lock screen fills in.
let createPrefill = null;
// The verification screen's state while it is on screen, and the key on the details screen.
let verification = null;
let current = null;
const list = { status: "", cursors: [null], page: 0 };

// -- formatting --------------------------------------------------------------------------

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

function formatDateTime(iso) {
  return iso ? dateTime.format(new Date(iso)) : "";
}

function formatTime(iso) {
  return timeOfDay.format(new Date(iso));
}

function formatCountdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return `${minutes}:${seconds}`;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function badge(status) {
  return h("span", { class: `badge badge-${status.toLowerCase().replace("_", "-")}` }, STATUS_LABEL[status] ?? status);
}

// -- talking to the API ------------------------------------------------------------------

// A request with the admin token. A token the server no longer accepts ends the session.
async function api(query, variables) {
  try {
    return await graphql(query, variables, { token });
  } catch (error) {
    if (error instanceof ApiError && error.code === "UNAUTHENTICATED") {
      signOut("Your admin token is no longer accepted. Sign in again.");
    }
    throw error;
  }
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// -- routing -----------------------------------------------------------------------------

function route() {
  const hash = location.hash;
  if (hash && !hash.startsWith("#/")) return;
  leaveScreen();
  leaveScreen = () => {};
  ticket += 1;
  if (!token || !me) {
    showSignIn();
    return;
  }
  const [, section, id] = hash.split("/");
  if (section === "new") showCreate();
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
    token = candidate;
    me = data.me;
    sessionStorage.setItem(TOKEN_STORAGE, token);
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
  announce(`Signed in as ${me.email}.`);
  navigate(location.hash.startsWith("#/") ? location.hash : "#/keys");
}

function signOut(message = "") {
  token = null;
  me = null;
  sessionStorage.removeItem(TOKEN_STORAGE);
  leaveScreen();
  leaveScreen = () => {};
  ticket += 1;
  renderAccount();
  showSignIn(message);
}

function renderAccount() {
  $("#account").hidden = !me;
  $("#who").textContent = me ? `${me.name || me.email} · ${me.institution.name}` : "";
}

// -- keys list ---------------------------------------------------------------------------

function showKeys() {
  showScreen("keys");
  loadKeys();
}

async function loadKeys() {
  const mine = ticket;
  const error = $("#keys-error");
  error.textContent = "";
  let data;
  try {
    data = await api(KEYS, { first: PAGE_SIZE, after: list.cursors[list.page], status: list.status || null });
  } catch (failure) {
    if (mine === ticket) error.textContent = failure.message;
    return;
  }
  if (mine !== ticket) return;
  const { edges, pageInfo } = data.keys;
  $("#keys-body").replaceChildren(...edges.map(({ node }) => keyRow(node)));
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

function keyRow(key) {
  const href = `#/keys/${encodeURIComponent(key.id)}`;
  const status = h("span", {}, badge(key.status));
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
  if (createPrefill) {
    $("#name").value = createPrefill.name;
    $(createPrefill.kind === "PARTNER" ? "#kind-partner" : "#kind-institutional").checked = true;
    $("#partner-name").value = createPrefill.partnerName ?? "";
    $("#partner-email").value = createPrefill.partnerEmail ?? "";
    createPrefill = null;
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
  const mine = ticket;
  setBusy(button, true);
  let result;
  try {
    result = (await api(CREATE_KEY, { input })).createKey;
  } catch (error) {
    if (mine === ticket) $("#create-error").textContent = error.message;
    return;
  } finally {
    setBusy(button, false);
  }
  if (mine !== ticket) return;
  switch (result.__typename) {
    case "ApiKey":
      announce(`Key created. A verification code is on its way to ${me.email}.`);
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
  const mine = ticket;
  let key;
  try {
    key = (await api(KEY, { id })).key;
  } catch (error) {
    if (mine === ticket) showMessage("The key could not be loaded", error.message);
    return;
  }
  if (mine !== ticket) return;
  if (!key) showMessage("No such key", "No key with this ID is visible to you.");
  else present(key);
}

function present(key) {
  leaveScreen();
  leaveScreen = () => {};
  if (key.status === "PENDING_VERIFICATION") showVerify(key);
  else if (key.status === "LOCKED") showLocked(key);
  else showDetails(key);
}

function showMessage(heading, text) {
  $("#message-heading").textContent = heading;
  $("#message-text").textContent = text;
  showScreen("message");
}

// -- verification ------------------------------------------------------------------------

// The verification screen of one pending key: two countdowns (the code's expiry and the
// key's lock deadline, both by the server's clock), attempts and resends left. It asks the
// server again when a clock runs out, every 30 seconds, and after every failure, so what it
// shows is what the server holds.
class Verification {
  constructor(key) {
    this.key = key;
    this.ticket = ticket;
    this.refreshing = false;
    this.lastRefresh = Date.now();
    this.checkedCode = null;
    this.spoken = {};
    this.timer = window.setInterval(() => this.tick(), 1000);
    this.poller = window.setInterval(() => this.refresh(), POLL_MS);
  }

  get current() {
    return this.ticket === ticket && verification === this;
  }

  stop() {
    window.clearInterval(this.timer);
    window.clearInterval(this.poller);
    if (verification === this) verification = null;
  }

  render() {
    const key = this.key;
    $("#verify-heading").textContent = `Verify “${key.name}”`;
    $("#verify-intro").textContent =
      `A six-digit code was emailed to ${me.email}. Enter it before either clock runs out: ` +
      "a code works for a few minutes, and a key that is not verified in time locks for ever.";
    const recipient = $("#verify-recipient");
    recipient.hidden = key.kind !== "PARTNER";
    recipient.textContent =
      key.kind === "PARTNER"
        ? `When you verify, a one-time password goes to ${key.partnerName || "the partner"} at ${key.partnerEmail}. ` +
          "If that is not the right recipient, do not verify: revoke the key and create it again."
        : "";
    $("#attempts-left").textContent = String(key.attemptsRemaining);
    const resend = $("#resend-button");
    resend.textContent = `Resend code (${key.resendsRemaining} left)`;
    resend.disabled = key.resendsRemaining === 0;
    $("#resend-hint").textContent =
      key.resendsRemaining === 0
        ? "No resends are left for this key."
        : "A new code replaces the previous one. It gives you neither more attempts nor more time.";
    $("#delivery").textContent = deliveryText(key.lastDelivery);
    $("#code-clock-at").textContent = key.codeExpiresAt ? `at ${formatTime(key.codeExpiresAt)}` : "";
    $("#lock-clock-at").textContent = `at ${formatTime(key.verificationDeadline)}`;
    this.tick();
  }

  tick() {
    if (!this.current) return;
    const now = serverNow();
    const codeLeft = this.key.codeExpiresAt ? Date.parse(this.key.codeExpiresAt) - now : 0;
    const lockLeft = Date.parse(this.key.verificationDeadline) - now;
    const codeClock = $("#code-clock");
    const lockClock = $("#lock-clock");
    codeClock.textContent = codeLeft > 0 ? formatCountdown(codeLeft) : "Expired";
    lockClock.textContent = lockLeft > 0 ? formatCountdown(lockLeft) : "Now";
    codeClock.classList.toggle("urgent", codeLeft < 60_000);
    lockClock.classList.toggle("urgent", lockLeft < 120_000);

    const expired = $("#code-expired");
    expired.hidden = codeLeft > 0 || lockLeft <= 0;
    expired.textContent =
      this.key.resendsRemaining > 0
        ? "This code has expired. Choose “Resend code” for a new one."
        : "This code has expired and no resends are left, so this key can no longer be verified. Create a new key.";

    const spoken = [
      this.milestone("code", codeLeft, (m) => m <= 5, "The code expires", "The code has expired."),
      this.milestone("lock", lockLeft, (m) => m <= 5 || m % 5 === 0, "The key locks", "The key's window has closed."),
    ].filter(Boolean);
    if (spoken.length) $("#clock-status").textContent = spoken.join(" ");

    // A clock ran out: ask the server how the key stands now (once for an expired code; for
    // the lock, every five seconds until the server agrees).
    if (codeLeft <= 0 && lockLeft > 0 && this.checkedCode !== this.key.codeExpiresAt) {
      this.checkedCode = this.key.codeExpiresAt;
      this.refresh();
    } else if (lockLeft <= 0 && Date.now() - this.lastRefresh > 5000) {
      this.refresh();
    }
  }

  // What to announce (through the polite live region) when a countdown passes a milestone:
  // the whole minutes `announced(minutes)` picks, 30 seconds, and running out. Often enough to
  // be impossible to miss, rarely enough to be bearable.
  milestone(clock, left, announced, prefix, done) {
    const minutes = Math.ceil(left / 60_000);
    let mark;
    if (left <= 0) mark = "done";
    else if (left <= 30_000) mark = "30s";
    else mark = `${minutes}m`;
    const previous = this.spoken[clock];
    this.spoken[clock] = mark;
    if (previous === undefined || previous === mark) return null;
    if (mark === "done") return done;
    if (mark === "30s") return `${prefix} in 30 seconds.`;
    return announced(minutes) ? `${prefix} in ${plural(minutes, "minute")}.` : null;
  }

  async refresh() {
    if (this.refreshing || !this.current) return;
    this.refreshing = true;
    this.lastRefresh = Date.now();
    try {
      const fresh = (await api(KEY, { id: this.key.id })).key;
      if (!this.current) return;
      if (fresh) {
        this.update(fresh);
      } else {
        this.stop();
        showMessage("No such key", "No key with this ID is visible to you.");
      }
    } catch {
      // Keep showing what we know; the next tick or poll asks again.
    } finally {
      this.refreshing = false;
    }
  }

  update(fresh) {
    if (fresh.status !== "PENDING_VERIFICATION") {
      present(fresh);
      return;
    }
    this.key = fresh;
    this.render();
  }

  async verify(event) {
    event.preventDefault();
    const input = $("#code");
    const button = $("#verify-button");
    clearErrors($("#verify-form"));
    // Pasted codes often come with spaces or a dash in the middle.
    const code = input.value.replace(/[\s-]/g, "");
    setBusy(button, true);
    let result;
    try {
      result = (await api(VERIFY_KEY, { input: { keyId: this.key.id, code } })).verifyKey;
    } catch (error) {
      if (this.current) setFieldError(input, error.message);
      return;
    } finally {
      setBusy(button, false);
    }
    if (!this.current) return;
    if (result.__typename === "ApiKey") {
      announce("Verified. The key is active.");
      present(result);
      return;
    }
    // The API's own words: the generic error says nothing about why, on purpose.
    setFieldError(input, result.message);
    input.focus();
    input.select();
    if (result.__typename === "VerificationError") await this.refresh();
  }

  async resend() {
    const button = $("#resend-button");
    const input = $("#code");
    clearErrors($("#verify-form"));
    setBusy(button, true);
    let result;
    try {
      result = (await api(RESEND_CODE, { input: { keyId: this.key.id } })).resendCode;
    } catch (error) {
      setBusy(button, false);
      if (this.current) setFieldError(input, error.message);
      return;
    }
    setBusy(button, false);
    if (!this.current) return;
    if (result.__typename === "ApiKey") {
      this.key = result;
      this.render();
      input.value = "";
      input.focus();
      announce(
        `A new code is on its way to ${me.email}; earlier codes no longer work. ` +
          `${plural(result.resendsRemaining, "resend")} left.`,
      );
    } else {
      setFieldError(input, result.message);
      input.focus();
      await this.refresh();
    }
  }
}

function deliveryText(delivery) {
  if (!delivery) return "";
  switch (delivery.status) {
    case "SENT":
      return `Latest email sent at ${formatTime(delivery.sentAt ?? delivery.at)}.`;
    case "FAILED":
      return `The latest email could not be sent (${delivery.lastError ?? "no reason given"}). Ask an operator to check the mail settings.`;
    case "EXPIRED":
      return "The latest email was not sent before its code expired.";
    default:
      return "The latest email is on its way.";
  }
}

function showVerify(key) {
  const form = $("#verify-form");
  form.reset();
  clearErrors(form);
  verification = new Verification(key);
  const mine = verification;
  leaveScreen = () => mine.stop();
  verification.render();
  showScreen("verify");
}

// -- locked ------------------------------------------------------------------------------

function showLocked(key) {
  const reason =
    key.lockReason === "ATTEMPTS"
      ? `“${key.name}” is locked: a wrong code was entered too many times.`
      : `“${key.name}” is locked: it was not verified in time. Its window closed at ${formatDateTime(key.verificationDeadline)}.`;
  $("#locked-reason").textContent = reason;
  $("#locked-new").onclick = () => {
    createPrefill = { name: key.name, kind: key.kind, partnerName: key.partnerName, partnerEmail: key.partnerEmail };
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
  current = key;
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
  const key = current;
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
  leaveScreen = () => {
    wipe();
    $("#stored-area").hidden = true;
  };
}

/** Run one mutation about the key on screen, with its button busy meanwhile. Returns the
 * result, or null when the request failed (the error is shown) or the screen changed. */
async function keyMutation(button, document, variables, field) {
  const mine = ticket;
  setBusy(button, true);
  let result;
  try {
    result = (await api(document, variables))[field];
  } catch (error) {
    if (mine === ticket) $("#key-error").textContent = error.message;
    return null;
  } finally {
    setBusy(button, false);
  }
  return mine === ticket ? result : null;
}

async function revoke() {
  const key = current;
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
  $("#verify-form").addEventListener("submit", (event) => verification?.verify(event));
  $("#resend-button").addEventListener("click", () => verification?.resend());
  $("#reveal-button").addEventListener("click", reveal);
  $("#stored-button").addEventListener("click", () => navigate("#/keys"));
  $("#revoke-button").addEventListener("click", revoke);
  window.addEventListener("hashchange", route);
  // Leaving the page, even into the back-forward cache, takes a secret on screen with it.
  window.addEventListener("pagehide", () => {
    leaveScreen();
    leaveScreen = () => {};
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) route();
  });

  if (token) {
    try {
      me = (await graphql(ME, {}, { token })).me;
    } catch (error) {
      token = null;
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
