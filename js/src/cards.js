// One card per clip: its frames, score, feed and decision, whether it is the current clip and
// whether it is selected. A card is built once, when its clip arrives, so that showing a page
// only inserts cards.
import { showFrame } from "./flipbook.js";
import { attr, formatScore, formatSeconds, h, setText } from "./dom.js";

export const DECISION_TEXT = { positive: "positive", negative: "negative", skip: "skipped" };
const STATE_SUFFIX = { pending: " …", unconfirmed: " (not confirmed yet)", unsaved: " (not confirmed saved)", error: " (not saved)" };

/**
 * What a card says about its clip's decision: the decision and whether it is saved, or, for an
 * undecided clip shown again, the decision it had ("was positive", "undone: negative").
 * @param {any} item
 * @param {string} state the shown state: new, pending, unconfirmed, unsaved, saved or error
 */
export function decisionText(item, state) {
  if (item.decision) return DECISION_TEXT[item.decision] + (STATE_SUFFIX[state] ?? "");
  if (!item.previous) return "";
  return item.undone ? `undone: ${DECISION_TEXT[item.previous]}` : `was ${DECISION_TEXT[item.previous]}`;
}

/**
 * @param {{ stateOf: (item: any) => string, scoreTitle: () => string,
 *           onClick: (item: any, event: MouseEvent) => void,
 *           onHover: (item: any, inside: boolean) => void }} handlers
 */
export function createCards({ stateOf, scoreTitle, onClick, onHover }) {
  /** The card of `item`, built on first use. */
  function cardOf(item) {
    if (item.card) return item.card;
    const media = h("div", { class: "va-media" }, item.frames);
    const caption = h("div", { class: "va-caption" }, [
      h("span", { class: "va-score", "data-testid": "clip-score" }),
      h("span", { class: "va-clip-feed", "data-testid": "clip-feed" }),
      h("span", { class: "va-decision", "data-testid": "clip-decision" }),
      h("span", { class: "va-where", text: `${item.video} ${formatSeconds(item.start_seconds)}–${formatSeconds(item.end_seconds)}` }),
    ]);
    item.card = h(
      "div",
      {
        class: "va-card",
        role: "option",
        "data-testid": "clip",
        "data-clip-id": item.clip_id,
        "aria-label": `Clip ${item.clip_id} of ${item.video}`,
        onclick: (/** @type {MouseEvent} */ event) => onClick(item, event),
        onmouseenter: () => onHover(item, true),
        onmouseleave: () => onHover(item, false),
      },
      [media, caption],
    );
    return item.card;
  }

  /** Write the item's state into its card (text only where it changed). */
  function render(item, isCurrent, isSelected = false) {
    const card = cardOf(item);
    const state = stateOf(item);
    attr(card, "aria-current", isCurrent ? "true" : null);
    attr(card, "aria-selected", isSelected ? "true" : "false");
    card.dataset.decision = item.decision ?? "";
    card.dataset.previous = item.previous ?? "";
    card.dataset.state = state;
    const score = /** @type {HTMLElement} */ (card.querySelector(".va-score"));
    setText(score, `score ${formatScore(item.score)}`);
    if (isCurrent) attr(score, "title", scoreTitle()); // the current card's is the one read
    setText(card.querySelector(".va-clip-feed"), item.feed);
    setText(card.querySelector(".va-decision"), decisionText(item, state));
    showFrame(item);
  }

  return { cardOf, render };
}
