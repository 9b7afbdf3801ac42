// Passkeys in the console: the Passkeys screen (list with last use, add, rename, remove) and
// "Use a passkey" on the verification screen (offerPasskey, verify.js's one hook).
//
// The server sends WebAuthn options as JSON with base64url fields, and takes the browser's
// answer back as JSON (what PublicKeyCredential.toJSON() gives, written out by hand where a
// browser lacks it). Every rule is the server's: this module only carries bytes between the
// browser's navigator.credentials and the GraphQL API.

import { $, announce, clearErrors, h, setBusy, setFieldError, showScreen } from "./dom.js";
import { formatDateTime } from "./format.js";
import {
  BEGIN_PASSKEY_VERIFICATION as BEGIN,
  CONFIRM_PASSKEY_REGISTRATION as CONFIRM,
  FINISH_PASSKEY_REGISTRATION as FINISH,
  PASSKEYS,
  REMOVE_PASSKEY as REMOVE,
  START_PASSKEY_REGISTRATION as START,
  VERIFY_KEY_WITH_PASSKEY as VERIFY,
} from "./operations.js";

// -- WebAuthn's bytes <-> the server's JSON ---------------------------------------------------

function toBytes(base64url) {
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function toBase64url(buffer) {
  let binary = "";
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function descriptors(list) {
  return (list ?? []).map((c) => ({ ...c, id: toBytes(c.id) }));
}

function asJSON(credential) {
  if (typeof credential.toJSON === "function") return JSON.stringify(credential.toJSON());
  const r = credential.response;
  const response = { clientDataJSON: toBase64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toBase64url(r.attestationObject);
    response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
  } else {
    response.authenticatorData = toBase64url(r.authenticatorData);
    response.signature = toBase64url(r.signature);
    response.userHandle = r.userHandle ? toBase64url(r.userHandle) : null;
  }
  return JSON.stringify({
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    response,
    clientExtensionResults: credential.getClientExtensionResults(),
    authenticatorAttachment: credential.authenticatorAttachment ?? null,
  });
}

async function createPasskey(optionsJSON) {
  const options = JSON.parse(optionsJSON);
  options.challenge = toBytes(options.challenge);
  options.user.id = toBytes(options.user.id);
  options.excludeCredentials = descriptors(options.excludeCredentials);
  return asJSON(await navigator.credentials.create({ publicKey: options }));
}

async function usePasskey(optionsJSON) {
  const options = JSON.parse(optionsJSON);
  options.challenge = toBytes(options.challenge);
  options.allowCredentials = descriptors(options.allowCredentials);
  return asJSON(await navigator.credentials.get({ publicKey: options }));
}

export function passkeysSupported() {
  return typeof window.PublicKeyCredential === "function" && Boolean(navigator.credentials);
}

// What the browser says when the person cancels or the device refuses.
function ceremonyMessage(error) {
  if (error?.name === "NotAllowedError") return "The passkey was not used (cancelled, or it timed out). Try again.";
  if (error?.name === "InvalidStateError") return "This device already holds one of your passkeys.";
  return error?.message ?? String(error);
}

// -- the verification screen: verify.js's hook -------------------------------------------------

/** Offer "Use a passkey" on the verification screen of `key` when the key takes a passkey and
 * the admin has one; with a passkey-only key the code's parts are hidden. `done` says what
 * follows: { verified(key) } after a release, { failed() } after a refusal (verify.js then
 * asks the server how the key stands). Returns what undoes it. */
export function offerPasskey(key, session, done) {
  const section = document.querySelector('section[data-screen="verify"]');
  const offer = $("#verify-passkey");
  const button = $("#passkey-verify-button");
  const error = $("#passkey-verify-error");
  // A pending rotation has the rule of its own start (when the screen asks for `rotation`).
  const rotating = key.rotation?.status === "PENDING_VERIFICATION" && key.rotation.releaseProof;
  const proof = rotating ? key.rotation.releaseProof : key.releaseProof;
  const takesPasskey = proof === "PASSKEY" || proof === "PASSKEY_OR_EMAIL";
  section.classList.toggle("passkey-only", proof === "PASSKEY");
  offer.hidden = true;
  error.textContent = "";
  const listening = new AbortController();
  let current = true;
  const stop = () => {
    current = false;
    listening.abort();
    section.classList.remove("passkey-only");
    offer.hidden = true;
  };
  if (!takesPasskey) return stop;
  $("#passkey-verify-hint").textContent =
    proof === "PASSKEY"
      ? "Your institution releases keys with a passkey: no code is emailed. The passkey's answer is good for this key alone."
      : "Or enter the emailed code. The passkey's answer is good for this key alone.";
  session.api(PASSKEYS).then(
    ({ passkeys }) => {
      if (!current) return;
      offer.hidden = false;
      if (passkeys.length && passkeysSupported()) return;
      button.hidden = true;
      error.textContent = passkeysSupported()
        ? "You have no passkey yet: add one under Passkeys (you confirm with an emailed code), then come back."
        : "This browser cannot use passkeys.";
    },
    () => {},
  );
  button.addEventListener(
    "click",
    async () => {
      error.textContent = "";
      setBusy(button, true);
      try {
        const begun = (await session.api(BEGIN, { input: { keyId: key.id } })).beginPasskeyVerification;
        if (begun.__typename !== "PasskeyOptions") throw new Error(begun.message);
        const assertion = await usePasskey(begun.options);
        if (!current) return;
        const result = (await session.api(VERIFY, { input: { keyId: key.id, passkeyAssertion: assertion } })).verifyKey;
        if (!current) return;
        if (result.__typename === "ApiKey") {
          announce("Verified with your passkey. The key is active.");
          done.verified(result);
          return;
        }
        error.textContent = result.message;
        done.failed();
      } catch (problem) {
        if (current) error.textContent = ceremonyMessage(problem);
      } finally {
        setBusy(button, false);
      }
    },
    { signal: listening.signal },
  );
  return stop;
}

// -- the Passkeys screen ---------------------------------------------------------------------

/** Show the Passkeys screen; returns what leaves it. */
export function showPasskeys(session) {
  const screen = new PasskeysScreen(session);
  showScreen("passkeys");
  screen.load();
  return () => screen.stop();
}

class PasskeysScreen {
  constructor(session) {
    this.session = session;
    this.ticket = session.ticket;
    this.passkeys = [];
    this.registration = null;
    this.listening = new AbortController();
    const { signal } = this.listening;
    for (const form of ["#passkey-add-form", "#passkey-code-form"]) {
      $(form).reset();
      clearErrors($(form));
    }
    $("#passkey-code-form").hidden = true;
    $("#passkey-add-form").addEventListener("submit", (event) => this.add(event, "PASSKEY"), { signal });
    $("#passkey-add-email").addEventListener("click", (event) => this.add(event, "EMAIL"), { signal });
    $("#passkey-code-form").addEventListener("submit", (event) => this.confirmCode(event), { signal });
  }

  get current() {
    return this.ticket === this.session.ticket;
  }

  stop() {
    this.listening.abort();
  }

  async load() {
    const { passkeys } = await this.session.api(PASSKEYS);
    if (!this.current) return;
    this.passkeys = passkeys;
    this.render();
  }

  render() {
    const list = $("#passkeys-list");
    list.replaceChildren(
      ...this.passkeys.map((p) =>
        h(
          "li",
          {},
          h("strong", {}, p.name),
          ` · added ${formatDateTime(p.createdAt)} · `,
          p.lastUsedAt ? `last used ${formatDateTime(p.lastUsedAt)}` : "never used",
          " ",
          h("button", { type: "button", class: "quiet", onclick: () => this.remove(p) }, `Remove “${p.name}”`),
        ),
      ),
    );
    $("#passkeys-empty").hidden = this.passkeys.length > 0;
    // With a passkey, the new one is confirmed with it (or, the second button, by email).
    $("#passkey-add-button").textContent = this.passkeys.length ? "Add a passkey (confirm with one you have)" : "Add a passkey";
    $("#passkey-add-email").hidden = this.passkeys.length === 0;
  }

  name() {
    const input = $("#passkey-name");
    const name = input.value.trim();
    if (!name) {
      setFieldError(input, "Name the passkey, e.g. the device it lives on.");
      input.focus();
      return null;
    }
    return name;
  }

  async add(event, proof) {
    event.preventDefault();
    clearErrors($("#passkey-add-form"));
    const name = this.name();
    if (!name) return;
    const withPasskey = proof === "PASSKEY" && this.passkeys.length > 0;
    const button = $("#passkey-add-button");
    setBusy(button, true);
    try {
      const input = { proof: withPasskey ? "PASSKEY" : "EMAIL" };
      const started = (await this.session.api(START, { input })).startPasskeyRegistration;
      if (started.__typename !== "PasskeyRegistration") throw new Error(started.message);
      this.registration = { id: started.registrationId, name };
      if (withPasskey) {
        await this.confirm({ passkeyAssertion: await usePasskey(started.requestOptions) });
      } else {
        $("#passkey-code-form").hidden = false;
        $("#passkey-code").focus();
        announce(`A code is on its way to ${this.session.me.email}.`);
      }
    } catch (error) {
      if (this.current) setFieldError($("#passkey-name"), ceremonyMessage(error));
    } finally {
      setBusy(button, false);
    }
  }

  async confirmCode(event) {
    event.preventDefault();
    const input = $("#passkey-code");
    clearErrors($("#passkey-code-form"));
    const button = $("#passkey-code-button");
    setBusy(button, true);
    try {
      await this.confirm({ code: input.value.replace(/[\s-]/g, "") });
    } catch (error) {
      if (this.current) setFieldError(input, ceremonyMessage(error));
    } finally {
      setBusy(button, false);
    }
  }

  async confirm(proof) {
    const registration = this.registration;
    const variables = { input: { registrationId: registration.id, ...proof } };
    const confirmed = (await this.session.api(CONFIRM, variables)).confirmPasskeyRegistration;
    if (confirmed.__typename !== "PasskeyOptions") throw new Error(confirmed.message);
    const credential = await createPasskey(confirmed.options);
    const input = { registrationId: registration.id, name: registration.name, credential };
    const finished = (await this.session.api(FINISH, { input })).finishPasskeyRegistration;
    if (finished.__typename !== "Passkey") throw new Error(finished.message);
    if (!this.current) return;
    this.registration = null;
    $("#passkey-add-form").reset();
    $("#passkey-code-form").reset();
    $("#passkey-code-form").hidden = true;
    this.passkeys = [...this.passkeys, finished];
    this.render();
    announce(`Passkey “${finished.name}” added.`);
  }

  async remove(passkey) {
    const result = (await this.session.api(REMOVE, { input: { passkeyId: passkey.id } })).removePasskey;
    if (!this.current) return;
    if (result.__typename === "Passkey") announce(`Passkey “${passkey.name}” removed.`);
    await this.load();
  }
}
