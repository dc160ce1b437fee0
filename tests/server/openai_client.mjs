// The official `openai` npm client against `tern serve` on loopback: chat and
// completions, streamed and not; every response must parse in the client.
//
//   node openai_client.mjs --tern BIN --model GGUF --npm NPM --node-dir DIR
//
// The client is installed once into DIR (the build tree). Exit 0: all
// checks passed; 1: a check failed; 77 (ctest's skip code): npm could not
// install the package (offline), with the reason printed.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const OPENAI_VERSION = "5.12.0";

const args = {};
for (let i = 2; i < process.argv.length; i += 2)
  args[process.argv[i].replace(/^--/, "").replace(/-(.)/g, (_, c) => c.toUpperCase())] =
    process.argv[i + 1];
for (const k of ["tern", "model", "npm", "nodeDir"])
  if (!args[k]) {
    console.error(`missing --${k}`);
    process.exit(2);
  }

function installedVersion(dir) {
  const p = join(dir, "node_modules", "openai", "package.json");
  return existsSync(p) ? JSON.parse(readFileSync(p, "utf8")).version : null;
}
if (installedVersion(args.nodeDir) !== OPENAI_VERSION) {
  console.log(`installing openai@${OPENAI_VERSION} into ${args.nodeDir}`);
  const r = spawnSync(args.npm, ["install", "--prefix", args.nodeDir, "--no-audit", "--no-fund",
    "--ignore-scripts", "--no-save", `openai@${OPENAI_VERSION}`], { stdio: "inherit", timeout: 180000 });
  if (r.status !== 0 || installedVersion(args.nodeDir) !== OPENAI_VERSION) {
    console.log(`SKIPPED: npm install openai@${OPENAI_VERSION} failed (offline or registry problem?), status ${r.status}`);
    process.exit(77);
  }
}
const require = createRequire(join(resolve(args.nodeDir), "node_modules", "x.js"));
const OpenAI = require("openai").default ?? require("openai");

// Start the server on a free port; its first stdout line names the port.
const server = spawn(args.tern, ["serve", args.model, "--port", "0", "-c", "256", "--parallel", "4",
  "--api-key", "sk-test"], { stdio: ["ignore", "pipe", "inherit"] });
const port = await new Promise((resolve, reject) => {
  let buf = "";
  server.stdout.on("data", (d) => {
    buf += d;
    const m = buf.match(/listening on http:\/\/[^:]+:(\d+)/);
    if (m) resolve(Number(m[1]));
  });
  server.on("exit", (code) => reject(new Error(`tern serve exited with ${code}`)));
});
const base = `http://127.0.0.1:${port}`;
for (let i = 0; i < 300; i++) {
  try {
    if ((await fetch(`${base}/health`)).status === 200) break;
  } catch {}
  await new Promise((r) => setTimeout(r, 50));
}

let failed = 0;
function check(cond, what) {
  if (!cond) {
    failed++;
    console.log(`FAIL: ${what}`);
  }
}

const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "sk-test", maxRetries: 0 });
try {
  const models = await client.models.list();
  check(models.data.length === 1 && models.data[0].object === "model", "models.list");
  const model = models.data[0].id;

  const chat = await client.chat.completions.create({
    model, messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hello" }],
    max_tokens: 8, temperature: 0, seed: 7,
  });
  check(chat.object === "chat.completion" && typeof chat.choices[0].message.content === "string" &&
    chat.usage.completion_tokens > 0 && chat.usage.total_tokens ===
    chat.usage.prompt_tokens + chat.usage.completion_tokens, `chat: ${JSON.stringify(chat)}`);

  const chunks = [];
  const s = await client.chat.completions.create({
    model, messages: [{ role: "user", content: "Hello" }], max_tokens: 8, temperature: 0, seed: 7,
    stream: true, stream_options: { include_usage: true },
  });
  for await (const c of s) chunks.push(c);
  const streamed = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  const plain = await client.chat.completions.create({
    model, messages: [{ role: "user", content: "Hello" }], max_tokens: 8, temperature: 0, seed: 7,
  });
  check(chunks.every((c) => c.object === "chat.completion.chunk"), "chunk objects");
  check(streamed === plain.choices[0].message.content,
    `streamed ${JSON.stringify(streamed)} != non-streamed ${JSON.stringify(plain.choices[0].message.content)}`);
  check(chunks.some((c) => c.usage && c.usage.completion_tokens === plain.usage.completion_tokens),
    "stream usage chunk");

  const comp = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 6,
    temperature: 0, logprobs: 2 });
  check(comp.object === "text_completion" && typeof comp.choices[0].text === "string" &&
    comp.choices[0].logprobs.tokens.length > 0, `completion: ${JSON.stringify(comp)}`);
  const cs = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 6,
    temperature: 0, stream: true });
  let text = "";
  for await (const c of cs) text += c.choices[0]?.text ?? "";
  check(text === comp.choices[0].text, `streamed completion ${JSON.stringify(text)} != ${JSON.stringify(comp.choices[0].text)}`);

  // Errors surface as the client's typed errors with the server's message.
  try {
    await client.chat.completions.create({ model, messages: [], max_tokens: 1 });
    check(false, "empty messages accepted");
  } catch (e) {
    check(e.status === 400 && /messages/.test(e.message), `400: ${e.status} ${e.message}`);
  }
  try {
    await new OpenAI({ baseURL: `${base}/v1`, apiKey: "wrong", maxRetries: 0 }).models.list();
    check(false, "wrong key accepted");
  } catch (e) {
    check(e.status === 401, `401: ${e.status}`);
  }
} catch (e) {
  failed++;
  console.log(`FAIL: ${e.stack ?? e}`);
} finally {
  server.kill("SIGTERM");
}
console.log(failed ? `${failed} check(s) failed` : "openai client: all checks passed");
process.exit(failed ? 1 : 0);
