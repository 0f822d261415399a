// Reference runner: ONNX Runtime (onnxruntime-node, CPU) behind the same
// command line as `spindle run`, so tests and benchmarks drive both alike.
//
//   node tools/node/ort-run.mjs --model PATH --input NAME=FILE.npy ... --out DIR
//        [--threads N] [--opt disabled|basic|extended|all] [--bench RUNS]
//
// Writes each graph output as DIR/OUTPUT_NAME.npy (NumPy format 1.0, C order,
// little-endian). Output names that are not safe file names are an error, as in
// `spindle run`.
//
// --threads sets ONNX Runtime's intra-op thread count (default: its own choice);
// inter-op parallelism is off (sequential execution), like Spindle's engine.
// --opt sets the graph optimisation level (default all, ONNX Runtime's default).
// --bench RUNS times session creation, one warm-up run and RUNS further runs and
// prints one JSON object on stdout:
//   {"load_ms": .., "first_run_ms": .., "runs": N, "median_ms": .., "p90_ms": ..,
//    "p99_ms": .., "mean_ms": .., "min_ms": .., "max_ms": .., "threads": N|null}
// Without --bench nothing is printed on success. Errors go to stderr with exit
// status 1 (2 for a bad command line).
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';

class UsageError extends Error {}

function parseArgs(argv) {
  const a = { inputs: [], threads: null, opt: 'all', bench: 0, out: '', model: '' };
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i];
    let val;
    const eq = flag.indexOf('=');
    if (flag.startsWith('--') && eq > 0) {
      val = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    }
    const next = () => {
      if (val !== undefined) return val;
      if (i + 1 >= argv.length) throw new UsageError(`${flag}: missing value`);
      return argv[++i];
    };
    switch (flag) {
      case '--model': a.model = next(); break;
      case '--input': a.inputs.push(next()); break;
      case '--out': a.out = next(); break;
      case '--threads': a.threads = positiveInt(flag, next()); break;
      case '--bench': a.bench = positiveInt(flag, next()); break;
      case '--opt': {
        a.opt = next();
        if (!['disabled', 'basic', 'extended', 'all'].includes(a.opt)) {
          throw new UsageError(`--opt: ${a.opt}: want disabled, basic, extended or all`);
        }
        break;
      }
      default: throw new UsageError(`unknown argument ${JSON.stringify(argv[i])}`);
    }
  }
  if (!a.model) throw new UsageError('--model: required');
  if (!a.out && !a.bench) throw new UsageError('--out: required unless --bench is given');
  return a;
}

