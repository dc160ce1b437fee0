// Oracle check of the built-in chat templates (runtime/chat) against Hugging
// Face's own Jinja renderer, @huggingface/jinja, on the real template strings
// in ../shared/fixtures/chat-templates. See docs/chat.md.
//
//   node oracle.mjs --render BIN --templates DIR --npm NPM --node-dir DIR
//        [--conversations N] [--seed S]
//
// For every fixture template, a fixed set of conversations plus N seeded
// random ones, add_generation_prompt true and false, and a split point k:
//   ours.text   == HF.render(messages)                       (byte for byte)
//   ours.prefix == HF.render(messages[:k], agp=false)
//   ours.prefix + ours.delta == HF.render(messages)           (incremental rule)
// and the template is recognised as the right built-in, exactly.
// Exit 0 when all agree; 1 on any mismatch or when the npm install fails.
import {spawnSync} from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const JINJA_VERSION = "0.5.11";
const args = {conversations: 300, seed: 1};
{
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    if (!a[i].startsWith("--") || i + 1 >= a.length) die(`bad argument '${a[i]}'`);
    args[a[i].slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = a[++i];
  }
  args.conversations = Number(args.conversations);
  args.seed = Number(args.seed);
  for (const k of ["render", "templates", "npm", "nodeDir"])
    if (!args[k]) die(`missing --${k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}`);
}

function die(msg) {
  console.error(`chat-oracle: FAILED: ${msg}`);
  process.exit(1);
}

// ---------- @huggingface/jinja, installed once into the build tree ----------
function installedVersion(dir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, "node_modules/@huggingface/jinja/package.json"), "utf8")).version;
  } catch {
    return null;
  }
}
if (installedVersion(args.nodeDir) !== JINJA_VERSION) {
  fs.mkdirSync(args.nodeDir, {recursive: true});
  if (!fs.existsSync(path.join(args.nodeDir, "package.json")))
    fs.writeFileSync(path.join(args.nodeDir, "package.json"), JSON.stringify({name: "tern-chat-oracle", private: true}) + "\n");
  console.log(`installing @huggingface/jinja@${JINJA_VERSION} into ${args.nodeDir}`);
  const r = spawnSync(args.npm, ["install", "--prefix", args.nodeDir, "--no-audit", "--no-fund", "--ignore-scripts",
    `@huggingface/jinja@${JINJA_VERSION}`], {encoding: "utf8", timeout: 180_000});
  if (r.status !== 0 || installedVersion(args.nodeDir) !== JINJA_VERSION)
    die(`npm install @huggingface/jinja@${JINJA_VERSION} failed (network or registry problem?); status ${r.status}\n` +
        `${(r.stderr || "").slice(-2000)}${r.error ? String(r.error) : ""}`);
}
const {Template} = await import(pathToFileURL(path.join(args.nodeDir, "node_modules/@huggingface/jinja/dist/index.js")).href);

// ---------- templates ----------
const TEMPLATES = [["bitnet-b1.58-2b4t.jinja", "bitnet"], ["llama3.jinja", "llama3"], ["chatml.jinja", "chatml"]]
  .map(([file, name]) => {
    const text = fs.readFileSync(path.join(args.templates, file), "utf8");
    return {file, name, text, hf: new Template(text)};
  });

