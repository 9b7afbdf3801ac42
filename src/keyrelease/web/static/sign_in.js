// Sign-in with the institution's identity provider (keyrelease.web.sign_in): the console asks
// for a work email, the server answers with the provider's address, and the browser goes there;
// it comes back to /sso/callback, which sets the session cookie (HttpOnly: no script here ever
// sees it). Requests that ride on the cookie carry the CSRF header (graphql.js does the same).

export const CSRF_HEADERS = { "X-Keyrelease-CSRF": "1" };

// Go to the provider of the institution that `email` belongs to; the message to show if not.
export async function continueWithInstitution(email) {
  let response;
  try {
    response = await fetch("/sso/start", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ email }),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    return "The server could not be reached. Check your connection and try again.";
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    return `The server answered with HTTP ${response.status}. Try again in a moment.`;
  }
  if (response.ok && body?.redirect) {
    window.location.assign(body.redirect);
    return null;
  }
  return body?.error ?? `The server answered with HTTP ${response.status}. Try again in a moment.`;
}

// End the cookie session on the server (the cookie alone would still be deleted by the answer).
export async function endSession() {
  try {
    await fetch("/sso/sign-out", { method: "POST", headers: CSRF_HEADERS, credentials: "same-origin", cache: "no-store" });
  } catch {
    // Offline: the session still ends on the server at its idle timeout.
  }
}
