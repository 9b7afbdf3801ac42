// A key's credentials on screen, once: two read-only fields with copy buttons and a warning.
// The values live only in these two inputs; wipe() empties and removes them, and nothing can
// bring them back: the server returns a secret once.

import { announce, h } from "./dom.js";

async function copy(input, label, button) {
  let copied = false;
  try {
    await navigator.clipboard.writeText(input.value);
    copied = true;
  } catch {
    // No clipboard API (plain http on another host, or permission refused): copy the selection.
    input.focus();
    input.select();
    copied = document.execCommand("copy");
  }
  if (copied) {
    button.textContent = "Copied";
    announce(`${label} copied to the clipboard.`);
    window.setTimeout(() => {
      button.textContent = "Copy";
    }, 2000);
  } else {
    input.focus();
    input.select();
    announce(`Could not copy. The ${label.toLowerCase()} is selected: copy it with your keyboard.`);
  }
}

function field(id, label, value) {
  const input = h("input", {
    id,
    type: "text",
    readonly: true,
    spellcheck: "false",
    autocomplete: "off",
    class: "secret-value",
  });
  input.value = value;
  const button = h("button", { type: "button", class: "secondary copy", "aria-label": `Copy ${label.toLowerCase()}` }, "Copy");
  button.addEventListener("click", () => copy(input, label, button));
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h("div", { class: "copy-row" }, input, button),
  );
}

// Render { clientId, clientSecret } into `container`, and move focus to them unless told not
// to (when a whole new screen shows them, its heading takes focus). Returns a function that
// wipes them.
export function showCredentials(container, { clientId, clientSecret }, { focus = true } = {}) {
  const heading = h("h2", { id: "credentials-heading", tabindex: "-1" }, "Credentials");
  const block = h(
    "div",
    { class: "credentials", role: "group", "aria-labelledby": "credentials-heading" },
    heading,
    h(
      "p",
      { class: "notice warning", id: "credentials-warning" },
      h("strong", {}, "Store the client secret now. "),
      "It will not be shown again: once you leave this page it is gone, and nobody can show it to you.",
    ),
    field("client-id", "Client ID", clientId),
    field("client-secret", "Client secret", clientSecret),
  );
  container.replaceChildren(block);
  if (focus) heading.focus();
  return function wipe() {
    for (const input of block.querySelectorAll("input")) input.value = "";
    container.replaceChildren();
  };
}
export { field as secretField };
