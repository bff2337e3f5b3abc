// Tiny DOM helpers. Text always goes in as text nodes (textContent): never innerHTML.

/**
 * Create an element. attrs: "text" sets textContent, "class" the class name, "on<event>" adds
 * a listener, booleans add/omit the attribute, anything else is set with setAttribute.
 * Children may be elements or strings (appended as text nodes).
 */
export function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of /** @type {any[]} */ ([]).concat(children)) if (child != null) el.append(child);
  return el;
}

/** Set or remove an attribute (null/undefined/false removes it). */
export function attr(el, name, value) {
  if (value == null || value === false) el.removeAttribute(name);
  else el.setAttribute(name, value === true ? "" : String(value));
}

/** Set the text of el only when it changes: rewriting equal text still invalidates layout. */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

export function formatScore(score) {
  return typeof score === "number" ? score.toFixed(2) : "–";
}

export function formatSeconds(s) {
  return `${Number(s).toFixed(1)} s`;
}

/**
 * The focused element, looking inside open shadow roots: in a host that renders widgets in a
 * shadow root (marimo), `document.activeElement` is only the shadow host.
 * @param {{ activeElement: Element | null }} [doc]
 * @returns {Element | null}
 */
export function deepActiveElement(doc = document) {
  let active = doc.activeElement;
  while (active?.shadowRoot?.activeElement) active = active.shadowRoot.activeElement;
  return active;
}

/** Whether `el` has focus, also inside a shadow root. @param {Element} el */
export const hasFocus = (el) => /** @type {Document | ShadowRoot} */ (el.getRootNode()).activeElement === el;
