// Cross-validation of ternc's reference forward pass and tokenizer against
// upstream llama.cpp (the CPU build shipped in node-llama-cpp 3.22.1, the same
// one the fixtures' goldens came from). See docs/crossval.md.
//
//   node crossval.mjs --tern BIN --synth BIN --tokenize BIN --vocab GGUF
//        --npm NPM --node-dir DIR --out DIR --report FILE
//        [--models N] [--strings N] [--seed S] [--steps N]
//        [--quant-tol X] [--quant-gap X] [--tq-act-quant q8k|token|none]
//
// Exit 0 when every case is within tolerance, 1 on any violation or when
// node-llama-cpp cannot be installed (never a silent pass).
import {spawnSync, execFileSync} from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const NLC_VERSION = "3.22.1";
const t0 = Date.now();

// ---------- arguments ----------
const args = {models: 32, strings: 1000, seed: 1, steps: 16, quantTol: 0.10, quantGap: 0.05, tqActQuant: "q8k"};
{
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    const k = a[i];
    if (!k.startsWith("--") || i + 1 >= a.length) die(`bad argument '${k}'`);
    args[k.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = a[++i];
  }
  for (const k of ["models", "strings", "seed", "steps", "quantTol", "quantGap"]) args[k] = Number(args[k]);
  for (const k of ["tern", "synth", "tokenize", "vocab", "npm", "nodeDir", "out", "report"])
    if (!args[k]) die(`missing --${k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}`);
}

function die(msg) {
  console.error(`crossval: FAILED: ${msg}`);
  process.exit(1);
}
const log = (...m) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...m);

// ---------- node-llama-cpp, installed once into a build-local folder ----------
function nlcInstalled(dir) {
  try {
    const p = JSON.parse(fs.readFileSync(path.join(dir, "node_modules/node-llama-cpp/package.json"), "utf8"));
    const b = JSON.parse(fs.readFileSync(path.join(dir, "node_modules/@node-llama-cpp/linux-x64/package.json"), "utf8"));
    return p.version === NLC_VERSION && b.version === NLC_VERSION;
  } catch {
    return false;
  }
}

function ensureNlc(dir) {
  if (nlcInstalled(dir)) {
    log(`node-llama-cpp ${NLC_VERSION} already installed in ${dir}`);
    return;
  }
  fs.mkdirSync(dir, {recursive: true});
  if (!fs.existsSync(path.join(dir, "package.json")))
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({name: "tern-crossval", private: true}) + "\n");
  log(`installing node-llama-cpp ${NLC_VERSION} (linux-x64 CPU binary only) into ${dir}`);
  // --omit=optional drops the other platforms' prebuilt binaries (CUDA, Vulkan,
  // ARM, ...: ~700 MB); the linux-x64 CPU one is named explicitly.
  const r = spawnSync(args.npm, ["install", "--prefix", dir, "--no-audit", "--no-fund", "--ignore-scripts",
    "--omit=optional", `node-llama-cpp@${NLC_VERSION}`, `@node-llama-cpp/linux-x64@${NLC_VERSION}`],
  {encoding: "utf8", timeout: 300_000});
  if (r.status !== 0 || !nlcInstalled(dir))
    die(`npm install node-llama-cpp@${NLC_VERSION} failed (network or registry problem?); ` +
        `status ${r.status}\n${(r.stderr || "").slice(-2000)}${r.error ? String(r.error) : ""}`);
}

