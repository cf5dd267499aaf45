// Writes the package README (scripts/package.sh): npm/README.md with its
// `<!-- include: README.md#package -->` line replaced by the part of the
// repository's README.md between `<!-- package:begin -->` and
// `<!-- package:end -->`. Relative links to files the package does not
// ship, and anchors of sections it does not include, are pointed at the
// repository (npm/package.json `homepage`). Fails on contributor commands
// (npm start, npm test, cargo test) in the result.
// Usage: node scripts/package-readme.mjs OUT_DIR
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = process.argv[2];
if (!out) { console.error("usage: node scripts/package-readme.mjs OUT_DIR"); process.exit(2); }
const fail = (m) => { console.error(`package-readme: ${m}`); process.exit(1); };

const pkg = JSON.parse(readFileSync(join(ROOT, "npm", "package.json"), "utf8"));
const repo = pkg.homepage.replace(/#.*$/, "");
const readme = readFileSync(join(ROOT, "README.md"), "utf8");
const m = /<!-- package:begin -->\n([\s\S]*?)<!-- package:end -->/.exec(readme);
if (!m) fail("README.md has no <!-- package:begin --> ... <!-- package:end --> part");
const template = readFileSync(join(ROOT, "npm", "README.md"), "utf8");
const marker = "<!-- include: README.md#package -->";
if (!template.includes(marker)) fail(`npm/README.md has no ${marker} line`);
let text = template.replace(/<!--\n[\s\S]*?-->\n\n/, "").replace(marker, m[1].trim());

const slug = (h) => h.toLowerCase().replace(/[`*_]/g, "").replace(/[^\w\- ]+/g, "").trim().replace(/ /g, "-");
const anchors = new Set([...text.matchAll(/^#+ (.+)$/gm)].map((h) => slug(h[1])));
const rewritten = [];
text = text.replace(/\]\(([^)\s]+)\)/g, (all, target) => {
  if (/^[a-z]+:/i.test(target)) return all;
  if (target.startsWith("#")) {
    if (anchors.has(target.slice(1))) return all;
    rewritten.push(target);
    return `](${repo}${target})`;
  }
  const [path, hash] = target.split("#");
  if (existsSync(join(out, path))) return all;
  rewritten.push(target);
  return `](${repo}/blob/main/${path}${hash ? `#${hash}` : ""})`;
});
for (const bad of ["npm start", "npm test", "cargo test", "scripts/setup.sh"]) {
  if (text.includes(bad)) fail(`the package README mentions \`${bad}\`, a contributor command: keep it outside README.md's package part`);
}
writeFileSync(join(out, "README.md"), text);
console.log(`package-readme: ${out}/README.md (${text.length} bytes; links to the repository: ${rewritten.join(", ") || "none"})`);
