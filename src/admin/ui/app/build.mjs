// Bundles the admin UI: app/src/main.jsx -> <out>/main-[hash].js + .css and
// an index.html naming them. Only files whose bytes changed are written and
// stale ones removed, because build.rs watches <out>: an unchanged UI must
// not rebuild the gateway. Usage (from target/ui): node app/build.mjs dist
import * as esbuild from "esbuild";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const BUDGET_GZIP = 300 * 1024;
const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] || "dist");

const result = await esbuild.build({
  entryPoints: [join(here, "src", "main.jsx")],
  bundle: true,
  minify: true,
  write: false,
  outdir: out,
  entryNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  format: "esm",
  target: ["es2020"],
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
});

const files = new Map(); // relative name -> bytes
for (const f of result.outputFiles) {
  files.set(f.path.slice(out.length + 1), Buffer.from(f.contents));
}
const js = [...files.keys()].find((n) => n.endsWith(".js"));
const css = [...files.keys()].find((n) => n.endsWith(".css"));
if (!js) throw new Error("esbuild produced no script");

const index = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ModelSwitch</title>
<link rel="icon" href="data:,">
${css ? `<link rel="stylesheet" href="/ui/${css}">\n` : ""}<script type="module" src="/ui/${js}"></script>
</head>
<body>
<div id="app"></div>
<noscript>The ModelSwitch admin UI needs JavaScript.</noscript>
</body>
</html>
`;
files.set("index.html", Buffer.from(index));

// Write what changed, delete what is stale.
mkdirSync(out, { recursive: true });
let written = 0;
for (const [name, bytes] of files) {
  const path = join(out, name);
  if (existsSync(path) && readFileSync(path).equals(bytes)) continue;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
  written++;
}
let removed = 0;
for (const name of readdirSync(out, { recursive: true, withFileTypes: true })) {
  if (!name.isFile()) continue;
  const rel = join(name.parentPath ?? name.path, name.name).slice(out.length + 1);
  if (!files.has(rel)) {
    rmSync(join(out, rel));
    removed++;
  }
}

// The first page loads index.html, the script and the stylesheet.
const first = ["index.html", js, css].filter(Boolean);
const gz = first.reduce((n, name) => n + gzipSync(files.get(name), { level: 9 }).length, 0);
const kb = (n) => (n / 1024).toFixed(1) + " KB";
console.log(`ui: ${first.join(", ")}: ${kb(gz)} gzipped (budget ${kb(BUDGET_GZIP)}); ${written} written, ${removed} removed`);
if (gz > BUDGET_GZIP) {
  console.error(`ui: the first page's bundle is ${kb(gz)} gzipped, over the ${kb(BUDGET_GZIP)} budget`);
  process.exit(1);
}
