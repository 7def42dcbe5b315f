// Sends `count` Web Push messages with the web-push library (encryption and
// VAPID per message, as the library does them) to the subscriptions in the
// config file, `concurrency` at a time over keep-alive HTTP, and prints
// {"sent": n, "ms": elapsed}.
import fs from "node:fs";
import http from "node:http";
import webpush from "web-push";

const cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.concurrency });
const options = {
  vapidDetails: { subject: cfg.subject, publicKey: cfg.publicKey, privateKey: cfg.privateKey },
  TTL: 86400,
  contentEncoding: "aes128gcm",
};

function send(i) {
  const subscription = cfg.subscriptions[i % cfg.subscriptions.length];
  const details = webpush.generateRequestDetails(subscription, cfg.payload, options);
  const url = new URL(details.endpoint);
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: url.hostname, port: url.port, path: url.pathname, method: details.method, headers: details.headers, agent },
      (response) => {
        response.resume();
        response.on("end", () =>
          response.statusCode < 300 ? resolve() : reject(new Error(`status ${response.statusCode}`)),
        );
      },
    );
    request.on("error", reject);
    request.end(details.body);
  });
}

let next = 0;
async function worker() {
  while (next < cfg.count) {
    await send(next++);
  }
}

const started = performance.now();
await Promise.all(Array.from({ length: cfg.concurrency }, worker));
const ms = performance.now() - started;
agent.destroy();
console.log(JSON.stringify({ sent: cfg.count, ms }));