function positiveInt(flag, s) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag}: ${s}: want a positive integer`);
  return n;
}

// .npy descr (without byte order) -> [ORT type, typed array constructor]
const DTYPES = {
  f4: ['float32', Float32Array],
  f8: ['float64', Float64Array],
  i8: ['int64', BigInt64Array],
  i4: ['int32', Int32Array],
  i1: ['int8', Int8Array],
  u1: ['uint8', Uint8Array],
  b1: ['bool', Uint8Array],
};
const DESCR = {
  float32: '<f4', float64: '<f8', int64: '<i8', int32: '<i4', int8: '|i1', uint8: '|u1', bool: '|b1',
};

// readNpy parses a NumPy .npy file (versions 1-3, little-endian or
// byte-order-free dtypes, C order) into an ort.Tensor.
function readNpy(file) {
  const buf = fs.readFileSync(file);
  const bad = (msg) => new Error(`${file}: ${msg}`);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw bad('not a .npy file');
  const major = buf[6];
  let hlen, start;
  if (major === 1) { hlen = buf.readUInt16LE(8); start = 10; }
  else if (major === 2 || major === 3) { hlen = buf.readUInt32LE(8); start = 12; }
  else throw bad(`format version ${major} is not supported`);
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', start, start + hlen);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeStr = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeStr === undefined) throw bad(`bad header ${header.trim()}`);
  if (fortran === 'True') throw bad('fortran_order arrays are not supported');
  const order = descr[0];
  const kind = descr.slice(1);
  if (!(kind in DTYPES) || order === '>' || (order !== '<' && order !== '|' && order !== '=')) {
    throw bad(`dtype ${descr} is not supported (want <f4, <f8, <i8, <i4, |i1, |u1 or |b1)`);
  }
  const shape = shapeStr.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const [type, Ctor] = DTYPES[kind];
  const count = shape.reduce((p, d) => p * d, 1);
  const off = start + hlen;
  const nbytes = count * Ctor.BYTES_PER_ELEMENT;
  if (buf.length - off < nbytes) throw bad(`data holds ${buf.length - off} bytes, shape needs ${nbytes}`);
  // Copy into a fresh, aligned buffer: Buffer slices may be unaligned.
  const data = new Ctor(count);
  new Uint8Array(data.buffer).set(buf.subarray(off, off + nbytes));
  return new ort.Tensor(type, type === 'bool' ? Uint8Array.from(data, (v) => (v ? 1 : 0)) : data, shape);
}

// writeNpy writes an ort.Tensor as a NumPy format 1.0 file.
function writeNpy(file, t) {
  const descr = DESCR[t.type];
  if (!descr) throw new Error(`${file}: output type ${t.type} cannot be written as .npy`);
  const dims = t.dims.map(String);
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  let data = t.data;
  if (t.type === 'bool') data = Uint8Array.from(data, (v) => (v ? 1 : 0));
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

function safeName(n) {
  return n !== '' && n !== '.' && n !== '..' && !/[/\\]/.test(n) && !n.includes('\0');
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const feeds = {};
  for (const spec of a.inputs) {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1) throw new UsageError(`--input ${JSON.stringify(spec)}: want NAME=FILE.npy`);
    const name = spec.slice(0, eq);
    if (name in feeds) throw new UsageError(`--input ${JSON.stringify(spec)}: input ${JSON.stringify(name)} given twice`);
    feeds[name] = readNpy(spec.slice(eq + 1));
  }
  const opts = { executionMode: 'sequential', interOpNumThreads: 1, graphOptimizationLevel: a.opt };
  if (a.threads) opts.intraOpNumThreads = a.threads;

  const t0 = performance.now();
  const session = await ort.InferenceSession.create(a.model, opts);
  const loadMs = performance.now() - t0;
  for (const n of session.outputNames) {
    if (a.out && !safeName(n)) throw new Error(`output ${JSON.stringify(n)}: name is not a safe file name`);
  }

  const t1 = performance.now();
  const results = await session.run(feeds);
  const firstMs = performance.now() - t1;
  if (a.out) {
    fs.mkdirSync(a.out, { recursive: true });
    for (const n of session.outputNames) writeNpy(path.join(a.out, `${n}.npy`), results[n]);
  }
  if (a.bench) {
    const times = [];
    for (let i = 0; i < a.bench; i++) {
      const s = performance.now();
      await session.run(feeds);
      times.push(performance.now() - s);
    }
    times.sort((x, y) => x - y);
    const q = (p) => times[Math.min(times.length - 1, Math.ceil(p * times.length) - 1)];
    const r3 = (x) => Math.round(x * 1000) / 1000;
    process.stdout.write(JSON.stringify({
      load_ms: r3(loadMs), first_run_ms: r3(firstMs), runs: times.length,
      median_ms: r3(q(0.5)), p90_ms: r3(q(0.9)), p99_ms: r3(q(0.99)),
      mean_ms: r3(times.reduce((s, x) => s + x, 0) / times.length),
      min_ms: r3(times[0]), max_ms: r3(times[times.length - 1]), threads: a.threads,
    }) + '\n');
  }
  await session.release();
}

main().catch((err) => {
  process.stderr.write(`ort-run: ${err.message}\n`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