// ---------- deterministic randomness ----------
function mulberry32(a) {
  return () => {
    a |= 0; a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rng = mulberry32(args.seed * 2654435761);
const randInt = (lo, hi) => lo + Math.floor(rng() * (hi - lo + 1)); // inclusive
const pick = (arr) => arr[Math.floor(rng() * arr.length)];

// ---------- model configurations ----------
// (hidden, heads, kv heads): head dims 64 and 128, GQA ratios 1, 2, 4, 5.
// llama.cpp's TQ1_0/TQ2_0 need rows that are multiples of 256, so hidden 640
// (the ratio-5 shapes) is F16 only.
const SHAPES = [
  [256, 4, 4], [256, 4, 2], [256, 4, 1], [256, 2, 2], [256, 2, 1],
  [512, 8, 8], [512, 8, 4], [512, 8, 2], [512, 4, 4], [512, 4, 2], [512, 4, 1],
  [640, 10, 2], [640, 5, 1], [640, 10, 10],
];
const FORMATS = ["tq2_0", "tq1_0", "f16"];

function makeConfigs(n) {
  const cfgs = [];
  // Every shape with each storage it allows first, then random ones.
  const all = [];
  for (const s of SHAPES)
    for (const f of FORMATS) if (s[0] % 256 === 0 || f === "f16") all.push([s, f]);
  const order = all.map((x) => [rng(), x]).sort((a, b) => a[0] - b[0]).map((x) => x[1]);
  for (let i = 0; i < n; i++) {
    const [[hidden, heads, kvHeads], format] = i < order.length ? order[i] : pick(order);
    const layers = randInt(1, 4);
    const ffn = 256 * randInt(1, hidden <= 256 ? 3 : 4);
    const seed = randInt(1, 1_000_000);
    // Prompt length 1..300 (BOS included), biased so that long ones are common.
    const len = rng() < 0.3 ? randInt(1, 16) : randInt(17, 300);
    const prompt = [354];
    for (let j = 1; j < len; j++) prompt.push(randInt(0, 353));
    cfgs.push({id: i, hidden, heads, kvHeads, headDim: hidden / heads, gqa: heads / kvHeads, layers, ffn,
      format, seed, actQuant: format === "f16" ? "none" : args.tqActQuant, prompt});
  }
  return cfgs;
}

// ---------- our side ----------
function ternEval(modelPath, input, steps, actQuant) {
  const out = execFileSync(args.tern, ["eval", modelPath, "--tokens", input.join(","), "--greedy", String(steps),
    "--top", "1000000", "--json", "--act-quant", actQuant, "-c", "1024"], {encoding: "utf8", maxBuffer: 1 << 28});
  return JSON.parse(out.trim().split("\n")[0]).steps.map((s) => ({token: s.token, probs: new Map(s.top)}));
}

// The fixtures' rule, with llama.cpp's picks fed to both: compare ours with
// llama.cpp's steps until the picks part; a parting is allowed where
// llama.cpp's top two are within `gap`; then feed llama.cpp's picks to ours up
// to there and go on, so all steps get compared.
function compareCase(modelPath, cfg, golden, tol, gap) {
  const res = {maxDeltaP: 0, maxDeltaStep: -1, partings: [], violations: [], ternRuns: 0};
  let s = 0;
  while (s < golden.length) {
    const input = cfg.prompt.concat(golden.slice(0, s).map((g) => g.token));
    const ours = ternEval(modelPath, input, golden.length - s, cfg.actQuant);
    res.ternRuns++;
    let parted = -1;
    for (let i = 0; i < ours.length; i++) {
      const step = s + i, g = golden[step], o = ours[i];
      let d = 0;
      for (const [id, p] of g.top) d = Math.max(d, Math.abs((o.probs.get(id) ?? 0) - p));
      if (d > res.maxDeltaP) { res.maxDeltaP = d; res.maxDeltaStep = step; }
      if (d > tol) res.violations.push({step, kind: "deltaP", deltaP: d, tolerance: tol});
      if (o.token !== g.token) {
        const margin = g.top[0][1] - (g.top[1]?.[1] ?? 0);
        res.partings.push({step, ours: o.token, llama: g.token, llamaMargin: margin});
        if (margin > gap) res.violations.push({step, kind: "parted", ours: o.token, llama: g.token, llamaMargin: margin, gap});
        parted = step;
        break;
      }
    }
    if (parted < 0) break;
    s = parted + 1;
  }
  res.firstDivergence = res.partings.length ? res.partings[0] : null;
  return res;
}

// ---------- random strings for the tokenizer ----------
const RANGES = [
  [0x61, 0x7a], [0x41, 0x5a], [0x30, 0x39], [0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e],
  [0xc0, 0x24f],      // Latin-1 / Extended
  [0x370, 0x3ff],     // Greek
  [0x400, 0x4ff],     // Cyrillic
  [0x590, 0x5ff],     // Hebrew
  [0x600, 0x6ff],     // Arabic
  [0x900, 0x97f],     // Devanagari
  [0xe00, 0xe7f],     // Thai
  [0x1100, 0x11ff],   // Hangul Jamo
  [0x300, 0x36f],     // combining marks
  [0x2000, 0x206f],   // general punctuation (incl. odd spaces, ZWJ)
  [0x3040, 0x30ff],   // kana
  [0x4e00, 0x9fff],   // CJK
  [0xac00, 0xd7a3],   // Hangul syllables
  [0xff00, 0xffef],   // full width
  [0x1f300, 0x1faff], // emoji
  [0x10000, 0x10ffff],// anything above the BMP
  [0x80, 0x9f],       // C1 controls
];
const WS = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2009", "\v", "\f"];
const WORDS = ["the", " the", "The", "I'm", "you'll", "don't", "'s", "'VE", " hello", "world", "123", "4567",
  "3.14159", "1,000,000", "日本語", "Привет", "مرحبا", "שלום", "😀", "👍🏽", "👨‍👩‍👧", "🇩🇪", "e\u0301", "<|begin_of_text|>",
  "<s>", "ﬁ", "ǅ", "ß", "İ", "\u200b", "\ufeff", "#include", "x+=1;", "http://a.b/c?d=e", "...", "!!!"];

function codePoint(lo, hi) {
  for (;;) {
    const c = randInt(lo, hi);
    if (c >= 0xd800 && c <= 0xdfff) continue; // no surrogates: strings must be valid UTF-8
    return String.fromCodePoint(c);
  }
}

function randomString() {
  const parts = randInt(1, 24);
  let s = "";
  for (let i = 0; i < parts; i++) {
    const r = rng();
    if (r < 0.30) { const [lo, hi] = pick(RANGES); const n = randInt(1, 6); for (let j = 0; j < n; j++) s += codePoint(lo, hi); }
    else if (r < 0.45) s += pick(WS).repeat(randInt(1, 3));
    else if (r < 0.55) s += String(randInt(0, 10 ** randInt(1, 9)));
    else if (r < 0.62) s += String.fromCharCode(randInt(1, 31)) + (rng() < 0.3 ? "\x7f" : "");
    else if (r < 0.85) s += pick(WORDS);
    else { const n = randInt(1, 8); for (let j = 0; j < n; j++) s += codePoint(0x61, 0x7a); }
  }
  return s;
}

// ---------- main ----------
ensureNlc(args.nodeDir);
const nlcEntry = path.join(args.nodeDir, "node_modules/node-llama-cpp/dist/index.js");
let getLlama;
try {
  ({getLlama} = await import(pathToFileURL(nlcEntry).href));
} catch (e) {
  die(`cannot load node-llama-cpp from ${nlcEntry}: ${e}`);
}
let llama;
try {
  llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
} catch (e) {
  die(`node-llama-cpp has no usable prebuilt CPU binary: ${e}`);
}
log(`llama.cpp loaded (node-llama-cpp ${NLC_VERSION}, ${llama.buildType ?? "prebuilt"})`);

const modelDir = path.join(args.out, "models");
fs.mkdirSync(modelDir, {recursive: true});
const report = {nodeLlamaCpp: NLC_VERSION, seed: args.seed, steps: args.steps, models: [], tokenizer: null};
let failures = 0;

const cfgs = makeConfigs(args.models);
for (const cfg of cfgs) {
  const file = path.join(modelDir, `m${cfg.id}-${cfg.hidden}-${cfg.layers}-${cfg.heads}x${cfg.kvHeads}-${cfg.ffn}-${cfg.format}-${cfg.seed}.gguf`);
  const entry = {id: cfg.id, config: {...cfg, prompt: undefined}, promptLength: cfg.prompt.length, prompt: cfg.prompt};
  const [tol, gap] = cfg.format === "f16" ? [0.01, 0.01] : [args.quantTol, args.quantGap];
  entry.tolerance = tol; entry.gap = gap;
  try {
    execFileSync(args.synth, ["--arch", "bitnet", "--hidden", String(cfg.hidden), "--layers", String(cfg.layers),
      "--heads", String(cfg.heads), "--kv-heads", String(cfg.kvHeads), "--ffn", String(cfg.ffn),
      "--format", cfg.format, "--seed", String(cfg.seed), "-o", file], {encoding: "utf8"});
    const model = await llama.loadModel({modelPath: file});
    // Flash attention pinned on (what "auto" picks on the CPU): the q8k mode
    // follows its arithmetic (docs/reference-forward.md).
    const ctx = await model.createContext({contextSize: 512, threads: 1, batchSize: 512, flashAttention: true});
    const seq = ctx.getSequence();
    const golden = [];
    const it = seq.evaluateWithMetadata(cfg.prompt, {probabilities: true}, {temperature: 0, yieldEogToken: true});
    for await (const r of it) {
      const top = [...r.probabilities.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, 5);
      golden.push({token: r.token, top});
      if (golden.length >= args.steps) break;
    }
    await ctx.dispose();
    await model.dispose();
    entry.llamaSteps = golden;
    const cmp = compareCase(file, cfg, golden, tol, gap);
    Object.assign(entry, cmp);
    entry.ok = cmp.violations.length === 0 && golden.length > 0;
    if (golden.length === 0) entry.error = "llama.cpp produced no steps";
  } catch (e) {
    entry.ok = false;
    entry.error = String(e).slice(0, 2000);
  }
  if (!entry.ok) failures++;
  log(`model ${cfg.id}: ${cfg.hidden}h ${cfg.layers}L ${cfg.heads}/${cfg.kvHeads} heads (hd ${cfg.hidden / cfg.heads}) ffn ${cfg.ffn} ` +
      `${cfg.format} act-quant ${cfg.actQuant} prompt ${cfg.prompt.length}: max dp ${entry.maxDeltaP?.toFixed(4)} ` +
      `(tol ${tol}), partings ${entry.partings?.length ?? "-"} ${entry.ok ? "OK" : "FAIL " + (entry.error ?? JSON.stringify(entry.violations))}`);
  fs.rmSync(file, {force: true});
  report.models.push(entry);
}

// Tokenizer: same strings through llama.cpp (vocab-only load) and tern-tokenize.
{
  const strings = [];
  for (let i = 0; i < args.strings; i++) strings.push(randomString());
  const tk = {vocab: args.vocab, strings: strings.length, mismatches: [], ok: false};
  try {
    const vocabModel = await llama.loadModel({modelPath: args.vocab, vocabOnly: true});
    const theirs = strings.map((s) => Array.from(vocabModel.tokenize(s, false)));
    await vocabModel.dispose();
    const out = execFileSync(args.tokenize, [args.vocab], {input: strings.map((s) => JSON.stringify(s)).join("\n") + "\n",
      encoding: "utf8", maxBuffer: 1 << 28});
    const ours = out.trim().split("\n").map((l) => JSON.parse(l));
    if (ours.length !== strings.length) throw new Error(`tern-tokenize gave ${ours.length} lines for ${strings.length} strings`);
    let tokens = 0;
    for (let i = 0; i < strings.length; i++) {
      tokens += theirs[i].length;
      const a = ours[i], b = theirs[i];
      if (a.length !== b.length || a.some((x, j) => x !== b[j])) {
        let j = 0;
        while (j < a.length && j < b.length && a[j] === b[j]) j++;
        tk.mismatches.push({index: i, text: strings[i], ours: a, llama: b, firstDifference: j});
      }
    }
    tk.tokens = tokens;
    tk.ok = tk.mismatches.length === 0;
  } catch (e) {
    tk.error = String(e).slice(0, 2000);
  }
  if (!tk.ok) failures++;
  log(`tokenizer: ${tk.strings} strings, ${tk.tokens ?? "?"} llama.cpp tokens, ${tk.mismatches.length} mismatches ${tk.ok ? "OK" : "FAIL " + (tk.error ?? "")}`);
  for (const m of tk.mismatches.slice(0, 5)) log(`  mismatch #${m.index} ${JSON.stringify(m.text)}: ours ${JSON.stringify(m.ours)} llama ${JSON.stringify(m.llama)}`);
  report.tokenizer = tk;
}

const okModels = report.models.filter((m) => m.ok).length;
const worst = (f16) => Math.max(0, ...report.models.filter((m) => (m.config.format === "f16") === f16 && m.maxDeltaP !== undefined).map((m) => m.maxDeltaP));
report.summary = {
  models: report.models.length, modelsOk: okModels,
  maxDeltaPF16None: worst(true), maxDeltaPQuant: worst(false), quantActQuant: args.tqActQuant,
  partings: report.models.reduce((n, m) => n + (m.partings?.length ?? 0), 0),
  tokenizerStrings: report.tokenizer.strings, tokenizerMismatches: report.tokenizer.mismatches.length,
  seconds: (Date.now() - t0) / 1000, ok: failures === 0,
};
fs.writeFileSync(args.report, JSON.stringify(report, null, 1) + "\n");
const S = report.summary;
console.log(`crossval: ${failures === 0 ? "PASS" : "FAIL"}: models ${S.modelsOk}/${S.models} ok ` +
  `(max dp f16/none ${S.maxDeltaPF16None.toFixed(4)} tol 0.01, quantized/${args.tqActQuant} ${S.maxDeltaPQuant.toFixed(4)} tol ${args.quantTol}, ` +
  `${S.partings} partings where the picks part), tokenizer ${S.tokenizerStrings - S.tokenizerMismatches}/${S.tokenizerStrings} identical, ` +
  `${S.seconds.toFixed(0)} s; report ${args.report}`);
process.exit(failures === 0 ? 0 : 1);
