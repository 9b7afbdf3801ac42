// Where GraphiQL keeps its tabs, history and settings: this browser's localStorage, but never a
// request header. GraphiQL's own shouldPersistHeaders={false} keeps headers out of the saved
// tabs, yet its history plugin saves the headers of every query it runs; this adapter drops
// every "headers" member of what GraphiQL writes, and the "headers" item itself, so the
// admin token typed into the headers editor lives in this page only (as the console keeps
// its token in sessionStorage only).

const NAMESPACE = "graphiql:";

/** ``value`` with every member named "headers" removed, when it is JSON; else as it is. */
export function withoutHeaders(value) {
  let parsed;
  try {
    parsed = JSON.parse(value);
  } catch {
    return value;
  }
  return JSON.stringify(parsed, (key, member) => (key === "headers" ? undefined : member));
}

/** A Storage (the interface GraphiQL's `storage` prop takes) that never stores headers. */
export function headerFreeStorage(backing = window.localStorage) {
  const ours = () => {
    const keys = [];
    for (let i = 0; i < backing.length; i += 1) {
      const key = backing.key(i);
      if (key && key.startsWith(NAMESPACE)) keys.push(key);
    }
    return keys;
  };
  // Anything an earlier GraphiQL (or another setting) left behind is cleaned on load.
  backing.removeItem(`${NAMESPACE}headers`);
  for (const key of ours()) {
    const value = backing.getItem(key);
    const clean = value === null ? null : withoutHeaders(value);
    if (clean !== value) backing.setItem(key, clean);
  }
  return {
    getItem: (key) => backing.getItem(key),
    setItem(key, value) {
      if (key === `${NAMESPACE}headers`) {
        backing.removeItem(key);
        return;
      }
      backing.setItem(key, withoutHeaders(String(value)));
    },
    removeItem: (key) => backing.removeItem(key),
    clear() {
      for (const key of ours()) backing.removeItem(key);
    },
    key: (index) => ours()[index] ?? null,
    get length() {
      return ours().length;
    },
  };
}
