// bleepline review: the call page's player, transcript and timeline, kept in step. No framework, no
// build step; loaded with `defer`, so the page is parsed when this runs. The Content-Security-Policy
// allows no inline script, so every handler is attached here.
"use strict";

(function () {
  // Forms that ask first (removing a user): the question is in data-confirm.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }

  const audio = document.getElementById("audio");
  if (!audio) {
    return;
  }
  const playButton = document.getElementById("play");
  const timeline = document.getElementById("timeline");
  const playhead = document.getElementById("playhead");
  const clockText = document.getElementById("clock");
  const lines = Array.from(document.querySelectorAll("#transcript .line"));
  const starts = lines.map((line) => parseFloat(line.dataset.start));
  const duration = parseFloat(timeline ? timeline.dataset.duration : "0") || 0;
  const viewWidth = 1000; // the timeline's viewBox width
  let current = -1;

  function clock(seconds) {
    const whole = Math.max(0, Math.floor(seconds));
    const h = Math.floor(whole / 3600);
    const m = Math.floor((whole % 3600) / 60);
    const s = String(whole % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  // The line being spoken: the last one that starts at or before the playback position.
  function lineAt(t) {
    let found = -1;
    for (let i = 0; i < starts.length && starts[i] <= t + 0.05; i++) {
      found = i;
    }
    return found;
  }

  function update() {
    const t = audio.currentTime || 0;
    if (playhead && duration > 0) {
      const x = (Math.min(t, duration) / duration) * viewWidth;
      playhead.setAttribute("x1", x.toFixed(2));
      playhead.setAttribute("x2", x.toFixed(2));
      timeline.setAttribute("aria-valuenow", t.toFixed(0));
    }
    if (clockText) {
      clockText.textContent = `${clock(t)} / ${clock(duration)}`;
    }
    const index = lineAt(t);
    if (index !== current) {
      if (current >= 0) {
        lines[current].classList.remove("current");
        lines[current].removeAttribute("aria-current");
      }
      current = index;
      if (current >= 0) {
        lines[current].classList.add("current");
        lines[current].setAttribute("aria-current", "true");
        lines[current].scrollIntoView({ block: "nearest" });
      }
    }
  }

  function seek(seconds) {
    const limit = duration > 0 ? duration : seconds;
    audio.currentTime = Math.max(0, Math.min(seconds, limit));
    update();
  }

  function showProblem() {
    if (playButton) {
      playButton.textContent = "Cannot play";
    }
  }

  if (playButton) {
    playButton.addEventListener("click", () => {
      if (audio.paused) {
        audio.play().catch(showProblem);
      } else {
        audio.pause();
      }
    });
    audio.addEventListener("play", () => { playButton.textContent = "Pause"; });
    audio.addEventListener("pause", () => { playButton.textContent = "Play"; });
    audio.addEventListener("ended", () => { playButton.textContent = "Play"; });
  }
  audio.addEventListener("error", showProblem);

  for (const line of lines) {
    line.addEventListener("click", () => seek(parseFloat(line.dataset.start)));
  }

  if (timeline && duration > 0) {
    timeline.addEventListener("click", (event) => {
      const box = timeline.getBoundingClientRect();
      if (box.width > 0) {
        seek(((event.clientX - box.left) / box.width) * duration);
      }
    });
    timeline.addEventListener("keydown", (event) => {
      const steps = { ArrowLeft: -5, ArrowRight: 5, Home: -Infinity, End: Infinity };
      if (event.key in steps) {
        event.preventDefault();
        const step = steps[event.key];
        seek(Number.isFinite(step) ? (audio.currentTime || 0) + step : step < 0 ? 0 : duration);
      }
    });
  }

  audio.addEventListener("timeupdate", update);
  audio.addEventListener("seeked", update);
  update();
})();
