// The demo page: an image (picked, dropped or a camera snapshot) goes to POST /predict?faces=all;
// the answer is drawn as a box and label over each face (SVG over the image) and a bar chart of the
// probabilities per face. Plain JS, no external asset: the service serves this file itself.
"use strict";

(() => {
  // Faces are coloured by rank (largest first), as in the JPEG of POST /annotate (app/core/annotation.py).
  const PALETTE = ["#00c853", "#ffb300", "#2979ff", "#d500f9", "#ff3d00", "#00e5ff"];
  const $ = (id) => document.getElementById(id);
  const ui = {
    model: $("model"),
    modelId: $("model-id"),
    apiKey: $("api-key"),
    dropZone: $("drop-zone"),
    file: $("file"),
    cameraStart: $("camera-start"),
    cameraSnap: $("camera-snap"),
    cameraStop: $("camera-stop"),
    camera: $("camera"),
    status: $("status"),
    result: $("result"),
    photo: $("photo"),
    overlay: $("overlay"),
    timing: $("timing"),
    faces: $("faces"),
  };
  let photoUrl = null;
  let cameraStream = null;

  // --- talking to the service -------------------------------------------------------------------

  function authHeaders() {
    const key = ui.apiKey.value.trim();
    return key ? { "X-API-Key": key } : {};
  }

  async function call(path, options = {}) {
    const response = await fetch(path, { ...options, headers: authHeaders() });
    const body = await response.json().catch(() => null);
    return { response, body };
  }

  function errorText({ response, body }) {
    const error = body && body.error;
    return error ? `${response.status} ${error.code}: ${error.message}` : `${response.status} ${response.statusText}`;
  }

  function setStatus(text, state) {
    ui.status.textContent = text;
    document.body.dataset.state = state;
  }

  function keyNeeded(needed) {
    ui.apiKey.closest(".field").classList.toggle("needed", needed);
    if (needed) setStatus("This service requires an API key: type it above.", "error");
  }

  // GET /models (several models served side by side) when the service has it, else GET /model.
  async function loadModels() {
    ui.modelId.textContent = "loading…";
    try {
      const listed = await call("/models");
      if (listed.response.ok) return showModelList(listed.body);
      if (listed.response.status === 401) return keyNeeded(true);
      const single = await call("/model");
      if (single.response.ok) {
        keyNeeded(false);
        ui.model.hidden = true;
        ui.modelId.textContent = `${single.body.model_id} · ${single.body.labels.length} emotions`;
        return;
      }
      if (single.response.status === 401) return keyNeeded(true);
      ui.modelId.textContent = errorText(single);
    } catch (error) {
      ui.modelId.textContent = `the service cannot be reached (${error.message})`;
    }
  }

  function showModelList(body) {
    keyNeeded(false);
    const models = Array.isArray(body) ? body : (body && body.models) || [];
    const previous = ui.model.value;
    ui.model.replaceChildren();
    for (const model of models) {
      const name = model.name || model.model_id || model.id;
      const option = new Option(model.labels ? `${name} (${model.labels.length} emotions)` : name, name);
      option.selected = previous ? name === previous : Boolean(model.default);
      ui.model.append(option);
    }
    ui.model.hidden = models.length === 0;
    const chosen = models.find((m) => (m.name || m.model_id || m.id) === ui.model.value);
    ui.modelId.textContent = chosen ? chosen.model_id || chosen.id || "" : "";
  }

  async function classify(blob, filename) {
    const shown = showPhoto(blob);
    setStatus(`Classifying ${filename}…`, "busy");
    const form = new FormData();
    form.append("file", blob, filename);
    const query = new URLSearchParams({ faces: "all" });
    if (!ui.model.hidden && ui.model.value) query.set("model", ui.model.value);
    const started = performance.now();
    let answer;
    try {
      answer = await call(`/predict?${query}`, { method: "POST", body: form });
    } catch (error) {
      return setStatus(`The request failed: ${error.message}`, "error");
    }
    const roundTripMs = performance.now() - started;
    const displayable = await shown;
    if (!answer.response.ok) {
      clearResult();
      if (answer.response.status === 401) keyNeeded(true);
      return setStatus(errorText(answer), "error");
    }
    keyNeeded(false);
    render(answer.body, roundTripMs, displayable);
  }

  // --- drawing the answer -----------------------------------------------------------------------

  // Resolves true once the browser has displayed the image, false when it cannot (e.g. TIFF).
  function showPhoto(blob) {
    if (photoUrl) URL.revokeObjectURL(photoUrl);
    photoUrl = URL.createObjectURL(blob);
    return new Promise((resolve) => {
      ui.photo.onload = () => resolve(true);
      ui.photo.onerror = () => resolve(false);
      ui.photo.src = photoUrl;
    });
  }

  function clearResult() {
    ui.result.hidden = true;
    ui.overlay.replaceChildren();
    ui.faces.replaceChildren();
    ui.timing.textContent = "";
  }

  const percent = (p) => `${(100 * p).toFixed(1)}%`;

  function render(body, roundTripMs, displayable) {
    const faces = body.faces || [body];
    ui.result.hidden = false;
    ui.photo.parentElement.hidden = !displayable;
    drawBoxes(faces);
    ui.faces.replaceChildren(...faces.map((face, rank) => faceCard(face, rank, body.face_found)));
    const t = body.timing;
    ui.timing.textContent =
      `${body.model_id} · decode ${t.decode_ms.toFixed(1)} ms · inference ${t.inference_ms.toFixed(1)} ms · ` +
      `server total ${t.total_ms.toFixed(1)} ms · round trip ${roundTripMs.toFixed(0)} ms`;
    const found = body.face_found
      ? `${faces.length} face${faces.length === 1 ? "" : "s"} found.`
      : "No face found: the whole image was classified.";
    setStatus(displayable ? found : `${found} (This browser cannot display the image format.)`, "done");
  }

  function drawBoxes(faces) {
    const width = ui.photo.naturalWidth || 1;
    const height = ui.photo.naturalHeight || 1;
    const svg = "http://www.w3.org/2000/svg";
    ui.overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
    ui.overlay.setAttribute("preserveAspectRatio", "none");
    // Labels about 14 screen pixels high, whatever the image's size on screen.
    const scale = ui.photo.clientWidth / width || 1;
    const fontSize = Math.max(8, Math.round(14 / scale));
    ui.overlay.replaceChildren();
    faces.forEach((face, rank) => {
      if (!face.box) return;
      const { x, y, width: w, height: h } = face.box;
      const color = PALETTE[rank % PALETTE.length];
      const rect = document.createElementNS(svg, "rect");
      rect.setAttribute("class", "face-box");
      Object.entries({ x, y, width: w, height: h, stroke: color }).forEach(([k, v]) => rect.setAttribute(k, v));
      const label = document.createElementNS(svg, "text");
      label.setAttribute("class", "face-label");
      label.setAttribute("x", x + 4);
      label.setAttribute("y", y >= fontSize * 1.2 ? y - fontSize * 0.3 : y + fontSize);
      label.setAttribute("font-size", fontSize);
      label.setAttribute("stroke-width", Math.max(2, fontSize / 6));
      label.textContent = `${rank + 1}. ${face.emotion} ${percent(face.confidence)}`;
      ui.overlay.append(rect, label);
    });
  }

  function faceCard(face, rank, faceFound) {
    const card = $("face-card").content.firstElementChild.cloneNode(true);
    card.querySelector(".swatch").style.backgroundColor = PALETTE[rank % PALETTE.length];
    const where = faceFound ? `Face ${rank + 1}` : "Whole image";
    card.querySelector(".title").textContent = `${where}: ${face.emotion} ${percent(face.confidence)}`;
    const details = [];
    if (face.box) details.push(`box ${face.box.width}×${face.box.height} at (${face.box.x}, ${face.box.y})`);
    if (typeof face.face_confidence === "number") details.push(`face confidence ${percent(face.face_confidence)}`);
    card.querySelector(".detail").textContent = details.join(" · ");
    const bars = card.querySelector(".bars");
    for (const [label, p] of Object.entries(face.probabilities)) {
      const row = $("bar-row").content.firstElementChild.cloneNode(true);
      row.classList.toggle("top", label === face.emotion);
      row.querySelector(".label").textContent = label;
      row.querySelector(".fill").style.width = percent(p);
      row.querySelector(".value").textContent = percent(p);
      row.title = `${label}: ${p.toFixed(4)}`;
      bars.append(row);
    }
    return card;
  }

  // --- inputs: file picker, drag and drop, camera ----------------------------------------------

  ui.file.addEventListener("change", () => {
    const [file] = ui.file.files;
    ui.file.value = ""; // picking the same file again is a new change
    if (file) classify(file, file.name);
  });

  ["dragenter", "dragover"].forEach((type) =>
    ui.dropZone.addEventListener(type, (event) => {
      event.preventDefault();
      ui.dropZone.classList.add("dragging");
    }),
  );
  ["dragleave", "drop"].forEach((type) =>
    ui.dropZone.addEventListener(type, () => ui.dropZone.classList.remove("dragging")),
  );
  ui.dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    const [file] = event.dataTransfer.files;
    if (file) classify(file, file.name);
  });

  const cameraAvailable = Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  if (!cameraAvailable) {
    ui.cameraStart.disabled = true;
    ui.cameraStart.title = "No camera access here (browsers allow it on https:// and on localhost)";
  }

  function showCameraButtons(on) {
    ui.cameraStart.hidden = on;
    ui.cameraSnap.hidden = !on;
    ui.cameraStop.hidden = !on;
    ui.camera.hidden = !on;
  }

  ui.cameraStart.addEventListener("click", async () => {
    try {
      cameraStream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    } catch (error) {
      return setStatus(`No camera: ${error.message || error.name}`, "error");
    }
    ui.camera.srcObject = cameraStream;
    showCameraButtons(true);
    setStatus("Camera on: take a snapshot.", "idle");
  });

  ui.cameraStop.addEventListener("click", () => {
    if (cameraStream) cameraStream.getTracks().forEach((track) => track.stop());
    cameraStream = null;
    ui.camera.srcObject = null;
    showCameraButtons(false);
  });

  ui.cameraSnap.addEventListener("click", () => {
    const canvas = document.createElement("canvas");
    canvas.width = ui.camera.videoWidth;
    canvas.height = ui.camera.videoHeight;
    if (!canvas.width || !canvas.height) return setStatus("The camera has no picture yet.", "error");
    canvas.getContext("2d").drawImage(ui.camera, 0, 0);
    canvas.toBlob((blob) => classify(blob, "snapshot.jpg"), "image/jpeg", 0.92);
  });

  ui.apiKey.addEventListener("change", loadModels);
  ui.model.addEventListener("change", () => loadModels());
  loadModels();
})();
