// The verification screen of one pending key: two countdowns (the code's expiry and the
// key's lock deadline, both by the server's clock), attempts and resends left. It asks the
// server again when a clock runs out, every 30 seconds, and after every failure, so what it
// shows is what the server holds.
//
// It knows the rest of the console only through what showVerify is handed: the session
// (`me`, the screen `ticket`, `api`) and the way to other screens (`present`, `showMessage`).

import { $, announce, clearErrors, setBusy, setFieldError, showScreen } from "./dom.js";
import { deliveryText, formatCountdown, formatTime, plural } from "./format.js";
import { serverNow } from "./graphql.js";
import { KEY, RESEND_CODE, VERIFY_KEY } from "./operations.js";
import { offerPasskey } from "./passkeys.js";

const POLL_MS = 30_000;

/** Show the verification screen for `key`; returns what leaves it (stops its clocks and
 * forgets its buttons). `session` is the console's ({ me, ticket, api }); `screens` says how
 * to show another screen ({ present(key), showMessage(heading, text) }). */
export function showVerify(key, session, screens) {
  const form = $("#verify-form");
  form.reset();
  clearErrors(form);
  const verification = new Verification(key, session, screens);
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
  constructor(key, session, screens) {
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
  }

  get current() {
    return !this.stopped && this.ticket === this.session.ticket;
  }

  stop() {
    this.stopped = true;
    window.clearInterval(this.timer);
    window.clearInterval(this.poller);
    this.listening.abort();
  }

  render() {
    const key = this.key;
    $("#verify-heading").textContent = `Verify “${key.name}”`;
    $("#verify-intro").textContent =
      `A six-digit code was emailed to ${this.session.me.email}. Enter it before either clock runs out: ` +
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
    if (fresh.status !== "PENDING_VERIFICATION") {
      this.screens.present(fresh);
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
      result = (await this.session.api(VERIFY_KEY, { input: { keyId: this.key.id, code } })).verifyKey;
    } catch (error) {
      if (this.current) setFieldError(input, error.message);
      return;
    } finally {
      setBusy(button, false);
    }
    if (!this.current) return;
    if (result.__typename === "ApiKey") {
      announce("Verified. The key is active.");
      this.screens.present(result);
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
      result = (await this.session.api(RESEND_CODE, { input: { keyId: this.key.id } })).resendCode;
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
        `A new code is on its way to ${this.session.me.email}; earlier codes no longer work. ` +
          `${plural(result.resendsRemaining, "resend")} left.`,
      );
    } else {
      setFieldError(input, result.message);
      input.focus();
      await this.refresh();
    }
  }
}
