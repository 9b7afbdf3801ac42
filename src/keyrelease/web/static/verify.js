// The verification screen of whatever waits for an emailed code: a new key, or a rotation of
// a key's secret. Two countdowns (the code's expiry and the lock deadline, both by the
// server's clock), attempts and resends left. It asks the server again when a clock runs out,
// every 30 seconds, and after every failure, so what it shows is what the server holds.
//
// Both are verified through the key's id, with the same mutations, rules and generic error;
// what differs is said by a subject (NEW_KEY, ROTATION below): where the numbers are (the key
// itself, or key.rotation), how the screen speaks of it, and what else it offers (Cancel
// rotation). It knows the rest of the console only through what showVerify is handed: the
// session (`me`, the screen `ticket`, `api`) and the way to other screens (`present`).

import { $, announce, clearErrors, setBusy, setFieldError, showScreen } from "./dom.js";
import { deliveryText, formatCountdown, formatTime, plural } from "./format.js";
import { serverNow } from "./graphql.js";
import { CANCEL_ROTATION, KEY, RESEND_CODE, VERIFY_KEY } from "./operations.js";
import { offerPasskey } from "./passkeys.js";

const POLL_MS = 30_000;

function partnerOf(key) {
  return `${key.partnerName || "the partner"} at ${key.partnerEmail}`;
}

/** A new key, waiting for its code: the numbers are the key's own. */
export const NEW_KEY = {
  waiting: (key) => (key.status === "PENDING_VERIFICATION" ? key : null),
  heading: (key) => `Verify “${key.name}”`,
  intro: (email) =>
    `A six-digit code was emailed to ${email}. Enter it before either clock runs out: ` +
    "a code works for a few minutes, and a key that is not verified in time locks for ever.",
  recipient: (key) =>
    `When you verify, a one-time password goes to ${partnerOf(key)}. ` +
    "If that is not the right recipient, do not verify: revoke the key and create it again.",
  lockLabel: "Key locks in",
  locks: "The key locks",
  closed: "The key's window has closed.",
  noResends: "No resends are left for this key.",
  deadEnd: "This code has expired and no resends are left, so this key can no longer be verified. Create a new key.",
  verified: () => "Verified. The key is active.",
  ended: () => "",
  cancel: null,
};

/** A rotation of an active key's secret, waiting for its code: the numbers are key.rotation's.
 * The key stays ACTIVE with its current secret whatever becomes of the rotation. */
export const ROTATION = {
  waiting: (key) => (key.status === "ACTIVE" && key.rotation?.status === "PENDING_VERIFICATION" ? key.rotation : null),
  heading: (key) => `Verify the new secret of “${key.name}”`,
  intro: (email) =>
    `A six-digit code was emailed to ${email} when you started the rotation. Enter it before either clock runs out: ` +
    "a code works for a few minutes, and a rotation that is not verified in time locks. " +
    "The current secret keeps working whatever happens here.",
  recipient: (key) =>
    `When you verify, a one-time password for the new secret goes to ${partnerOf(key)}. ` +
    "If that is not the right recipient, do not verify: cancel the rotation.",
  lockLabel: "Rotation locks in",
  locks: "The rotation locks",
  closed: "The rotation's window has closed.",
  noResends: "No resends are left for this rotation.",
  deadEnd:
    "This code has expired and no resends are left, so this rotation can no longer be verified. " +
    "Cancel it and start a new one.",
  verified: (key) =>
    key.kind === "PARTNER"
      ? "Verified. The partner is being emailed a one-time password for the new secret."
      : "Verified. Reveal the new secret when you are ready to store it.",
  ended: (key) =>
    ({
      LOCKED: "The rotation is locked. Nothing was released: the key keeps its current secret, which still works.",
      CANCELLED: "The rotation was cancelled. The key keeps its current secret.",
    })[key.rotation?.status] ?? "",
  cancel: {
    label: "Cancel rotation",
    hint: "The key keeps its current secret, which goes on working. You can start a new rotation at any time.",
    document: CANCEL_ROTATION,
    field: "cancelRotation",
    done: "Rotation cancelled. The key keeps its current secret.",
  },
};

