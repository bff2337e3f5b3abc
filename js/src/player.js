// The real clip, not only its sampled frames. Python encodes it (H.264 MP4) on request and
// sends the time of each frame; the bytes become a Blob URL kept with the item (revoked when the
// item is released). Two ways to watch it: in its card (the play key), or large (the open key)
// with a scrubber and frame stepping, where the label keys still label it.
import { formatSeconds, h, hasFocus, setText } from "./dom.js";

/**
 * The frame to step to from `now` (seconds): the next one (+1) or the previous one (-1) of
 * `times`, the frames' presentation times in order. Returns the time to seek to.
 * @param {number[]} times @param {number} now @param {number} delta
 */
export function stepTime(times, now, delta) {
  if (!times.length) return now;
  const eps = 1e-3;
  let i = times.findIndex((t) => t > now + eps) - 1; // the frame shown at `now`
  if (i === -2) i = times.length - 1; // past the last frame's start
  if (i < 0) i = 0;
  return times[Math.max(0, Math.min(times.length - 1, i + delta))];
}

/**
 * @param {{ rpc: any, cardOf: (item: any) => HTMLElement, showError: (error: unknown) => void,
 *           onClose: () => void }} deps
 */
export function createPlayer({ rpc, cardOf, showError, onClose }) {
  /** The clip's video as a Blob URL, fetched once. */
  function fetchVideo(item) {
    if (item.videoUrl) return Promise.resolve(item);
    item.videoPromise ??= rpc.request({ kind: "play", clip_id: item.clip_id }).then(({ msg, buffers }) => {
      item.frameTimes = msg.frame_times ?? [];
      if (!item.urls.length) throw new Error("the clip was released"); // dropped meanwhile
      item.videoUrl = URL.createObjectURL(new Blob([buffers[0]], { type: msg.mime }));
      return item;
    });
    return item.videoPromise.catch((error) => {
      item.videoPromise = null;
      throw error;
    });
  }

  // -- in its card ----------------------------------------------------------------------
  function startInCard(item) {
    const card = cardOf(item);
    const media = /** @type {HTMLElement} */ (card.querySelector(".va-media"));
    media.querySelector("video")?.remove();
    const video = /** @type {HTMLVideoElement} */ (
      h("video", { src: item.videoUrl, autoplay: true, muted: true, loop: true, playsinline: true, controls: true, "data-testid": "clip-video", "aria-label": `Video of clip ${item.clip_id}` })
    );
    video.muted = true;
    media.append(video);
    card.dataset.playing = "true";
    video.play?.().catch(() => {});
  }

  /** Stop the clip's video in its card, if it plays, and show its frames again. */
  function stop(item) {
    const card = item?.card;
    if (!card) return;
    const video = card.querySelector("video");
    video?.pause();
    video?.remove();
    card.dataset.playing = "false";
  }

  /** Play the clip in its card (fetching it the first time), or stop it if it plays. */
  function toggle(item) {
    if (!item) return;
    if (item.card?.dataset.playing === "true") return stop(item);
    if (item.card) item.card.dataset.playing = "loading";
    fetchVideo(item)
      .then(() => startInCard(item))
      .catch((error) => {
        if (item.card) item.card.dataset.playing = "false";
        showError(error);
      });
  }

  // -- large, with a scrubber and frame stepping -------------------------------------------
  const video = /** @type {HTMLVideoElement} */ (h("video", { class: "va-player-video", muted: true, loop: true, playsinline: true, "data-testid": "player-video" }));
  video.muted = true;
  const scrubber = /** @type {HTMLInputElement} */ (h("input", { type: "range", class: "va-player-scrub", min: 0, step: "any", value: 0, "aria-label": "Position in the clip", "data-testid": "player-scrub" }));
  const position = h("span", { class: "va-player-position", "data-testid": "player-position" });
  const title = h("span", { class: "va-player-title", "data-testid": "player-title" });
  const button = (text, label, onclick) => h("button", { type: "button", class: "va-icon", "aria-label": label, title: label, text, onclick });
  const pauseButton = button("Play / pause", "Play or pause (p)", () => togglePause());
  const el = h("div", { class: "va-player", role: "dialog", "aria-label": "Clip player", "data-testid": "player", hidden: true }, [
    h("div", { class: "va-player-head" }, [title, button("×", "Back to the grid (Esc)", () => onClose())]),
    video,
    h("div", { class: "va-player-controls" }, [button("◀ Frame", "Previous frame (, or ←)", () => step(-1)), pauseButton, button("Frame ▶", "Next frame (. or →)", () => step(+1)), scrubber, position]),
  ]);
  let shown = null; // the item in the player

  function renderPosition() {
    const times = shown?.frameTimes ?? [];
    const now = video.currentTime || 0;
    const frame = Math.max(0, times.filter((t) => t <= now + 1e-3).length - 1);
    setText(position, times.length ? `frame ${frame + 1} / ${times.length} · ${formatSeconds(now)}` : formatSeconds(now));
    el.dataset.frame = String(frame);
    if (!hasFocus(scrubber)) scrubber.value = String(now);
    el.dataset.paused = String(video.paused);
  }
  video.addEventListener("timeupdate", renderPosition);
  video.addEventListener("seeked", renderPosition);
  video.addEventListener("pause", renderPosition);
  video.addEventListener("play", renderPosition);
  video.addEventListener("loadedmetadata", () => {
    scrubber.max = String(video.duration || 0);
    renderPosition();
  });
  scrubber.addEventListener("input", () => {
    video.pause();
    video.currentTime = Number(scrubber.value);
  });

  /** Show `item` in the player (opening it), its real clip playing. */
  function show(item) {
    if (!item) return;
    shown = item;
    el.hidden = false;
    el.dataset.clipId = item.clip_id;
    el.dataset.ready = "false";
    setText(title, `${item.video} ${formatSeconds(item.start_seconds)}–${formatSeconds(item.end_seconds)}`);
    fetchVideo(item)
      .then(() => {
        if (shown !== item) return; // another clip was shown meanwhile
        video.src = item.videoUrl;
        video.play?.().catch(() => {});
        el.dataset.ready = "true";
      })
      .catch(showError);
  }

  function close() {
    video.pause();
    video.removeAttribute("src");
    video.load();
    shown = null;
    el.hidden = true;
    delete el.dataset.clipId;
  }

  /** Pause and move one frame forward (+1) or back (-1). */
  function step(delta) {
    if (!shown) return;
    video.pause();
    video.currentTime = stepTime(shown.frameTimes ?? [], video.currentTime, delta) + 1e-4;
  }

  function togglePause() {
    if (video.paused) video.play?.().catch(() => {});
    else video.pause();
  }

  return {
    toggle,
    stop,
    el,
    show,
    close,
    step,
    togglePause,
    get isOpen() {
      return !el.hidden;
    },
    get shown() {
      return shown;
    },
  };
}
