// Is the kernel answering? Unanswered events, stalls, a kernel gone for good (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Link, STALL_MS } from "../src/link.js";

function clocked() {
  let t = 0;
  const link = new Link({ now: () => t });
  return { link, advance: (ms) => (t += ms) };
}

test("events answered in time: saving, then saved", () => {
  const { link, advance } = clocked();
  assert.equal(link.describe(), "all labels saved ✓");
  link.sent(1, "label", "positive: a.mp4 0.0 s");
  link.sent(2, "label");
  assert.equal(link.state, "ok");
  assert.equal(link.describe(), "saving 2…");
  advance(STALL_MS - 1);
  assert.equal(link.paused, false);
  link.answered(1);
  link.answered(2);
  advance(10 * STALL_MS); // nothing in flight: never stalled
  assert.equal(link.state, "ok");
  assert.equal(link.describe({ failed: true }), "last label NOT saved");
});

test("no reply for STALL_MS: keys paused, the cause as far as known; replies recover it", () => {
  const { link, advance } = clocked();
  link.sent(1, "label");
  advance(1000);
  link.sent(2, "label");
  link.sent(3, "undo");
  advance(STALL_MS - 1000);
  assert.equal(link.state, "stalled");
  assert.equal(link.paused, true);
  assert.equal(
    link.describe(),
    "no reply from the kernel for 5 s: 2 labels and 1 undo not confirmed saved — " +
      "the kernel is busy, restarted or gone; keys paused",
  );
  link.kernelStatus("busy");
  assert.match(link.describe(), /the kernel is busy \(running a cell\?\); keys paused$/);
  link.connectionStatus("disconnected");
  assert.match(link.describe(), /the connection to the Jupyter server is down/);
  link.connectionStatus("connected");
  link.answered(1); // the oldest answered: the next one has waited 1 s less
  advance(1500);
  assert.match(link.describe(), /for 5 s: 1 label and 1 undo/);
  link.answered(2);
  link.answered(3);
  assert.equal(link.state, "ok");
  assert.equal(link.describe(), "all labels saved ✓");
});

test("a restarted or dead kernel loses the view for good, naming what is not confirmed", () => {
  const { link } = clocked();
  link.sent(1, "label", "positive: a.mp4 2.0 s");
  link.kernelStatus("idle");
  assert.equal(link.state, "ok");
  link.kernelStatus("restarting");
  assert.equal(link.state, "lost");
  assert.equal(link.paused, true);
  assert.equal(
    link.describe(),
    "the kernel was restarted: this view is disconnected and takes no keys; 1 label not " +
      "confirmed saved (positive: a.mp4 2.0 s). Run the cell again to continue.",
  );
  link.kernelStatus("idle"); // the new kernel knows nothing of this view
  link.gone("something else"); // the first reason stays
  link.answered(1);
  assert.equal(link.state, "lost");
  assert.equal(
    link.describe(),
    "the kernel was restarted: this view is disconnected and takes no keys. Run the cell again to continue.",
  );
  for (const status of ["dead", "autorestarting", "terminating"]) {
    const other = new Link();
    other.kernelStatus(status);
    assert.equal(other.state, "lost", status);
  }
});

test("a page labelled with one key counts every clip it labels", () => {
  const { link, advance } = clocked();
  link.sent(1, "label", "positive: 8 clips", 8);
  link.sent(2, "undo");
  assert.equal(link.pending, 2);
  assert.equal(link.describe(), "saving 9…");
  advance(STALL_MS);
  assert.match(link.describe(), /: 8 labels and 1 undo not confirmed saved/);
});
