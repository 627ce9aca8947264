// The sharp peer: the default variant spec of photostream, for every photo named on stdin
// (one path per line). Prints {"photos": n, "seconds": t}.
//
// Written the fastest way sharp's documentation allows for these outputs: each photo is decoded
// once, shrunk on load to the largest size (1920 px), turned upright and converted to sRGB, and
// kept as raw pixels; every variant is then resized and encoded from those pixels, never from the
// file again. sharp.concurrency(1) gives each image one libvips thread and the photos run side by
// side (two per core, within libuv's thread pool), which the docs recommend for many images.
import { readFile } from "node:fs/promises";
import os from "node:os";
import sharp from "sharp";

sharp.concurrency(1);
sharp.cache(false); // every photo is seen once

const SPEC = [
  { name: "web", width: 1920, height: 1920, fit: "inside", formats: ["webp", "jpeg"] },
  { name: "thumb", width: 300, height: 300, fit: "inside", formats: ["webp", "jpeg"] },
  { name: "square", width: 150, height: 150, fit: "cover", position: sharp.strategy.attention, formats: ["webp"] },
];

function encode(image, format) {
  return format === "webp" ? image.webp({ quality: 82, effort: 4 })
                           : image.jpeg({ quality: 82, progressive: true, optimiseCoding: true });
}

async function variants(path) {
  const input = await readFile(path);
  const { data, info } = await sharp(input, { failOn: "truncated" })
    .rotate()
    .resize({ width: 1920, height: 1920, fit: "inside", withoutEnlargement: true })
    .toColourspace("srgb")
    .raw()
    .toBuffer({ resolveWithObject: true });
  const pixels = { raw: { width: info.width, height: info.height, channels: info.channels } };
  const jobs = [];
  for (const spec of SPEC) {
    for (const format of spec.formats) {
      let image = sharp(data, pixels);
      if (spec.width < info.width || spec.height < info.height) {
        image = image.resize({ width: spec.width, height: spec.height, fit: spec.fit, position: spec.position, withoutEnlargement: true });
      }
      jobs.push(encode(image, format).toBuffer());
    }
  }
  return Promise.all(jobs);
}

const paths = (await new Promise(resolve => {
  let text = "";
  process.stdin.on("data", chunk => (text += chunk));
  process.stdin.on("end", () => resolve(text));
})).split("\n").filter(Boolean);

const inFlight = os.cpus().length * 2;
const started = process.hrtime.bigint();
let next = 0;
async function worker() {
  while (next < paths.length) {
    const path = paths[next++];
    await variants(path);
  }
}
await Promise.all(Array.from({ length: inFlight }, worker));
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(JSON.stringify({ photos: paths.length, seconds }));
