// The admin console: sign in, list keys, create a key, verify it with the emailed code while
// its two clocks run (verify.js), reveal an institutional key's credentials once; rotate an
// active key's secret through the same verification, and follow both secrets' overlap;
// an admin's passkeys (passkeys.js) and API tokens (tokens.js).
//
// Screens are <section data-screen> elements in console.html; the URL fragment says which one
// (#/keys, #/new, #/keys/<id>, and a key's rotation: #/keys/<id>/rotate to start it,
// #/keys/<id>/rotation to verify it). The admin token lives in this tab's sessionStorage only:
// never in localStorage, a cookie or a URL.

import { showCredentials } from "./credentials.js";
import { $, announce, clearErrors, h, setBusy, setFieldError, showScreen } from "./dom.js";
import { deliveryText, formatDateTime, formatDuration, formatSeconds } from "./format.js";
import { ApiError, graphql } from "./graphql.js";
import {
  CANCEL_ROTATION,
  CREATE_KEY,
  EXPIRING_KEYS,
  KEY,
  KEYS,
  ME,
  REVEAL_KEY,
  REVOKE_KEY,
  ROTATE_KEY,
} from "./operations.js";
import { continueWithInstitution, endSession } from "./sign_in.js";
import { showPasskeys } from "./passkeys.js";
import { showTokens } from "./tokens.js";
import { NEW_KEY, ROTATION, showVerify } from "./verify.js";

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
const ROTATION_LABEL = {
  PENDING_VERIFICATION: "Waiting for the code",
  VERIFIED: "Verified, not yet released",
  OVERLAP: "Both secrets work",
  COMPLETED: "Completed",
  LOCKED: "Locked",
  CANCELLED: "Cancelled",
};
// The open rotations, marked in the keys list.
const ROTATION_BADGE = { PENDING_VERIFICATION: "Rotation pending", VERIFIED: "Rotation verified", OVERLAP: "Two secrets" };
// Why a rotation locked (its lockReason), said of the rotation.
const ROTATION_LOCK_REASON = {
  ATTEMPTS: () => "a wrong code was entered too many times",
  WINDOW: () => "it was not verified in time",
  ADMIN_DISABLED: (rotation) => `${rotation.requestedBy}, who started it, was disabled before it was verified`,
};

// The session, handed explicitly to the screens of other modules (verify.js): the admin token,
// the admin it belongs to, and the screen's ticket. Each screen change takes a new ticket; an
// answer that arrives for an older ticket is dropped.
const session = {
  token: sessionStorage.getItem(TOKEN_STORAGE),
  // Signed in with the institution's identity provider: the session is an HttpOnly cookie.
  cookie: false,
  me: null,
  // The numbers the server enforces (the Me query's policy), set at sign-in.
  policy: null,
  // The "Expiring soon" horizon (a duration such as "30d"), set at sign-in.
  expiringWithin: EXPIRING_WITHIN,
  ticket: 0,
  // A request with the admin token. A token the server no longer accepts ends the session.
  async api(query, variables) {
    try {
      return await graphql(query, variables, { token: session.token });
    } catch (error) {
      if (error instanceof ApiError && error.code === "UNAUTHENTICATED") {
        signOut(session.cookie ? error.message : "Your admin token is no longer accepted. Sign in again.");
      }
      throw error;
    }
  },
};
// The screens' own state: what undoes the current screen (timers, credentials on screen), what
// "Create a new key" on the lock screen fills in, the key on the details screen.
// "I have stored the secret" goes to `afterStored`.
const screen = { leave: () => {}, createPrefill: null, key: null, afterStored: "#/keys" };
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
  if (!session.me) {
    showSignIn();
    return;
  }
  const [, section, id, part] = hash.split("/");
  if (section === "tokens") screen.leave = showTokens(session);
  else if (section === "new") showCreate();
  else if (section === "passkeys") screen.leave = showPasskeys(session);
  else if (section === "keys" && id && part === "rotate") loadKey(decodeURIComponent(id), showRotate);
  else if (section === "keys" && id && part === "rotation") loadKey(decodeURIComponent(id), showRotation);
  else if (section === "keys" && id) loadKey(decodeURIComponent(id), present);
  else showKeys();
}

