// Times upstream llama.cpp (the CPU build shipped in node-llama-cpp, the same
// one tests/crossval uses) on a GGUF the way `tern bench` times ours:
// prefill = one N-token prompt into a fresh sequence, timed to its first
// generated token; decode = the next M greedy tokens, timed from that first
// token to the last. Prints one JSON object per repetition on stdout.
//
//   node scripts/bench-llama.mjs --node-dir DIR --model GGUF [--threads T]
//        [--prompt N] [--gen M] [--reps R] [--weights map|mlock|no-mmap]
//
// --weights: how llama.cpp holds the GGUF's bytes (node-llama-cpp's useMmap /
// useMlock), to match `tern bench --mlock / --no-mmap` (scripts/bench.sh
// WEIGHTS=...).
//
// DIR must hold node_modules/node-llama-cpp (scripts/bench.sh installs it
// there with the same npm command as the crossval label).
import path from "node:path";
import {pathToFileURL} from "node:url";

const args = {threads: 1, prompt: 128, gen: 64, reps: 1, weights: "map"};
{
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) {
    if (!a[i].startsWith("--") || i + 1 >= a.length) {
      console.error(`bench-llama: bad argument '${a[i]}'`);
      process.exit(2);
    }
    args[a[i].slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = a[i + 1];
  }
  for (const k of ["threads", "prompt", "gen", "reps"]) args[k] = Number(args[k]);
  for (const k of ["nodeDir", "model"])
    if (!args[k]) {
      console.error(`bench-llama: missing --${k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}`);
      process.exit(2);
    }
}

const entry = path.join(args.nodeDir, "node_modules/node-llama-cpp/dist/index.js");
const {getLlama} = await import(pathToFileURL(entry).href);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
if (!["map", "mlock", "no-mmap"].includes(args.weights)) {
  console.error(`bench-llama: --weights must be map, mlock or no-mmap, not '${args.weights}'`);
  process.exit(2);
}
const model = await llama.loadModel({
  modelPath: args.model,
  useMmap: args.weights !== "no-mmap",
  useMlock: args.weights === "mlock",
});
// The same deterministic ids `tern bench` feeds: (i * 7919 + 13) % vocab.
const nVocab = model.tokens.getVocabSize ? model.tokens.getVocabSize() : model.fileInsights.tokens?.length;
const prompt = [];
for (let i = 0; i < args.prompt; i++) prompt.push((i * 7919 + 13) % nVocab);

// One untimed short run first: page in the weights and warm the allocator,
// as `tern bench` does with its best-of-R (scripts/bench.sh passes -r 2).
async function run(tokens, gen) {
  const ctx = await model.createContext({contextSize: tokens.length + gen + 16, threads: args.threads,
    batchSize: Math.max(512, tokens.length), flashAttention: true});
  const seq = ctx.getSequence();
  const t0 = process.hrtime.bigint();
  let tFirst = 0n, tLast = 0n, n = 0;
  for await (const tok of seq.evaluate(tokens, {temperature: 0, yieldEogToken: true})) {
    const now = process.hrtime.bigint();
    if (n === 0) tFirst = now;
    tLast = now;
    if (++n > gen) break;
  }
  await ctx.dispose();
  return {ppS: Number(tFirst - t0) / 1e9, tgS: Number(tLast - tFirst) / 1e9, n};
}
await run(prompt.slice(0, 8), 2);

for (let r = 0; r < args.reps; r++) {
  const {ppS, tgS, n} = await run(prompt, args.gen);
  console.log(JSON.stringify({engine: "llama.cpp", threads: args.threads, n_prompt: args.prompt,
    n_gen: n - 1, pp_tokens_per_s: args.prompt / ppS, tg_tokens_per_s: (n - 1) / tgS}));
}
await model.dispose();
