// Uploads one file with tus-js-client, the way a Node upload tool does, and prints one JSON line.
//
//   ENDPOINT=http://host:port/v1/tus/ API_KEY=... FILE=path [UPLOAD_URL=...] node upload.js
//
// With UPLOAD_URL it resumes that upload (HEAD for the offset, then PATCHes from there).
// Prints {"result": "success", "url", "upload_id", "existing"} or {"result": "error", "url", "error"}.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const tus = require("tus-js-client");

const file = fs.readFileSync(process.env.FILE);
const upload = new tus.Upload(file, {
  endpoint: process.env.ENDPOINT,
  uploadUrl: process.env.UPLOAD_URL || null,
  chunkSize: Number(process.env.CHUNK_SIZE || 5 * 1024 * 1024),
  headers: { Authorization: `Bearer ${process.env.API_KEY}` },
  metadata: { filename: path.basename(process.env.FILE), filetype: "image/jpeg" },
  retryDelays: null, // a cut connection ends this run; the caller resumes it
  storeFingerprintForResuming: false,
  onSuccess: ({ lastResponse }) => {
    print({
      result: "success",
      url: upload.url,
      upload_id: lastResponse.getHeader("Photostream-Upload-Id"),
      existing: lastResponse.getHeader("Photostream-Existing") === "true",
    });
  },
  onError: (error) => {
    print({ result: "error", url: upload.url, error: String(error) });
    process.exitCode = 1;
  },
});

function print(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

upload.start();