/** Show the verification screen of `subject` (NEW_KEY or ROTATION) for `key`; returns what
 * leaves it (stops its clocks and forgets its buttons). `session` is the console's ({ me,
 * ticket, api }); `screens` says how to show another screen ({ present(key),
 * showMessage(heading, text) }). */
export function showVerify(subject, key, session, screens) {
  const form = $("#verify-form");
  form.reset();
  clearErrors(form);
  const verification = new Verification(subject, key, session, screens);
  verification.render();
  showScreen("verify");
  // Passkeys (passkeys.js): "Use a passkey" where the key takes one; the code stays where it may.
  const passkey = offerPasskey(key, session, {
    verified: () => verification.refresh(),
    failed: () => verification.refresh(),
  });
  return () => {
    passkey();
    verification.stop();
  };
}

class Verification {
  constructor(subject, key, session, screens) {
    this.subject = subject;
    this.key = key;
    this.session = session;
    this.screens = screens;
    this.ticket = session.ticket;
    this.stopped = false;
    this.refreshing = false;
    this.lastRefresh = Date.now();
    this.checkedCode = null;
    this.spoken = {};
    this.timer = window.setInterval(() => this.tick(), 1000);
    this.poller = window.setInterval(() => this.refresh(), POLL_MS);
    this.listening = new AbortController();
    const { signal } = this.listening;
    $("#verify-form").addEventListener("submit", (event) => this.verify(event), { signal });
    $("#resend-button").addEventListener("click", () => this.resend(), { signal });
    $("#verify-cancel").addEventListener("click", () => this.cancel(), { signal });
  }

  get current() {
    return !this.stopped && this.ticket === this.session.ticket;
  }

  /** What waits for the code: its codeExpiresAt, verificationDeadline, attemptsRemaining and
   * resendsRemaining (the key's, or its rotation's). */
  get pending() {
    return this.subject.waiting(this.key);
  }

  stop() {
    this.stopped = true;
    window.clearInterval(this.timer);
    window.clearInterval(this.poller);
    this.listening.abort();
  }

  render() {
    const { key, subject, pending } = this;
    $("#verify-heading").textContent = subject.heading(key);
    $("#verify-intro").textContent = subject.intro(this.session.me.email);
    const recipient = $("#verify-recipient");
    recipient.hidden = key.kind !== "PARTNER";
    recipient.textContent = key.kind === "PARTNER" ? subject.recipient(key) : "";
    $("#lock-clock-label").textContent = subject.lockLabel;
    $("#attempts-left").textContent = String(pending.attemptsRemaining);
    const resend = $("#resend-button");
    resend.textContent = `Resend code (${pending.resendsRemaining} left)`;
    resend.disabled = pending.resendsRemaining === 0;
    $("#resend-hint").textContent =
      pending.resendsRemaining === 0
        ? subject.noResends
        : "A new code replaces the previous one. It gives you neither more attempts nor more time.";
    $("#delivery").textContent = deliveryText(key.lastDelivery);
    $("#code-clock-at").textContent = pending.codeExpiresAt ? `at ${formatTime(pending.codeExpiresAt)}` : "";
    $("#lock-clock-at").textContent = `at ${formatTime(pending.verificationDeadline)}`;
    const cancel = subject.cancel;
    $("#verify-cancel-area").hidden = !cancel;
    $("#verify-cancel").textContent = cancel?.label ?? "";
    $("#verify-cancel-hint").textContent = cancel?.hint ?? "";
    this.tick();
  }

