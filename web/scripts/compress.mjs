// After `vite build`: writes .br and .gz next to each text asset in dist/, so the hubmon
// binary serves them precompressed, and checks the first page's size budget.
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const dist = new URL("../dist/", import.meta.url).pathname;
const TEXT = /\.(html|js|css|svg|json|txt)$/;
// The first page (index.html, the entry script and stylesheet) must stay under this, gzipped.
const FIRST_PAGE_BUDGET = 300 * 1024;

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

const gzipped = new Map();
for (const file of walk(dist)) {
  if (!TEXT.test(file)) continue;
  const data = readFileSync(file);
  const gz = gzipSync(data, { level: 9 });
  const br = brotliCompressSync(data, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length },
  });
  gzipped.set("/" + relative(dist, file), gz.length);
  // Small files are not worth a second copy.
  if (data.length < 1024) continue;
  writeFileSync(file + ".gz", gz);
  writeFileSync(file + ".br", br);
}

const index = readFileSync(join(dist, "index.html"), "utf8");
const firstPage = ["/index.html", ...[...index.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1])];
let total = 0;
for (const path of firstPage) total += gzipped.get(path) ?? 0;
const kb = (n) => (n / 1024).toFixed(1) + " KB";
console.log(`first page: ${firstPage.join(", ")}: ${kb(total)} gzipped (budget ${kb(FIRST_PAGE_BUDGET)})`);
if (total > FIRST_PAGE_BUDGET) {
  console.error(`the first page is ${kb(total)} gzipped, over the ${kb(FIRST_PAGE_BUDGET)} budget`);
  process.exit(1);
}
