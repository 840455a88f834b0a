// Upscales the image the user picks with model.onnx: uint8 RGB H x W x 3 in, uint8 RGB out.
// The colour conversion, the network and the chroma resize all run inside the model.
"use strict";

const statusLine = document.getElementById("status");
const picker = document.getElementById("file");

function setState(state, text) {
  document.body.dataset.state = state;
  statusLine.textContent = text;
  statusLine.className = state === "error" ? "error" : "";
}

async function loadModel() {
  const manifest = await (await fetch("manifest.json")).json();
  ort.env.wasm.wasmPaths = "./";
  const session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
  return { manifest, session };
}

function rgbOf(canvas) {
  const { width, height } = canvas;
  const rgba = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return rgb;
}

function draw(canvas, rgb, width, height) {
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(width, height);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    image.data[i] = rgb[j];
    image.data[i + 1] = rgb[j + 1];
    image.data[i + 2] = rgb[j + 2];
    image.data[i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

async function upscale(model, file) {
  // No colour management: the model must see the file's own pixel values.
  const bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const before = document.getElementById("before");
  before.width = bitmap.width;
  before.height = bitmap.height;
  before.getContext("2d").drawImage(bitmap, 0, 0);
  const { width, height } = before;
  setState("running", `upscaling ${width}x${height}…`);
  const input = new ort.Tensor("uint8", rgbOf(before), [height, width, 3]);
  const start = performance.now();
  const result = await model.session.run({ [model.session.inputNames[0]]: input });
  const ms = performance.now() - start;
  const output = result[model.session.outputNames[0]];
  const [outHeight, outWidth] = output.dims;
  draw(document.getElementById("after"), output.data, outWidth, outHeight);
  const link = document.getElementById("download");
  link.href = document.getElementById("after").toDataURL("image/png");
  link.hidden = false;
  document.getElementById("after-caption").textContent = `upscaled x${model.manifest.task.scale}`;
  setState("done", `${width}x${height} -> ${outWidth}x${outHeight} in ${ms.toFixed(0)} ms (ONNX Runtime Web ${ort.env.versions.web}, wasm)`);
}

loadModel().then(
  (model) => {
    setState("ready", "Model loaded. Pick an image.");
    picker.disabled = false;
    picker.addEventListener("change", () => {
      if (picker.files.length) upscale(model, picker.files[0]).catch((e) => setState("error", `failed: ${e.message || e}`));
    });
  },
  (e) => setState("error", `cannot load the model: ${e.message || e}`),
);