  tick() {
    if (!this.current) return;
    const { pending, subject } = this;
    const now = serverNow();
    const codeLeft = pending.codeExpiresAt ? Date.parse(pending.codeExpiresAt) - now : 0;
    const lockLeft = Date.parse(pending.verificationDeadline) - now;
    const codeClock = $("#code-clock");
    const lockClock = $("#lock-clock");
    codeClock.textContent = codeLeft > 0 ? formatCountdown(codeLeft) : "Expired";
    lockClock.textContent = lockLeft > 0 ? formatCountdown(lockLeft) : "Now";
    codeClock.classList.toggle("urgent", codeLeft < 60_000);
    lockClock.classList.toggle("urgent", lockLeft < 120_000);

    const expired = $("#code-expired");
    expired.hidden = codeLeft > 0 || lockLeft <= 0;
    expired.textContent =
      pending.resendsRemaining > 0 ? "This code has expired. Choose “Resend code” for a new one." : subject.deadEnd;

    const spoken = [
      this.milestone("code", codeLeft, (m) => m <= 5, "The code expires", "The code has expired."),
      this.milestone("lock", lockLeft, (m) => m <= 5 || m % 5 === 0, subject.locks, subject.closed),
    ].filter(Boolean);
    if (spoken.length) $("#clock-status").textContent = spoken.join(" ");

    // A clock ran out: ask the server how things stand now (once for an expired code; for
    // the lock, every five seconds until the server agrees).
    if (codeLeft <= 0 && lockLeft > 0 && this.checkedCode !== pending.codeExpiresAt) {
      this.checkedCode = pending.codeExpiresAt;
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
      const fresh = (await this.session.api(KEY, { id: this.key.id })).key;
      if (!this.current) return;
      if (fresh) {
        this.update(fresh);
      } else {
        this.stop();
        this.screens.showMessage("No such key", "No key with this ID is visible to you.");
      }
    } catch {
      // Keep showing what we know; the next tick or poll asks again.
    } finally {
      this.refreshing = false;
    }
  }

  update(fresh) {
    if (!this.subject.waiting(fresh)) {
      this.leave(fresh, this.subject.ended(fresh));
      return;
    }
    this.key = fresh;
    this.render();
  }

  // Nothing waits for a code any more: show where things stand, saying why.
  leave(fresh, news) {
    if (news) announce(news);
    this.screens.present(fresh);
  }

  // One mutation about what is on screen, its input's keyId filled in, with `button` busy
  // meanwhile: its result, or null when the request failed (the error is shown under the code
  // field) or the screen changed.
  async mutate(button, document, field, input = {}) {
    clearErrors($("#verify-form"));
    setBusy(button, true);
    try {
      const result = (await this.session.api(document, { input: { keyId: this.key.id, ...input } }))[field];
      return this.current ? result : null;
    } catch (error) {
      if (this.current) setFieldError($("#code"), error.message);
      return null;
    } finally {
      setBusy(button, false);
    }
  }

  async verify(event) {
    event.preventDefault();
    const input = $("#code");
    // Pasted codes often come with spaces or a dash in the middle.
    const code = input.value.replace(/[\s-]/g, "");
    const result = await this.mutate($("#verify-button"), VERIFY_KEY, "verifyKey", { code });
    if (!result) return;
    if (result.__typename === "ApiKey") {
      this.leave(result, this.subject.verified(result));
      return;
    }
    // The API's own words: the generic error says nothing about why, on purpose.
    setFieldError(input, result.message);
    input.focus();
    input.select();
    if (result.__typename === "VerificationError") await this.refresh();
  }

  async resend() {
    const input = $("#code");
    const result = await this.mutate($("#resend-button"), RESEND_CODE, "resendCode");
    if (!result) return;
    if (result.__typename !== "ApiKey") {
      setFieldError(input, result.message);
      input.focus();
      await this.refresh();
      return;
    }
    this.update(result);
    if (!this.current || !this.pending) return;
    input.value = "";
    input.focus();
    announce(
      `A new code is on its way to ${this.session.me.email}; earlier codes no longer work. ` +
        `${plural(this.pending.resendsRemaining, "resend")} left.`,
    );
  }

  async cancel() {
    const { cancel } = this.subject;
    const result = await this.mutate($("#verify-cancel"), cancel.document, cancel.field);
    if (!result) return;
    if (result.__typename === "ApiKey") {
      this.leave(result, cancel.done);
      return;
    }
    // Too late to cancel (verified or locked meanwhile): the reason, and how things stand.
    setFieldError($("#code"), result.message);
    await this.refresh();
  }
}