// -- sign in -----------------------------------------------------------------------------

function showSignIn(message = "") {
  const input = $("#token");
  input.value = "";
  clearErrors($("#sign-in-form"));
  clearErrors($("#sso-form"));
  if (message) setFieldError(input, message);
  showScreen("sign-in");
}

async function continueSignIn(event) {
  event.preventDefault();
  const input = $("#work-email");
  const button = event.currentTarget.querySelector("button[type=submit]");
  clearErrors(event.currentTarget);
  const email = input.value.trim();
  if (!email) {
    setFieldError(input, "Enter your work email.");
    input.focus();
    return;
  }
  setBusy(button, true);
  const problem = await continueWithInstitution(email);
  setBusy(button, false);
  if (problem) {
    setFieldError(input, problem);
    input.focus();
  }
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
    session.policy = data.policy;
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
  if (session.cookie) endSession();
  session.cookie = false;
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
  const rotating = key.status === "ACTIVE" && ROTATION_BADGE[key.rotation?.status];
  if (rotating) status.append(" ", h("span", { class: "badge badge-rotating" }, rotating));
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

/** An optional datetime-local field as the API's DateTime (UTC): null when empty, undefined
 * (with the error shown and focus on the field) when it holds no date. */
function readExpiry(field) {
  if (!field.value) return null;
  const when = new Date(field.value);
  if (Number.isNaN(when.getTime())) {
    setFieldError(field, "Enter a date and time, or leave the field empty.");
    field.focus();
    return undefined;
  }
  return when.toISOString();
}

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
  const expiresAt = readExpiry($("#expires"));
  if (expiresAt === undefined) return;
  if (expiresAt) input.expiresAt = expiresAt;
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

// Load one key, then hand it to `show` (unless the screen changed meanwhile).
async function loadKey(id, show) {
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
  else show(key);
}

function keyHash(key) {
  return `#/keys/${encodeURIComponent(key.id)}`;
}

// The screen a key is in: its verification, its lock, or its details (at its own address).
function present(key) {
  leaveScreen();
  if (key.status === "PENDING_VERIFICATION") {
    screen.leave = showVerify(NEW_KEY, key, session, screens);
    return;
  }
  if (location.hash !== keyHash(key)) history.replaceState(null, "", keyHash(key));
  if (key.status === "LOCKED") showLocked(key);
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

  renderRotation(key);
  // An institutional key's secret, or its rotation's new one, is revealed once: the new one
  // only by the admin who started the rotation.
  const newSecret = key.rotation?.status === "VERIFIED";
  const canReveal = key.status === "ACTIVE" && !partner && (!key.revealed || (newSecret && startedByMe(key.rotation)));
  $("#reveal-area").hidden = !canReveal;
  $("#reveal-button").textContent = newSecret ? "Reveal the new secret" : "Reveal credentials";
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
  if (key.status === "ACTIVE" && key.rotation?.status === "VERIFIED") {
    if (partner) {
      return `Its new secret is verified. The partner ${partnerWho(key)} has been emailed a one-time password to retrieve it, once. The current secret keeps working.`;
    }
    return startedByMe(key.rotation)
      ? "Its new secret is verified. Reveal it when you are ready to store it: it is shown once. The current secret keeps working."
      : `Its new secret is verified. Only ${key.rotation.requestedBy}, who started the rotation, can reveal it, once. The current secret keeps working.`;
  }
  if (partner && key.revealed) return "The partner has retrieved the credentials.";
  if (partner) {
    return `The partner ${partnerWho(key)} has been emailed the Key ID and a one-time password, and a link to retrieve the credentials once.`;
  }
  if (key.revealed) {
    return "Its credentials have been revealed and cannot be shown again. If the secret is lost, rotate it to release a new one, or revoke this key.";
  }
  return "Reveal the credentials when you are ready to store them. They are shown once.";
}

function partnerWho(key) {
  return key.partnerName ? `${key.partnerName} (${key.partnerEmail})` : key.partnerEmail;
}

async function reveal() {
  const key = screen.key;
  const newSecret = key.rotation?.status === "VERIFIED";
  const button = $("#reveal-button");
  $("#key-error").textContent = "";
  const result = await keyMutation(button, REVEAL_KEY, { input: { keyId: key.id } }, "revealKey");
  if (!result) return;
  if (result.__typename !== "KeyCredentials") {
    $("#key-error").textContent = result.message;
    return;
  }
  $("#reveal-area").hidden = true;
  $("#key-message").textContent = newSecret
    ? `Revealed. This is the only time the new secret is shown. The old one keeps working ${overlapText()}.`
    : "Revealed. This is the only time the secret is shown.";
  // After a rotation's reveal, the key's page shows both secrets' overlap.
  screen.afterStored = newSecret ? keyHash(key) : "#/keys";
  const wipe = showCredentials($("#credentials-area"), result);
  $("#stored-area").hidden = false;
  // Leaving the screen, by any route, wipes the secret from the page.
  screen.leave = () => {
    wipe();
    $("#stored-area").hidden = true;
  };
}

/** Run one mutation about the key on screen, with its button busy meanwhile. Returns the
 * result, or null when the request failed (the error is shown in `errorAt`) or the screen
 * changed. */
async function keyMutation(button, document, variables, field, errorAt = "#key-error") {
  const mine = session.ticket;
  setBusy(button, true);
  let result;
  try {
    result = (await session.api(document, variables))[field];
  } catch (error) {
    if (mine === session.ticket) $(errorAt).textContent = error.message;
    return null;
  } finally {
    setBusy(button, false);
  }
  return mine === session.ticket ? result : null;
}

async function revoke() {
  const button = $("#revoke-button");
  if (!button.dataset.confirming) {
    button.dataset.confirming = "yes";
    button.textContent = "Yes, revoke this key";
    $("#revoke-hint").textContent = "Press again to revoke. This cannot be undone.";
    return;
  }
  await changeKey(button, REVOKE_KEY, "revokeKey", "Key revoked.");
}

/** A mutation of the key on screen that answers with the key (revoke, cancel a rotation):
 * the key's new state, announced with `news`; or the API's refusal, shown. */
async function changeKey(button, document, field, news) {
  $("#key-error").textContent = "";
  const result = await keyMutation(button, document, { input: { keyId: screen.key.id } }, field);
  if (!result) return;
  if (result.__typename !== "ApiKey") {
    $("#key-error").textContent = result.message;
    return;
  }
  announce(news);
  present(result);
}

// -- a key's secret rotation -------------------------------------------------------------

// A new rotation may start on an active key whose secret was revealed (or retrieved), unless
// one is open: at most two secrets are ever live.
function canRotate(key) {
  return key.status === "ACTIVE" && key.revealed && !["PENDING_VERIFICATION", "VERIFIED", "OVERLAP"].includes(key.rotation?.status);
}

// Whether the signed-in admin started `rotation`: only they have its code, and only they
// reveal an institutional key's new secret.
function startedByMe(rotation) {
  return rotation.requestedBy.toLowerCase() === session.me.email.toLowerCase();
}

// The admin who started `rotation`, as the rotation box names them.
function requester(rotation) {
  return startedByMe(rotation) ? `you (${rotation.requestedBy})` : rotation.requestedBy;
}

// How long the old secret outlives a release, in the server's numbers: "until 1 day after the
// new one's first use, at most 7 days after the release".
function overlapText() {
  const { rotationGraceSeconds: grace, rotationMaxOverlapSeconds: most } = session.policy;
  return `until ${formatSeconds(grace)} after the new one's first use, at most ${formatSeconds(most)} after the release`;
}

// The rotation box of an active key's details: how its latest rotation stands, both secrets
// during the overlap, and what can be done (rotate, enter the code, cancel).
function renderRotation(key) {
  const { rotation } = key;
  const area = $("#rotation-area");
  area.hidden = key.status !== "ACTIVE" || !(rotation || key.revealed);
  const rows = [];
  let text = "Its secret has never been rotated.";
  let warning = false;
  if (rotation) {
    const started = formatDateTime(rotation.startedAt);
    const newSecret = `Released ${formatDateTime(rotation.releasedAt)}; ${
      rotation.newSecretFirstUsedAt ? `first used ${formatDateTime(rotation.newSecretFirstUsedAt)}` : "not used yet"
    }`;
    const mine = startedByMe(rotation);
    rows.push(
      ["Status", ROTATION_LABEL[rotation.status] ?? rotation.status],
      ["Started", started],
      ["Started by", requester(rotation)],
    );
    switch (rotation.status) {
      case "PENDING_VERIFICATION":
        text = mine
          ? "A new secret waits for the verification code emailed to you. The current secret keeps working."
          : `A new secret waits for its verification code, emailed to ${rotation.requestedBy}, who started the rotation: only they can enter it. The current secret keeps working.`;
        rows.push(
          ["Locks", `${formatDateTime(rotation.verificationDeadline)} unless verified`],
          ["Attempts left", String(rotation.attemptsRemaining)],
          ["Resends left", String(rotation.resendsRemaining)],
        );
        break;
      case "VERIFIED":
        text =
          key.kind === "PARTNER"
            ? "Verified: the partner retrieves the new secret with the one-time password emailed to them. The current secret keeps working."
            : `Verified: ${mine ? "you reveal" : `only ${rotation.requestedBy}, who started the rotation, can reveal`} ` +
              "the new secret, once. The current secret keeps working.";
        break;
      case "OVERLAP":
        text = "Switch your clients to the new secret before the old one retires.";
        rows.push(
          ["New secret", newSecret],
          [
            "Old secret",
            rotation.newSecretFirstUsedAt
              ? `Retires ${formatDateTime(rotation.oldSecretRetiresAt)}`
              : `Retires ${formatDateTime(rotation.oldSecretRetiresAt)} at the latest; ${formatSeconds(session.policy.rotationGraceSeconds)} after the new secret's first use if that is sooner`,
          ],
        );
        break;
      case "COMPLETED":
        text = "Done: only the new secret works.";
        rows.push(["New secret", newSecret], ["Old secret", `Retired ${formatDateTime(rotation.oldSecretRetiresAt)}`]);
        break;
      case "LOCKED":
        warning = true;
        text = `The rotation is locked: ${ROTATION_LOCK_REASON[rotation.lockReason]?.(rotation) ?? "it was not verified"}. Nothing was released: the key keeps its current secret, which still works.`;
        break;
      case "CANCELLED":
        text = "The rotation was cancelled. The key keeps its current secret, which still works.";
        break;
    }
  }
  const status = $("#rotation-status");
  status.textContent = text;
  status.className = warning ? "notice warning" : "";
  $("#rotation-details").replaceChildren(
    ...rows.map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value))),
  );
  const rotatable = canRotate(key);
  $("#rotate-start").hidden = !rotatable;
  $("#rotate-start-hint").hidden = !rotatable;
  const code = $("#rotation-code");
  code.hidden = rotation?.status !== "PENDING_VERIFICATION" || !startedByMe(rotation);
  code.href = `${keyHash(key)}/rotation`;
  $("#cancel-rotation").hidden = !["PENDING_VERIFICATION", "VERIFIED"].includes(rotation?.status);
}

