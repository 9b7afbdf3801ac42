// Small DOM helpers shared by the console and the partner page. Text goes in through
// textContent only: nothing from the server is ever parsed as HTML.

export function $(selector) {
  const found = document.querySelector(selector);
  if (!found) throw new Error(`missing element ${selector}`);
  return found;
}

// h("a", {href: "#/keys", class: "button"}, "Keys")
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

// Show one screen (a <section data-screen>), hide the others, and move focus to its heading
// so keyboard and screen-reader users land where the new content starts.
export function showScreen(name) {
  let shown = null;
  for (const section of document.querySelectorAll("section[data-screen]")) {
    const match = section.dataset.screen === name;
    section.hidden = !match;
    if (match) shown = section;
  }
  const heading = shown?.querySelector("h1");
  if (heading) heading.focus();
  return shown;
}

// Say something to screen-reader users through the page's polite live region. Clearing first
// makes the same sentence twice in a row be read twice.
export function announce(text) {
  const region = $("#announcer");
  region.textContent = "";
  window.setTimeout(() => {
    region.textContent = text;
  }, 50);
}

// An error next to its input: the message in the input's error element (a role=alert region
// already in the page), and the input marked invalid.
export function setFieldError(input, message) {
  const error = document.getElementById(`${input.id}-error`);
  if (error) error.textContent = message ?? "";
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

export function clearErrors(form) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const error of form.querySelectorAll(".field-error, .form-error")) error.textContent = "";
}

export function setBusy(button, busy) {
  button.disabled = busy;
  if (busy) button.setAttribute("aria-busy", "true");
  else button.removeAttribute("aria-busy");
}
