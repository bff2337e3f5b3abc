// What the head and status line say, in plain words (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";
import { orderText, rankedBy, scoreTitle } from "../src/head.js";
import { qualityText } from "../src/status.js";
import { ACTIONS, buttonText } from "../src/keys.js";
import { decisionText } from "../src/cards.js";

test("the order of the cards is explained for every source a feed reports", () => {
  assert.equal(orderText("top", "model v3", 3), "ranked by model v3, highest score first");
  assert.equal(orderText("bottom", "model v3", 5), "ranked by model v3 (model now v5), lowest score first");
  assert.match(orderText("borderline", "model v2", 2), /nearest 0\.5 first: the model is least sure/);
  assert.equal(orderText("auto", "bandit: borderline x5, random x3", 4), "chosen by the auto feed from borderline (5), random (3)");
  assert.equal(orderText("random", "uniform random", 1), "in random order");
  assert.equal(orderText("review", "labelled rows by disagreement", 1), "labels the model disputes most first");
  assert.equal(orderText("search", "zero-shot prior", 0), "closest to the text query first");
  assert.equal(orderText("similar", "cosine similarity to clip ab-00003", 0), "most like clip ab-00003 first");
  assert.equal(orderText("search", "no model yet; zero-shot prior", 0), "before the first model, closest to the text query first");
  assert.equal(orderText("auto", "random (no model, no prior, no positive yet)", 0), "in random order: no model, text query or positive yet");
  assert.equal(orderText("top", "no model yet; similarity to 2 labelled positive(s)", 0), "before the first model, most like your positive labels first");
  assert.equal(orderText("top", "something new", 0), "ordered by something new");
  assert.equal(orderText("top", "", 3), "");
  assert.equal(orderText("top", "model v3, sampled", 3), "ranked by model v3, sampled: drawn at random, favouring the highest scores");
  assert.match(orderText("borderline", "model v3, sampled", 4), /^ranked by model v3, sampled \(model now v4\): drawn at random, favouring scores near 0\.5/);
  assert.equal(rankedBy("model v1", 1), "ranked by model v1");
});

test("the quality in words: the task's summary first, else the figures, else why not", () => {
  assert.equal(qualityText({ summary: "estimated AP 0.87 (0.80–0.93), from 14 random checks", ap: 0.5 }), "estimated AP 0.87 (0.80–0.93), from 14 random checks");
  assert.equal(qualityText({ ap: 0.8712, ci_low: 0.8, ci_high: 0.93 }), "estimated AP 0.87 (0.80–0.93), cross-validated on your labels");
  assert.match(qualityText({ ap: null, reason: "need 2" }), /not enough labels yet/);
});

test("the score on a card says what it is", () => {
  assert.equal(scoreTitle("car-chase", 4), "Score: the model's probability (model v4) that this clip shows car-chase");
  assert.match(scoreTitle("car-chase", 0), /none yet/);
});

test("one vocabulary for a label: positive and negative in actions, buttons, help and cards", () => {
  const labelling = ["positive", "negative", "positive_page", "negative_page"];
  for (const action of labelling) assert.ok(action in ACTIONS, action);
  assert.deepEqual(labelling.map(buttonText), ["Positive", "Negative", "Page positive", "Page negative"]);
  assert.match(ACTIONS.positive, /^Positive: /);
  assert.match(ACTIONS.negative, /^Negative: /);
  assert.match(ACTIONS.positive_page, /^Positive: every undecided clip/);
  assert.match(ACTIONS.negative_page, /^Negative: every undecided clip/);
  const words = [...Object.keys(ACTIONS), ...Object.values(ACTIONS), ...Object.keys(ACTIONS).map(buttonText)].join(" ");
  assert.doesNotMatch(words, /\b(accept|reject|yes|no)\b/i);
  assert.equal(decisionText({ decision: "positive" }, "saved"), "positive");
  assert.match(decisionText({ decision: "negative" }, "pending"), /^negative/);
  assert.equal(decisionText({ decision: null, previous: "positive", undone: false }, "new"), "was positive");
  assert.equal(decisionText({ decision: null, previous: "negative", undone: true }, "new"), "undone: negative");
  assert.equal(qualityText({ ap: null, reason: "need 2" }), "quality: not enough labels yet (needs 2 positive and 2 negative)");
  assert.match(scoreTitle("car-chase", 0), /a positive and a negative label/);
});

test("a quality estimate of an older model says so until it is refreshed", () => {
  const q = { summary: "needs 2 positives and 2 negatives (have 0 and 0)", model_version: 0 };
  assert.equal(qualityText(q, 0), q.summary);
  assert.equal(qualityText(q, 4), `${q.summary} [as of model v0; updating when you pause]`);
  assert.equal(qualityText({ ap: 0.5, ci_low: 0.4, ci_high: 0.6, model_version: 3 }, 3), "estimated AP 0.50 (0.40–0.60), cross-validated on your labels");
});
