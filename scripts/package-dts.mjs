// Post-processes wasm-bindgen's pkg/resilient_transcriber.d.ts for the npm
// package (run by scripts/package.sh; idempotent).
//
// wasm-bindgen declares `[Symbol.dispose](): void;` on every exported class.
// `Symbol.dispose` exists only in TypeScript's `esnext.disposable` lib, so
// a project compiling with the default `lib` of an ES2020 or ES2022 target
// fails on our declarations (TS2550), even with `strict` and without
// `skipLibCheck`. The line is replaced by `TranscriptionClientDisposable`,
// a mapped type over the type of `Symbol.dispose` that is the member where
// the project's lib has `Symbol.dispose` and nothing where it does not
// (TypeScript 4.7+), merged into the class. So `using client = new
// TranscriptionClient(...)` still type-checks with ESNext libs, and ES2020
// or ES2022 libs see no `Symbol.dispose` at all.
import { readFileSync, writeFileSync } from "node:fs";

const path = process.argv[2];
if (!path) {
  console.error("usage: node scripts/package-dts.mjs pkg/resilient_transcriber.d.ts");
  process.exit(2);
}
const line = /^[ \t]*\[Symbol\.dispose\]\(\): void;\r?\n/m;
const MERGE = `
/** The key of \`[Symbol.dispose]\`: \`typeof Symbol.dispose\` where the project's \`lib\` declares it (esnext.disposable), else \`never\`. */
export type TranscriptionClientDisposeKey = SymbolConstructor extends { readonly dispose: infer K extends symbol } ? K : never;
/** \`[Symbol.dispose]()\` (the same as \`free()\`), declared only where the project's \`lib\` has \`Symbol.dispose\`, so the typings compile under ES2020/ES2022 libs too. */
export type TranscriptionClientDisposable = { [K in TranscriptionClientDisposeKey]: () => void };
export interface TranscriptionClient extends TranscriptionClientDisposable {}
`;
const src = readFileSync(path, "utf8");
if (src.includes("interface TranscriptionClient extends TranscriptionClientDisposable")) {
  console.log(`package-dts: ${path}: already processed`);
  process.exit(0);
}
if (!line.test(src)) {
  console.error(`${path}: no \`[Symbol.dispose](): void;\` line to replace: did wasm-bindgen change its output?`);
  process.exit(1);
}
const out = src.replace(line, "") + MERGE;
if (/\[Symbol\.dispose\]/.test(src.replace(line, ""))) {
  console.error(`${path}: a [Symbol.dispose] declaration this script does not recognise is left`);
  process.exit(1);
}
writeFileSync(path, out);
console.log(`package-dts: ${path}: [Symbol.dispose]() declared through TranscriptionClientDisposable`);
