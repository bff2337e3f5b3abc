// The flipbook: the current and the hovered clip play their sampled frames in turn. A clip that
// starts playing shows its current frame for a whole frame time first (every flip is a frame
// the browser must render, and a key pressed just after one waits a frame).

const TICK_MS = 60;
const reducedMotion = () => globalThis.matchMedia?.("(prefers-reduced-motion: reduce)").matches;

/** How long each frame of `item` shows: its duration spread over its frames, within bounds. */
export function frameMs(item) {
  return Math.min(500, Math.max(120, ((item.end_seconds - item.start_seconds) * 1000) / item.frames.length));
}

/** Show frame `item.frame` of the clip (only that image has a box). */
export function showFrame(item) {
  item.frames.forEach((img, i) => img.classList.toggle("va-on", i === item.frame));
}

/**
 * Start flipping; returns the function that stops it.
 * @param {{ current: () => any, hovered: () => any }} clips the items to animate now
 */
export function startFlipbook({ current, hovered }) {
  let playing = new Set();
  const timer = setInterval(() => {
    const now = performance.now();
    const animated = new Set([hovered(), reducedMotion() ? null : current()].filter(Boolean));
    for (const item of animated) {
      if (item.frames.length < 2 || !item.card?.isConnected) {
        animated.delete(item); // not playing yet: its first frame time starts when it does
        continue;
      }
      if (!playing.has(item)) item.lastFlip = now;
      if (now - item.lastFlip < frameMs(item)) continue;
      item.lastFlip = now;
      item.frame = (item.frame + 1) % item.frames.length;
      showFrame(item);
    }
    playing = animated;
  }, TICK_MS);
  return () => clearInterval(timer);
}
