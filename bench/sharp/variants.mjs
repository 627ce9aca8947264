// The sharp peer: the default variant spec of photostream, for every photo named on stdin
// (one path per line), images in flight = cores x 2. Prints {"photos": n, "seconds": t}.
import { readFile } from "node:fs/promises";
import os from "node:os";
import sharp from "sharp";

const SPEC = [
  { name: "web", width: 1920, height: 1920, fit: "inside", formats: ["webp", "jpeg"] },
  { name: "thumb", width: 300, height: 300, fit: "inside", formats: ["webp", "jpeg"] },
  { name: "square", width: 150, height: 150, fit: "cover", position: sharp.strategy.attention, formats: ["webp"] },
];

async function variants(path) {
  const input = await readFile(path);
  const jobs = [];
  for (const spec of SPEC) {
    for (const format of spec.formats) {
      let image = sharp(input, { failOn: "truncated" })
        .rotate()
        .resize({ width: spec.width, height: spec.height, fit: spec.fit, position: spec.position, withoutEnlargement: true })
        .toColourspace("srgb");
      image = format === "webp" ? image.webp({ quality: 82, effort: 4 })
                                : image.jpeg({ quality: 82, progressive: true, optimiseCoding: true });
      jobs.push(image.toBuffer());
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
