// The one way these pages talk to the server: POST /graphql, JSON in and out.
//
// Expected failures (a wrong code, a bad field) come back as data, in the result unions; the
// caller reads `__typename`. Only a request that failed as a whole throws an ApiError: a
// missing or wrong admin token (code "UNAUTHENTICATED"), a refused document, the server
// unreachable ("NETWORK").

export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.name = "ApiError";
    this.code = code;
  }
}

// The server's clock, not the browser's, decides when a code expires and when a key locks.
// Its `Date` response header tells us how far apart the two are, so countdowns stay right on
// a machine whose clock is off. The header has whole seconds: differences under two seconds
// are noise and ignored.
let serverOffsetMs = 0;

export function serverNow() {
  return Date.now() + serverOffsetMs;
}

function noteServerTime(dateHeader, sentAt, receivedAt) {
  const serverTime = Date.parse(dateHeader ?? "");
  if (Number.isNaN(serverTime)) return;
  const offset = serverTime + 500 - (sentAt + receivedAt) / 2;
  serverOffsetMs = Math.abs(offset) < 2000 ? 0 : offset;
}

export async function graphql(query, variables = {}, { token } = {}) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  // With a token, the token alone; without, the session cookie of a sign-in with the
  // institution's identity provider, if there is one, with the header its CSRF check wants.
  if (token) headers.Authorization = `Bearer ${token}`;
  else headers["X-Keyrelease-CSRF"] = "1";
  const sentAt = Date.now();
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables }),
      credentials: token ? "omit" : "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError("The server could not be reached. Check your connection and try again.", "NETWORK");
  }
  noteServerTime(response.headers.get("Date"), sentAt, Date.now());
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`The server answered with HTTP ${response.status}. Try again in a moment.`, "HTTP");
  }
  if (body.errors?.length) {
    const [first] = body.errors;
    throw new ApiError(first.message, first.extensions?.code ?? "ERROR");
  }
  if (!response.ok || !body.data) {
    throw new ApiError(`The server answered with HTTP ${response.status}. Try again in a moment.`, "HTTP");
  }
  return body.data;
}
