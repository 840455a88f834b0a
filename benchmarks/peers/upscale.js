#!/usr/bin/env node
// Runs one of UpscalerJS's ESRGAN models (from npm, weights inside the package) on raw RGB
// images for benchmarks/peers.py, on TensorFlow.js's WebAssembly backend in this process.
//
//   node upscale.js JOB.json
//
// JOB.json: {"model": "@upscalerjs/esrgan-thick/3x", "threads": 1, "warmup": true,
//            "images": [{"name": ..., "width": W, "height": H, "input": "a.rgb", "output": "b.rgb"}]}
// Inputs and outputs are raw 8-bit RGB, row-major (H x W x 3; outputs sH x sW x 3). Prints one
// JSON object: the backend, versions, the model's scale, parameters and weight bytes, and the
// milliseconds each image took (input tensor to output bytes, on the whole image: no patches).
// Nothing is fetched: the model definition and weights are read from node_modules.
"use strict";

const fs = require("fs");
const path = require("path");
const tf = require("@tensorflow/tfjs");
const wasm = require("@tensorflow/tfjs-backend-wasm");

function packageRoot(spec) {
  // "@scope/name/3x" -> "@scope/name"; "name/3x" -> "name"
  const parts = spec.split("/");
  return spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

// Some packages' "exports" hide package.json from require.resolve: read it from node_modules.
function packageDir(name) {
  return path.join(__dirname, "node_modules", ...name.split("/"));
}

function versionOf(name) {
  return JSON.parse(fs.readFileSync(path.join(packageDir(name), "package.json"), "utf8")).version;
}

// The model.json and its weight shards from the package folder: tfjs's own loader, fed from disk.
function fileHandler(modelJson) {
  return {
    load: async () => {
      const dir = path.dirname(modelJson);
      const spec = JSON.parse(fs.readFileSync(modelJson, "utf8"));
      const weightSpecs = [];
      const buffers = [];
      for (const group of spec.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
      }
      const data = Buffer.concat(buffers);
      return {
        modelTopology: spec.modelTopology,
        format: spec.format,
        generatedBy: spec.generatedBy,
        convertedBy: spec.convertedBy,
        weightSpecs,
        weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
      };
    },
  };
}

function run(model, definition, rgb, width, height) {
  const [lo, hi] = definition.inputRange;
  const [olo, ohi] = definition.outputRange;
  return tf.tidy(() => {
    const x = tf.tensor4d(rgb, [1, height, width, 3], "int32").toFloat();
    const scaled = lo === 0 && hi === 255 ? x : x.div(255 / (hi - lo)).add(lo);
    let y = model.predict(scaled);
    if (!(olo === 0 && ohi === 255)) y = y.sub(olo).mul(255 / (ohi - olo));
    return y.clipByValue(0, 255).round().toInt();
  });
}

async function main() {
  const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  wasm.setThreadsCount(job.threads || 1);
  await tf.setBackend("wasm");
  await tf.ready();
  const definition = require(job.model);
  if (definition.setup) definition.setup(tf);
  const root = packageRoot(job.model);
  const modelJson = path.join(packageDir(root), definition._internals.path);
  const model = await tf.loadLayersModel(fileHandler(modelJson));
  const scale = definition.scale;
  const times = [];
  for (const [i, im] of job.images.entries()) {
    const rgb = new Int32Array(fs.readFileSync(im.input));
    if (i === 0 && job.warmup) run(model, definition, rgb, im.width, im.height).dispose();
    const start = process.hrtime.bigint();
    const out = run(model, definition, rgb, im.width, im.height);
    const bytes = Uint8Array.from(await out.data());
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    out.dispose();
    const [, oh, ow] = out.shape;
    if (oh !== im.height * scale || ow !== im.width * scale) {
      throw new Error(`${im.name}: output ${ow}x${oh}, expected ${im.width * scale}x${im.height * scale}`);
    }
    fs.writeFileSync(im.output, bytes);
  }
  const weightBytes = definition._internals && fs.readdirSync(path.dirname(modelJson))
    .filter((f) => f.endsWith(".bin"))
    .reduce((n, f) => n + fs.statSync(path.join(path.dirname(modelJson), f)).size, 0);
  process.stdout.write(JSON.stringify({
    model: job.model,
    package: root,
    package_version: versionOf(root),
    scale,
    meta: definition.meta,
    parameters: model.countParams(),
    weight_bytes: weightBytes,
    model_bytes: weightBytes + fs.statSync(modelJson).size,
    backend: tf.getBackend(),
    threads: wasm.getThreadsCount ? wasm.getThreadsCount() : job.threads,
    tfjs_version: versionOf("@tensorflow/tfjs"),
    tfjs_backend_wasm_version: versionOf("@tensorflow/tfjs-backend-wasm"),
    node_version: process.version,
    ms: times,
  }) + "\n");
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