function cancelRotation() {
  return changeKey($("#cancel-rotation"), CANCEL_ROTATION, "cancelRotation", "Rotation cancelled. The key keeps its current secret.");
}

// The confirmation before a rotation starts: what will happen, and an optional new expiry.
function showRotate(key) {
  if (!canRotate(key)) {
    present(key);
    return;
  }
  const form = $("#rotate-form");
  form.reset();
  clearErrors(form);
  screen.key = key;
  $("#rotate-heading").textContent = `Rotate the secret of “${key.name}”`;
  $("#rotate-step-code").textContent =
    `A six-digit code goes to you at ${session.me.email}. Enter it on the next screen, as for a new key.`;
  $("#rotate-step-release").textContent =
    key.kind === "PARTNER"
      ? `Once you verify, the partner ${partnerWho(key)} is emailed a one-time password to retrieve the new secret, once.`
      : "Once you verify, you reveal the new secret, once.";
  $("#rotate-expires-hint").textContent =
    `${key.expiresAt ? `The key expires ${formatDateTime(key.expiresAt)}.` : "The key does not expire."} ` +
    "To renew it, give a new expiry, in your local time: it takes effect when the new secret is released. " +
    "Leave it empty to keep the current one.";
  $("#rotate-step-overlap").textContent =
    `The current secret keeps working ${overlapText()}. The key’s page shows when. ` +
    "Switch your clients to the new secret within that time.";
  $("#rotate-back").href = keyHash(key);
  showScreen("rotate");
}

