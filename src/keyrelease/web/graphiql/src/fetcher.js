// GraphiQL's fetcher: one POST to the page's own address. No websocket, no multipart, no
// cookie: every request carries only the headers the user typed.

export function createFetcher(url) {
  return async function fetcher(params, options = {}) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "omit",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...(options.headers ?? {}) },
      body: JSON.stringify(params),
    });
    const type = response.headers.get("content-type") ?? "";
    if (type.includes("json")) {
      return response.json();
    }
    // A refusal before GraphQL runs (400, 413, 429, 503): show it as an error, not a crash.
    const text = (await response.text()).trim();
    return { errors: [{ message: `HTTP ${response.status}${text ? `: ${text}` : ""}` }] };
  };
}
