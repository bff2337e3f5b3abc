// What the view learns from the page around it: the notebook's theme, and whether the user is
// typing somewhere (then the widget must not take the keyboard).
import { deepActiveElement } from "./dom.js";

/** "dark" or "light": JupyterLab / Notebook 7, marimo, VS Code, else the system's preference. */
export function pageTheme() {
  const body = document.body;
  if (body.dataset.jpThemeLight === "true") return "light";
  if (body.dataset.jpThemeLight === "false") return "dark";
  if (body.dataset.theme === "dark" || body.dataset.theme === "light") return body.dataset.theme; // marimo
  if (body.classList.contains("vscode-dark") || body.classList.contains("vscode-high-contrast")) return "dark";
  if (body.classList.contains("vscode-light")) return "light";
  return globalThis.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

/** Call `onChange()` whenever the page's theme may have changed; returns the stop function. */
export function watchTheme(onChange) {
  const observer = new MutationObserver(() => onChange());
  observer.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-theme", "class"] });
  return () => observer.disconnect();
}

/**
 * Whether the user is typing somewhere (also inside a shadow root, as in marimo): a text field,
 * or an editor with text in it. The empty cell JupyterLab adds (in edit mode) after Shift+Enter
 * on the last cell does not count.
 */
export function typingElsewhere() {
  const active = /** @type {HTMLElement | null} */ (deepActiveElement());
  if (active instanceof HTMLInputElement || active instanceof HTMLTextAreaElement || active instanceof HTMLSelectElement) return true;
  return Boolean(active?.isContentEditable && active.textContent?.trim());
}

/**
 * Focus `el` once it is in the page (a view may be rendered before it is attached), unless
 * the user is typing elsewhere by then; gives up after `frames` animation frames.
 * @param {HTMLElement} el @param {() => void} onFocused
 */
export function focusWhenAttached(el, onFocused, frames = 60) {
  let left = frames;
  let stopped = false;
  const attempt = () => {
    if (stopped) return;
    if (el.isConnected) {
      if (!typingElsewhere()) {
        el.focus();
        onFocused();
      }
      return;
    }
    if (--left > 0) requestAnimationFrame(attempt);
  };
  attempt();
  return () => (stopped = true);
}
