// Keys, and the buttons and help that name them. Keys are KeyboardEvent.key values, set from
// Python (the `shortcuts` trait: action -> keys); every button runs the same action as its key.
import { attr, h } from "./dom.js";

/** @typedef {Record<string, string[]>} Shortcuts action -> keys */

export const ACTIONS = {
  positive: "Positive: the clip (or every selected clip) shows the concept",
  negative: "Negative: the clip (or every selected clip) does not show it",
  positive_page: "Positive: every undecided clip on this page",
  negative_page: "Negative: every undecided clip on this page",
  skip: "Skip: not sure, do not ask again",
  undo: "Undo the last action (a label, a skip or a whole page)",
  prev: "Previous clip (with Shift: select from here)",
  next: "Next clip (with Shift: select from here)",
  play: "Play the real clip in its card (again: back to the preview); in the player: play or pause",
  open: "Open the clip large: the real clip, with a scrubber and frame stepping (Esc: back)",
  similar: "More clips like this one (similar feed)",
  help: "Show or hide this help",
};
const BUTTON_TEXT = { positive_page: "Page positive", negative_page: "Page negative" };
/** The text of an action's button: "Positive", "Page positive", "Undo"... @param {string} action */
export const buttonText = (action) => BUTTON_TEXT[action] ?? action[0].toUpperCase() + action.slice(1);
/** Actions a held key repeats (the others act once per press). */
const REPEATING = new Set(["next", "prev"]);
const KEY_NAMES = { " ": "Space", ArrowLeft: "←", ArrowRight: "→", ArrowUp: "↑", ArrowDown: "↓" };

/** @param {string} key */
export const keyName = (key) => KEY_NAMES[key] ?? key;

/**
 * The action a key press means, or null. An exact match wins; a letter also matches its lower
 * case. Caps Lock types "A" without Shift: that is "a", never Shift+A (a whole page).
 * @param {KeyboardEvent} event
 * @param {Shortcuts} shortcuts
 * @returns {string | null}
 */
export function actionFor(event, shortcuts) {
  const key = event.key.length === 1 && !event.shiftKey ? event.key.toLowerCase() : event.key;
  for (const [action, list] of Object.entries(shortcuts)) if (list.includes(key)) return action;
  const lower = key.length === 1 ? key.toLowerCase() : null;
  for (const [action, list] of Object.entries(shortcuts)) if (lower && list.includes(lower)) return action;
  return null;
}

/** @param {KeyboardEvent} event @param {string} action */
export const acts = (event, action) => !event.repeat || REPEATING.has(action);

/** @param {EventTarget | null} target whether keys typed there are text, not actions */
export function isTextField(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement;
}

/**
 * The toolbar (one button per action) and the help dialog listing every key.
 * @param {{ onAction: (action: string) => void, onClose: () => void }} handlers
 */
export function createKeyViews({ onAction, onClose }) {
  /** @type {Record<string, HTMLButtonElement>} */
  const buttons = {};
  const actionBar = h("div", { class: "va-actions", role: "toolbar", "aria-label": "Label actions" });
  const helpList = h("tbody");
  const feedList = h("tbody");
  const helpClose = h("button", { type: "button", class: "va-icon", "aria-label": "Close help", text: "×", onclick: onClose });
  const help = h("div", { class: "va-help", role: "dialog", "aria-label": "Keyboard shortcuts", "data-testid": "help", hidden: true }, [
    h("div", { class: "va-help-head" }, [h("strong", { text: "Keyboard shortcuts" }), helpClose]),
    h("table", { class: "va-help-list" }, [helpList]),
    h("strong", { text: "Feeds: where the next clips come from" }),
    h("table", { class: "va-help-list", "data-testid": "help-feeds" }, [feedList]),
    h("p", {
      text:
        "Keys work while the annotator has focus (click it or Tab to it). Click a card to make it current; " +
        "Shift+click or Shift+arrow selects a range, Ctrl+click adds or removes a card; the label keys then " +
        "label the selection. In the large player, , and . (or ← and →) step one frame back or on, " +
        "the label keys label the clip shown and show the next one, Esc returns to the grid. " +
        "With several concepts, 1 to 9 (or the tabs) show another one on the same page. " +
        "Esc also closes this help, clears the selection or stops a video.",
    }),
  ]);

  /** @param {Shortcuts} shortcuts */
  function render(shortcuts) {
    actionBar.replaceChildren();
    helpList.replaceChildren();
    for (const [action, description] of Object.entries(ACTIONS)) {
      const list = shortcuts[action] ?? [];
      const hint = list.map(keyName).join(" / ");
      if (action !== "help") {
        buttons[action] ??= /** @type {HTMLButtonElement} */ (
          h("button", { type: "button", class: `va-btn va-btn-${action}`, "data-testid": `action-${action}`, onclick: () => onAction(action) })
        );
        const b = buttons[action];
        b.textContent = "";
        b.append(buttonText(action), h("kbd", { text: hint }));
        attr(b, "aria-label", `${description} (${hint})`);
        attr(b, "aria-keyshortcuts", list.join(" ") || null);
        actionBar.append(b);
      }
      const keysCell = h("td", {}, list.map((k) => h("kbd", { text: keyName(k) })));
      helpList.append(h("tr", { "data-action": action }, [keysCell, h("td", { text: description })]));
    }
  }

  /** The feeds and what each shows. @param {string[]} feeds @param {Record<string, string>} words */
  function renderFeeds(feeds, words) {
    feedList.replaceChildren(...feeds.map((f) => h("tr", { "data-feed": f }, [h("td", {}, [h("b", { text: f })]), h("td", { text: words[f] ?? "" })])));
  }

  return { actionBar, help, buttons, render, renderFeeds };
}
