// The partner's retrieval page: the Key ID and one-time password from the partner email
// return the key's credentials, once. No admin token: the one-time password is the proof.

import { showCredentials } from "./credentials.js";
import { $, clearErrors, setBusy, showScreen } from "./dom.js";
import { graphql } from "./graphql.js";
import { REVEAL_KEY } from "./operations.js";

let wipe = () => {};

async function retrieve(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("#retrieve-error");
  const keyId = $("#key-id").value.trim();
  const oneTimePassword = $("#otp").value.trim();
  clearErrors(form);
  if (!keyId || !oneTimePassword) {
    error.textContent = "Enter both the Key ID and the one-time password from the email.";
    $(keyId ? "#otp" : "#key-id").focus();
    return;
  }
  const button = $("#retrieve-button");
  setBusy(button, true);
  let result;
  try {
    result = (await graphql(REVEAL_KEY, { input: { keyId, oneTimePassword } })).revealKey;
  } catch (failure) {
    error.textContent = failure.message;
    return;
  } finally {
    setBusy(button, false);
  }
  if (result.__typename !== "KeyCredentials") {
    // The API's one generic answer, as it is: it does not say which value was wrong.
    error.textContent = result.message;
    return;
  }
  form.reset();
  showScreen("revealed");
  wipe = showCredentials($("#credentials-area"), result, { focus: false });
}

function done() {
  wipe();
  showScreen("done");
}

$("#retrieve-form").addEventListener("submit", retrieve);
$("#done-button").addEventListener("click", done);
// Leaving the page by any route takes the secret with it.
window.addEventListener("pagehide", () => wipe());
showScreen("retrieve");
