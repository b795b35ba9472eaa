// The live page: camera frames (JPEG) go over the WebSocket /stream; each answer is drawn as boxes with
// track ids over the video and as smoothed probability bars per track. One frame is in flight at a
// time: the next is sent when the previous one is answered (the service would drop older frames anyway).
// Optionally an expression challenge (POST /challenges, then /stream?challenge=ID).
"use strict";

(() => {
  const PALETTE = ["#00c853", "#ffb300", "#2979ff", "#d500f9", "#ff3d00", "#00e5ff"];
  const MAX_SIDE = 640; // frames are scaled down to this longest side before they are sent
  const $ = (id) => document.getElementById(id);
  const ui = {
    apiKey: $("api-key"),
    halfLife: $("half-life"),
    start: $("live-start"),
    challengeStart: $("challenge-start"),
    stop: $("live-stop"),
    status: $("status"),
    video: $("live-video"),
    overlay: $("live-overlay"),
    faces: $("faces"),
    counters: $("counters"),
    challenge: $("challenge"),
    steps: $("steps"),
    challengeStatus: $("challenge-status"),
    token: $("token"),
  };
  const grab = document.createElement("canvas");
  let camera = null;
  let socket = null;
  let processed = 0;
  let sentSize = { width: 1, height: 1 };
  const cards = new Map(); // track id -> its card

  function setStatus(text, state) {
    ui.status.textContent = text;
    if (state) document.body.dataset.state = state;
  }

  function colour(trackId) {
    return PALETTE[(Math.max(trackId, 1) - 1) % PALETTE.length];
  }

  function apiKey() {
    return ui.apiKey.value.trim();
  }

  // --- camera and socket ----------------------------------------------------------------------------

  async function openCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("No camera: this browser allows cameras on https:// and localhost only");
    }
    try {
      camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    } catch (error) {
      throw new Error(`No camera: ${error.message}`);
    }
    ui.video.srcObject = camera;
    await ui.video.play().catch(() => {});
    while (!ui.video.videoWidth) await new Promise((resolve) => setTimeout(resolve, 50));
  }

  function streamUrl(challengeId) {
    const url = new URL("/stream", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (apiKey()) url.searchParams.set("api_key", apiKey()); // a WebSocket cannot carry headers
    if (challengeId) url.searchParams.set("challenge", challengeId);
    return url.toString();
  }

  function sendFrame() {
    if (!socket || socket.readyState !== WebSocket.OPEN || !ui.video.videoWidth) return;
    const scale = Math.min(1, MAX_SIDE / Math.max(ui.video.videoWidth, ui.video.videoHeight));
    grab.width = Math.round(ui.video.videoWidth * scale);
    grab.height = Math.round(ui.video.videoHeight * scale);
    grab.getContext("2d").drawImage(ui.video, 0, 0, grab.width, grab.height);
    sentSize = { width: grab.width, height: grab.height };
    grab.toBlob((blob) => {
      if (blob && socket && socket.readyState === WebSocket.OPEN) socket.send(blob);
    }, "image/jpeg", 0.8);
  }

  async function start(challengeId = null) {
    stop();
    setStatus("Starting the camera…", "busy");
    try {
      await openCamera();
    } catch (error) {
      setStatus(error.message, "error");
      return;
    }
    processed = 0;
    document.body.dataset.frames = "0";
    socket = new WebSocket(streamUrl(challengeId));
    socket.onopen = () => {
      const halfLife = Number(ui.halfLife.value) || 0;
      socket.send(JSON.stringify({ faces: "all", half_life: halfLife }));
    };
    socket.onmessage = (event) => onMessage(JSON.parse(event.data));
    socket.onclose = (event) => {
      if (document.body.dataset.state !== "error") {
        setStatus(event.code === 1000 || event.code === 1005 ? "Stopped." : `Closed (${event.code}).`, "idle");
      }
      socket = null;
    };
    ui.start.hidden = ui.challengeStart.hidden = true;
    ui.stop.hidden = false;
  }

  function stop() {
    if (socket) socket.close(1000);
    socket = null;
    if (camera) camera.getTracks().forEach((track) => track.stop());
    camera = null;
    ui.start.hidden = ui.challengeStart.hidden = false;
    ui.stop.hidden = true;
  }

  // --- answers --------------------------------------------------------------------------------------

  function onMessage(message) {
    if (message.type === "ready") {
      setStatus(`Live: ${message.model_id}`, "live");
      sendFrame();
    } else if (message.type === "frame") {
      processed += 1;
      document.body.dataset.frames = String(processed);
      draw(message);
      if (message.challenge) showChallenge(message.challenge);
      ui.counters.textContent = `frame ${message.frame} · ${processed} processed · ${message.dropped} dropped · ${message.processing_ms.toFixed(0)} ms`;
      sendFrame();
    } else if (message.type === "error") {
      if (message.frame === null) {
        setStatus(`${message.error.code}: ${message.error.message}`, "error");
      } else {
        ui.counters.textContent = `frame ${message.frame}: ${message.error.code}`;
        sendFrame();
      }
    }
  }

  function draw(message) {
    const canvas = ui.overlay;
    canvas.width = ui.video.clientWidth;
    canvas.height = ui.video.clientHeight;
    const context = canvas.getContext("2d");
    context.clearRect(0, 0, canvas.width, canvas.height);
    const sx = canvas.width / sentSize.width;
    const sy = canvas.height / sentSize.height;
    const seen = new Set();
    for (const face of message.faces) {
      seen.add(face.track_id);
      updateCard(face);
      if (!face.box) continue;
      const { x, y, width, height } = face.box;
      context.strokeStyle = colour(face.track_id);
      context.lineWidth = 3;
      context.strokeRect(x * sx, y * sy, width * sx, height * sy);
      const label = `#${face.track_id} ${face.emotion} ${(face.smoothed[face.emotion] * 100).toFixed(0)}%`;
      context.font = "bold 15px system-ui, sans-serif";
      context.lineWidth = 4;
      context.strokeStyle = "rgba(0,0,0,0.75)";
      context.fillStyle = "#fff";
      context.strokeText(label, x * sx + 2, Math.max(15, y * sy - 5));
      context.fillText(label, x * sx + 2, Math.max(15, y * sy - 5));
    }
    for (const [trackId, card] of cards) {
      if (!seen.has(trackId)) {
        card.remove();
        cards.delete(trackId);
      }
    }
  }

  function updateCard(face) {
    let card = cards.get(face.track_id);
    if (!card) {
      card = $("face-card").content.firstElementChild.cloneNode(true);
      card.dataset.track = String(face.track_id);
      card.querySelector(".swatch").style.background = colour(face.track_id);
      const bars = card.querySelector(".bars");
      for (const label of Object.keys(face.smoothed)) {
        const row = $("bar-row").content.firstElementChild.cloneNode(true);
        row.dataset.label = label;
        row.querySelector(".label").textContent = label;
        bars.appendChild(row);
      }
      ui.faces.appendChild(card);
      cards.set(face.track_id, card);
    }
    card.querySelector(".title").textContent =
      face.track_id ? `Track #${face.track_id}: ${face.emotion}` : `Whole frame: ${face.emotion}`;
    card.querySelector(".detail").textContent = "smoothed over the track's frames";
    for (const row of card.querySelectorAll(".bar-row")) {
      const p = face.smoothed[row.dataset.label];
      row.querySelector(".fill").style.width = `${(p * 100).toFixed(1)}%`;
      row.querySelector(".value").textContent = p.toFixed(2);
      row.classList.toggle("top", row.dataset.label === face.emotion);
    }
  }

  // --- the expression challenge ---------------------------------------------------------------------

  async function takeChallenge() {
    const headers = apiKey() ? { "X-API-Key": apiKey() } : {};
    const response = await fetch("/challenges", { method: "POST", headers });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const error = body && body.error;
      setStatus(error ? `${error.code}: ${error.message}` : `${response.status}`, "error");
      return;
    }
    ui.challenge.hidden = false;
    ui.token.textContent = "";
    document.body.dataset.challenge = "pending";
    ui.steps.replaceChildren(
      ...body.steps.map((step) => {
        const item = document.createElement("li");
        item.textContent = step;
        return item;
      }),
    );
    ui.challengeStatus.textContent = `Show each expression in order, held for ${body.hold_frames} frames.`;
    await start(body.id);
  }

  function showChallenge(progress) {
    document.body.dataset.challenge = progress.status;
    [...ui.steps.children].forEach((item, i) => {
      item.classList.toggle("done", i < progress.step);
      item.classList.toggle("current", i === progress.step && progress.status === "pending");
    });
    if (progress.status === "passed") {
      ui.challengeStatus.textContent = "Passed: a relying service checks the token with POST /challenges/verify.";
      if (progress.token) ui.token.textContent = progress.token;
    } else if (progress.status === "failed") {
      ui.challengeStatus.textContent = `Failed: ${progress.reason}.`;
    } else {
      ui.challengeStatus.textContent = `Step ${progress.step + 1} of ${progress.steps.length}: held ${progress.held} frames.`;
    }
  }

  ui.start.addEventListener("click", () => start());
  ui.challengeStart.addEventListener("click", () => takeChallenge());
  ui.stop.addEventListener("click", () => {
    stop();
    setStatus("Stopped.", "idle");
  });
})();