// ---------- conversations ----------
function mulberry32(a) {
  return () => {
    a |= 0; a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rng = mulberry32(args.seed * 2654435761);
const randInt = (lo, hi) => lo + Math.floor(rng() * (hi - lo + 1));
const pick = (arr) => arr[Math.floor(rng() * arr.length)];
const m = (role, content) => ({role, content});

const FIXED = [
  [m("user", "Hello")],
  [m("system", "You are helpful."), m("user", "Hi"), m("assistant", "Hello! How can I help?"), m("user", "What is 2+2?")],
  [m("user", "  Grüße, 世界 🌍\n\nline two\n"), m("assistant", "\u00a0Привет\u3000"), m("user", "\ufeffשלום\u2028")],
  [m("system", ""), m("user", " \t\n")],
  [m("user", "{{ bos_token }}{% if x %}<|eot_id|>")],
  [],
  [m("assistant", "starts with the assistant"), m("system", "late system"), m("user", "u")],
  [m("user", "a"), m("user", "b"), m("assistant", ""), m("assistant", "c")],
];

// Every whitespace JavaScript's trim knows, the ones only Python's strip
// knows (U+001C..U+001F, U+0085), look-alikes that are no whitespace.
const WS = ["\t", "\n", "\v", "\f", "\r", " ", "\u00a0", "\u1680", "\u2000", "\u2003", "\u200a", "\u2028",
  "\u2029", "\u202f", "\u205f", "\u3000", "\ufeff", "\u001c", "\u001f", "\u0085", "\u200b", "\u180e", "\u2060", "\r\n"];
const WORDS = ["hello", "world", "Grüße", "世界", "Привет", "שלום", "مرحبا", "नमस्ते", "สวัสดี", "안녕", "こんにちは",
  "🌍", "👨‍👩‍👧", "🇩🇪", "é", "e\u0301", "ﬁ", "ＡＢＣ", "2+2=4", "{{ x }}", "{% if a %}", "<|eot_id|>", "<|im_end|>",
  "<|begin_of_text|>", "'quoted'", "\"dq\"", "\\n", "\u0000", "\u007f", "a\u0301\u0302"];
function randomContent() {
  if (rng() < 0.1) return "";
  let s = "";
  const n = randInt(1, 8);
  for (let i = 0; i < n; i++) {
    const r = rng();
    if (r < 0.35) s += pick(WS);
    else if (r < 0.85) s += pick(WORDS);
    else s += String.fromCodePoint(rng() < 0.5 ? randInt(0x20, 0xd7ff) : randInt(0x10000, 0x10ffff));
  }
  return s;
}
const conversations = FIXED.slice();
for (let i = 0; i < args.conversations; i++) {
  const n = randInt(0, 6), c = [];
  for (let j = 0; j < n; j++) c.push(m(pick(["system", "user", "assistant"]), randomContent()));
  conversations.push(c);
}

// ---------- cases ----------
const cases = [];
for (const t of TEMPLATES) {
  conversations.forEach((conv, ci) => {
    // Fixed conversations: every split; random ones: one random split.
    const splits = ci < FIXED.length ? [...Array(conv.length + 1).keys()] : [randInt(0, conv.length)];
    for (const agp of [true, false]) {
      for (const split of splits) {
        const bos = ci % 5 === 4 ? "<s>" : "<|begin_of_text|>";
        const eos = ci % 5 === 4 ? "</s>" : "<|end_of_text|>";
        const hf = t.hf.render({messages: conv, bos_token: bos, eos_token: eos, add_generation_prompt: agp});
        const hfPrefix = t.hf.render({messages: conv.slice(0, split), bos_token: bos, eos_token: eos,
          add_generation_prompt: false});
        cases.push({tmpl: t, conv: ci, split, agp, hf, hfPrefix,
          input: {template: t.text, bos_token: bos, eos_token: eos, add_generation_prompt: agp, messages: conv, split}});
      }
    }
  });
}

const r = spawnSync(args.render, [], {input: JSON.stringify(cases.map((c) => c.input)), encoding: "utf8",
  maxBuffer: 1 << 28});
if (r.status !== 0) die(`${args.render} exited with ${r.status}: ${r.stderr}`);
const ours = JSON.parse(r.stdout);
if (ours.length !== cases.length) die(`got ${ours.length} results for ${cases.length} cases`);

// ---------- compare ----------
const bytesEqual = (a, b) => Buffer.from(a, "utf8").equals(Buffer.from(b, "utf8"));
function firstDiff(a, b) {
  const x = Buffer.from(a, "utf8"), y = Buffer.from(b, "utf8");
  let i = 0;
  while (i < x.length && i < y.length && x[i] === y[i]) i++;
  return i;
}
const failures = [];
const perTemplate = Object.fromEntries(TEMPLATES.map((t) => [t.name, 0]));
cases.forEach((c, i) => {
  const o = ours[i];
  const where = `${c.tmpl.file} conversation ${c.conv} split ${c.split} add_generation_prompt=${c.agp}`;
  if (o.error) return failures.push(`${where}: ours failed: ${o.error}`);
  if (o.name !== c.tmpl.name || !o.exact)
    failures.push(`${where}: recognised as ${o.name} (exact ${o.exact}), expected ${c.tmpl.name} exactly`);
  const checks = [["text", o.text, c.hf], ["prefix", o.prefix, c.hfPrefix], ["prefix+delta", o.prefix + o.delta, c.hf]];
  for (const [what, got, want] of checks) {
    if (!bytesEqual(got, want))
      failures.push(`${where}: ${what} differs at byte ${firstDiff(got, want)}\n  ours ${JSON.stringify(got)}\n  HF   ${JSON.stringify(want)}`);
  }
  perTemplate[c.tmpl.name]++;
});

const summary = `${cases.length} cases (${TEMPLATES.map((t) => `${t.name} ${perTemplate[t.name]}`).join(", ")}; ` +
  `${conversations.length} conversations, seed ${args.seed}), @huggingface/jinja ${JINJA_VERSION}`;
if (failures.length) {
  for (const f of failures.slice(0, 20)) console.log(f);
  console.log(`chat-oracle: FAIL: ${failures.length} mismatches in ${summary}`);
  process.exit(1);
}
console.log(`chat-oracle: PASS: ${summary}: text, prefix and prefix+delta identical byte for byte`);
