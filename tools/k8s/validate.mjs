// Validates Kubernetes manifests (multi-document YAML on stdin or in files: what
// `kubectl kustomize` renders) against the Kubernetes OpenAPI schemas, offline, with the
// npm package kubernetes-models (generated from them):
//   1. every object's apiVersion and kind must be known, and it must pass the model's
//      validate(): types, required fields, enums, formats (int32 ranges, quantities);
//   2. no field may be unknown (a typo such as `readinessProbes`, which the schemas'
//      open objects let through): each object is type-checked by TypeScript as a literal of
//      the model's interface, whose excess-property check names the field.
// Exit status 1 with one line per problem.
//   node tools/k8s/validate.mjs < rendered.yaml
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
// Custom resources: their API groups' models, generated from the operators' CRDs.
const crds = { "postgresql.cnpg.io": "@kubernetes-models/cloudnative-pg" };
const modelRoot = (group, version) =>
  crds[group] ? `${crds[group]}/${group}/${version}`
    : group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;

const text = process.argv.length > 2
  ? process.argv.slice(2).map((f) => readFileSync(f, "utf8")).join("\n---\n")
  : readFileSync(0, "utf8");

let problems = 0;
let count = 0;
const typed = [];  // TypeScript lines: one typed constant per object
for (const doc of parseAllDocuments(text)) {
  if (doc.errors.length) {
    for (const e of doc.errors) console.log(`YAML: ${e.message}`);
    problems += doc.errors.length;
    continue;
  }
  const obj = doc.toJS();
  if (obj === null) continue;
  count += 1;
  const what = `${obj.kind ?? "?"}/${obj.metadata?.name ?? "?"}`;
  const [group, version] = obj.apiVersion?.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
  const modulePath = modelRoot(group, version);
  let Model;
  try {
    Model = (await import(modulePath))[obj.kind];
  } catch {
    Model = undefined;
  }
  if (!Model) {
    console.log(`${what}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
    problems += 1;
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    console.log(`${what}: ${e.message}`);
    problems += 1;
  }
  const file = `${modelRoot(group, version)}/${obj.kind}`;
  typed.push(`import { I${obj.kind} as T${count} } from "${file}";`,
             `// ${what}`, `export const o${count}: T${count} = ${JSON.stringify(obj, null, 1)};`);
}

if (typed.length) {
  const dir = mkdtempSync(join(tmpdir(), "k8s-validate-"));
  const ts = join(dir, "manifests.ts");
  writeFileSync(ts, typed.join("\n") + "\n");
  try {
    execFileSync(join(here, "node_modules", ".bin", "tsc"),
                 ["--noEmit", "--strict", "--skipLibCheck", "--moduleResolution", "node", "--module", "es2020",
                  "--target", "es2020", "--baseUrl", join(here, "node_modules"), ts],
                 { encoding: "utf8", stdio: "pipe" });
  } catch (e) {
    const lines = readFileSync(ts, "utf8").split("\n");
    for (const line of String(e.stdout).split("\n").filter((l) => l.includes("error TS"))) {
      // manifests.ts(LINE,COL): error TS2353: Object literal may only specify known properties, ...
      const at = Number(/\((\d+),/.exec(line)?.[1] ?? 0);
      let owner = "?";
      for (let i = at - 1; i >= 0; i -= 1) {
        if (lines[i]?.startsWith("// ")) { owner = lines[i].slice(3); break; }
      }
      console.log(`${owner}: ${line.replace(/^.*error TS\d+: /, "")}`);
      problems += 1;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
console.log(`${count} objects, ${problems} problems`);
process.exit(problems === 0 && count > 0 ? 0 : 1);