async function rotateKey(event) {
  event.preventDefault();
  const key = screen.key;
  clearErrors(event.currentTarget);
  const expiresAt = readExpiry($("#rotate-expires"));
  if (expiresAt === undefined) return;
  const input = { keyId: key.id, expiresAt };
  const result = await keyMutation($("#rotate-button"), ROTATE_KEY, { input }, "rotateKey", "#rotate-error");
  if (!result) return;
  if (result.__typename === "ApiKey") {
    announce(`Rotation started. A verification code is on its way to ${session.me.email}.`);
    navigate(`${keyHash(result)}/rotation`);
  } else if (result.__typename === "ValidationError" && result.field === "expiresAt") {
    setFieldError($("#rotate-expires"), result.message);
    $("#rotate-expires").focus();
  } else {
    $("#rotate-error").textContent = result.message;
  }
}

// The rotation's verification screen, while it waits for the signed-in admin's code;
// otherwise the key (another admin's rotation can only be followed or cancelled there).
function showRotation(key) {
  if (ROTATION.waiting(key) && startedByMe(key.rotation)) screen.leave = showVerify(ROTATION, key, session, screens);
  else present(key);
}

// -- start -------------------------------------------------------------------------------

async function start() {
  $("#sign-in-form").addEventListener("submit", signIn);
  $("#sso-form").addEventListener("submit", continueSignIn);
  $("#sign-out").addEventListener("click", () => signOut());
  $("#status-filter").addEventListener("change", changeFilter);
  $("#filter-form").addEventListener("submit", (event) => event.preventDefault());
  $("#previous-page").addEventListener("click", () => changePage(-1));
  $("#next-page").addEventListener("click", () => changePage(1));
  $("#create-form").addEventListener("submit", createKey);
  for (const radio of document.querySelectorAll("input[name=kind]")) radio.addEventListener("change", syncKind);
  $("#reveal-button").addEventListener("click", reveal);
  $("#stored-button").addEventListener("click", () => navigate(screen.afterStored));
  $("#revoke-button").addEventListener("click", revoke);
  $("#rotate-start").addEventListener("click", () => navigate(`${keyHash(screen.key)}/rotate`));
  $("#cancel-rotation").addEventListener("click", cancelRotation);
  $("#rotate-form").addEventListener("submit", rotateKey);
  window.addEventListener("hashchange", route);
  // Leaving the page, even into the back-forward cache, takes a secret on screen with it.
  window.addEventListener("pagehide", leaveScreen);
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) route();
  });

  if (session.token) {
    try {
      ({ me: session.me, policy: session.policy } = await graphql(ME, {}, { token: session.token }));
    } catch (error) {
      session.token = null;
      sessionStorage.removeItem(TOKEN_STORAGE);
      renderAccount();
      showSignIn(error.code === "UNAUTHENTICATED" ? "Your session has ended. Sign in again." : error.message);
      return;
    }
  } else {
    // Back from the identity provider, or a reload: the session cookie, if there is one.
    try {
      const data = await graphql(ME);
      session.me = data.me;
      session.cookie = true;
      session.expiringWithin = data.policy.expiryNotices[0] ?? EXPIRING_WITHIN;
    } catch {
      session.me = null;
    }
  }
  renderAccount();
  route();
}

start();
