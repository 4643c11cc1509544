// Checks Kubernetes manifests against the Kubernetes API schema, the way the
// API server would, using the schema that kubernetes-models generates from
// the Kubernetes OpenAPI document. Two layers, both from that one source:
//
//  1. the JSON-schema validator compiled into kubernetes-models (ajv): types,
//     required fields, enums, formats;
//  2. its TypeScript declarations, checked by the TypeScript compiler: the
//     OpenAPI schema does not forbid unknown fields, but the API server does
//     (kubectl's default --validate=strict), and a typo'd field name is the
//     most common manifest mistake. The compiler's excess-property check on
//     an object literal typed with the generated interface catches it.
//
// No field is named here: what is valid comes from the library.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

/** One object and where it came from, for error messages. */
export interface SourcedObject {
  source: string;
  obj: K8sObject;
}

/** Thrown for a manifest that is not even a list of Kubernetes objects. */
export class ManifestParseError extends Error {}

/**
 * Parses a (multi-document) YAML manifest. Kubernetes reads YAML 1.1
 * (sigs.k8s.io/yaml), where `yes`/`on` are booleans, so this does too.
 */
export function parseManifests(text: string, source: string): SourcedObject[] {
  const out: SourcedObject[] = [];
  const docs = parseAllDocuments(text, { version: '1.1', prettyErrors: false });
  if (!Array.isArray(docs)) throw new ManifestParseError(`${source}: not a YAML document stream`);
  docs.forEach((doc, i) => {
    if (doc.errors.length > 0) {
      throw new ManifestParseError(`${source} document ${i + 1}: ${doc.errors[0]!.message}`);
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return; // an empty document
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new ManifestParseError(`${source} document ${i + 1}: not a mapping`);
    }
    const obj = value as Record<string, unknown>;
    if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') {
      throw new ManifestParseError(`${source} document ${i + 1}: apiVersion and kind must be strings`);
    }
    out.push({ source, obj: obj as K8sObject });
  });
  return out;
}

function label(o: SourcedObject): string {
  return `${o.source}: ${o.obj.kind}/${o.obj.metadata?.name ?? '(no name)'}`;
}

// kubernetes-models lays out one module per API group/version ("v1" for the
// core group), exporting one model class per kind.
function modelModule(apiVersion: string): string {
  return `kubernetes-models/${apiVersion}`;
}

type ModelClass = new (data: unknown) => { validate(): void };

// apiVersion and kind become a module path and generated source: accept only
// what a real one looks like.
function wellFormed(o: SourcedObject): boolean {
  return /^([a-z0-9.-]+\/)?v[0-9a-z]+$/.test(o.obj.apiVersion) && /^[A-Za-z][A-Za-z0-9]*$/.test(o.obj.kind);
}

/** Layer 1: the compiled JSON-schema validator of each object's kind. */
export async function schemaProblems(objects: SourcedObject[]): Promise<string[]> {
  const problems: string[] = [];
  for (const o of objects) {
    if (!wellFormed(o)) {
      problems.push(`${label(o)}: malformed apiVersion or kind`);
      continue;
    }
    let mod: Record<string, unknown>;
    try {
      mod = (await import(modelModule(o.obj.apiVersion))) as Record<string, unknown>;
    } catch {
      problems.push(`${label(o)}: no schema for apiVersion ${o.obj.apiVersion}`);
      continue;
    }
    const Model = mod[o.obj.kind];
    if (typeof Model !== 'function') {
      problems.push(`${label(o)}: no schema for kind ${o.obj.kind} in ${o.obj.apiVersion}`);
      continue;
    }
    try {
      new (Model as ModelClass)(o.obj).validate();
    } catch (err) {
      problems.push(`${label(o)}: ${(err as Error).message}`);
    }
  }
  return problems;
}

const here = dirname(fileURLToPath(import.meta.url));
// A file that exists only in memory, placed here so that module resolution
// finds kubernetes-models in the project's node_modules.
const virtualFile = join(here, '__manifest_types__.ts');

const compilerOptions: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  lib: ['lib.es2022.d.ts'],
  types: [],
  skipLibCheck: true,
};

/**
 * Layer 2: every object as a literal of its generated interface, compiled.
 * Reports every unknown field with its path, and the compiler's type errors
 * (mostly what layer 1 finds too, said differently).
 */
export function typeProblems(objects: SourcedObject[]): string[] {
  const problems: string[] = [];
  const imports: string[] = [];
  const declarations: { object: SourcedObject; text: string }[] = [];
  objects.forEach((o, i) => {
    const { apiVersion, kind } = o.obj;
    if (!wellFormed(o)) return; // reported by schemaProblems()
    imports.push(`import type { I${kind} as T${i} } from ${JSON.stringify(`${modelModule(apiVersion)}/${kind}`)};`);
    declarations.push({ object: o, text: `export const m${i}: T${i} = ${JSON.stringify(o.obj, null, 2)};` });
  });

  // Imports first, then one declaration per object; remember the line where
  // each declaration starts so a diagnostic maps back to its object.
  let text = imports.map((l) => l + '\n').join('');
  let line = imports.length;
  const starts: { line: number; object: SourcedObject }[] = [];
  for (const d of declarations) {
    starts.push({ line, object: d.object });
    text += d.text + '\n';
    line += d.text.split('\n').length;
  }

  const host = ts.createCompilerHost(compilerOptions);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (file, languageVersion, ...rest) =>
    file === virtualFile ? ts.createSourceFile(file, text, languageVersion) : getSourceFile(file, languageVersion, ...rest);
  host.fileExists = (file) => file === virtualFile || fileExists(file);
  host.readFile = (file) => (file === virtualFile ? text : readFile(file));

  const program = ts.createProgram([virtualFile], compilerOptions, host);
  const checker = program.getTypeChecker();
  const sourceFile = program.getSourceFile(virtualFile)!;

  // Unknown fields, all of them and with their paths. (The compiler's own
  // excess-property error stops at the first one and only when there is no
  // other type error in the object, so it is left out below.)
  let index = 0;
  for (const statement of sourceFile.statements) {
    if (!ts.isVariableStatement(statement)) continue;
    const init = statement.declarationList.declarations[0]?.initializer;
    const object = declarations[index++]!.object;
    if (init) unknownFields(checker, init, '', (p) => problems.push(`${label(object)}: unknown field ${p}`));
  }

  for (const d of ts.getPreEmitDiagnostics(program)) {
    if (excessPropertyCodes.has(d.code)) continue;
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    if (!d.file || d.file.fileName !== virtualFile || d.start === undefined) {
      problems.push(`type check: ${message}`);
      continue;
    }
    const at = d.file.getLineAndCharacterOfPosition(d.start).line;
    // Line k < imports.length is object k's import (it fails when there is
    // no such kind); later lines belong to the last declaration started.
    const owner = at < imports.length ? declarations[at]!.object : [...starts].reverse().find((s) => s.line <= at)?.object;
    problems.push(owner ? `${label(owner)}: ${message}` : `type check: ${message}`);
  }
  return problems;
}

// "Object literal may only specify known properties ..." (and its "did you
// mean" variant): reported by unknownFields() instead.
const excessPropertyCodes = new Set([2353, 2561]);

/** Walks a literal and reports each key its declared type does not have. */
function unknownFields(checker: ts.TypeChecker, node: ts.Expression, at: string, report: (path: string) => void): void {
  if (ts.isArrayLiteralExpression(node)) {
    node.elements.forEach((e, i) => unknownFields(checker, e, `${at}/${i}`, report));
    return;
  }
  if (!ts.isObjectLiteralExpression(node)) return;
  const contextual = checker.getContextualType(node);
  const declared = contextual ? checker.getNonNullableType(contextual) : undefined;
  const candidates = declared ? (declared.isUnion() ? declared.types : [declared]) : [];
  // Maps (labels, annotations, resource lists) take any key.
  const open = candidates.length === 0 || candidates.some((t) => checker.getIndexInfosOfType(t).length > 0 || (t.flags & ts.TypeFlags.Any) !== 0);
  for (const prop of node.properties) {
    if (!ts.isPropertyAssignment(prop)) continue;
    const name = ts.isStringLiteral(prop.name) || ts.isIdentifier(prop.name) ? prop.name.text : prop.name.getText();
    const path = `${at}/${name}`;
    if (!open && !candidates.some((t) => checker.getPropertyOfType(t, name) !== undefined)) {
      report(path);
      continue;
    }
    unknownFields(checker, prop.initializer, path, report);
  }
}

/** Both layers; an empty list means every object is valid. */
export async function validateManifests(objects: SourcedObject[]): Promise<string[]> {
  return [...(await schemaProblems(objects)), ...typeProblems(objects)];
}
